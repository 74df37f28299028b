package httpapi

import (
	"context"
	"encoding/base64"
	"net/http"
	"time"

	"github.com/amsrouter/ams/services/internal/jsonw"
	"github.com/amsrouter/ams/services/internal/timefmt"
)

// healthz serves /healthz (spec 3.8): alive, whatever the dependencies.
func (a *API) healthz(w http.ResponseWriter, r *http.Request) error {
	if r.Method == http.MethodHead {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		return nil
	}
	o := jsonw.Begin(make([]byte, 0, 96))
	o.Bool("ok", true)
	o.Str("host", r.Host)
	o.Str("ts", timefmt.Format(a.d.Now()))
	return writeJSON(w, http.StatusOK, o.End())
}

// readyz serves /readyz (spec 3.8): 200 when every check is "ok".
func (a *API) readyz(w http.ResponseWriter, r *http.Request) error {
	var checks []Check
	if a.d.Ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
		checks = a.d.Ready(ctx)
		cancel()
	}
	ok := true
	for _, c := range checks {
		if c.Result != "ok" {
			ok = false
		}
	}
	o := jsonw.Begin(make([]byte, 0, 160))
	o.Bool("ok", ok)
	o.Key("checks")
	co := jsonw.Begin(o.B)
	for _, c := range checks {
		co.Str(c.Name, c.Result)
	}
	o.B = co.End()
	status := http.StatusOK
	if !ok {
		status = http.StatusServiceUnavailable
	}
	return writeJSON(w, status, o.End())
}

// jwks serves /.well-known/jwks.json (spec 3.8): the published key set,
// retired keys included while links they signed can be valid.
func (a *API) jwks(w http.ResponseWriter, r *http.Request) error {
	keys := a.d.Admission.Keys
	if !keys.Loaded() {
		if err := keys.Refresh(r.Context()); err != nil {
			return err
		}
	}
	o := jsonw.Begin(make([]byte, 0, 256))
	o.Key("keys")
	o.B = append(o.B, '[')
	for i, k := range keys.All() {
		if i > 0 {
			o.B = append(o.B, ',')
		}
		ko := jsonw.Begin(o.B)
		ko.Str("kty", "OKP")
		ko.Str("crv", "Ed25519")
		ko.Str("x", base64.RawURLEncoding.EncodeToString(k.Key))
		ko.Str("kid", k.ID)
		ko.Str("alg", "EdDSA")
		ko.Str("use", "sig")
		o.B = ko.End()
	}
	o.B = append(o.B, ']')
	w.Header().Set("Cache-Control", "max-age=60")
	h := w.Header()
	h.Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, err := w.Write(append(o.End(), '\n'))
	return err
}
