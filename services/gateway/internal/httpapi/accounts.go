package httpapi

import (
	"net/http"

	"github.com/amsrouter/ams/services/internal/jsonw"
	"github.com/amsrouter/ams/services/internal/timefmt"
	"github.com/amsrouter/ams/services/internal/wireerr"
)

// createAccount serves POST /v1/accounts (spec 3.2).
func (a *API) createAccount(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	m, err := object(body, false)
	if err != nil {
		// Valid JSON that is not an object ([], null, "x", 1) has no
		// namespace: that is invalid_namespace, not invalid_json.
		if len(body) > 0 && jsonValid(body) {
			return wireerr.New(wireerr.InvalidNamespace, "namespace must match ^[a-z0-9][a-z0-9-]{0,62}$")
		}
		return err
	}
	// A namespace that is not a string is "", which the check refuses.
	ns, _ := m.String("namespace")
	acc, err := a.ctl.CreateAccount(r.Context(), ns)
	if err != nil {
		return err
	}
	o := jsonw.Begin(make([]byte, 0, 192))
	o.Str("account_id", acc.AccountID)
	o.Str("namespace", acc.Namespace)
	o.Str("credential", acc.Credential)
	o.Str("created_at", timefmt.Format(acc.CreatedAt))
	return writeJSON(w, http.StatusCreated, o.End())
}

// rotate serves POST /v1/{ns}/credentials/rotate (spec 3.3). The body is
// ignored.
func (a *API) rotate(w http.ResponseWriter, r *http.Request, p Params) error {
	acc, err := a.ctl.RotateCredential(r.Context(), authorization(r), p.NS)
	if err != nil {
		return err
	}
	o := jsonw.Begin(make([]byte, 0, 192))
	o.Str("account_id", acc.AccountID)
	o.Str("namespace", acc.Namespace)
	o.Str("credential", acc.Credential)
	o.Str("rotated_at", timefmt.Format(acc.RotatedAt))
	return writeJSON(w, http.StatusOK, o.End())
}
