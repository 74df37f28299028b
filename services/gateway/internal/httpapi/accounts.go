package httpapi

import (
	"net/http"

	accountv1 "github.com/amsrouter/ams/proto/gen/go/ams/account/v1"
	"github.com/amsrouter/ams/services/internal/grpcx"
	"github.com/amsrouter/ams/services/internal/ids"
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
	ns, ok := optString(m, "namespace")
	if !ok || !ids.ValidNamespace(ns) {
		return wireerr.New(wireerr.InvalidNamespace, "namespace must match ^[a-z0-9][a-z0-9-]{0,62}$")
	}
	resp, err := a.d.Accounts.CreateAccount(r.Context(), &accountv1.CreateAccountRequest{Namespace: ns})
	if err != nil {
		return grpcx.FromStatus(err)
	}
	o := jsonw.Begin(make([]byte, 0, 192))
	o.Str("account_id", resp.GetAccount().GetAccountId())
	o.Str("namespace", resp.GetAccount().GetNamespace())
	o.Str("credential", resp.GetCredential())
	o.Str("created_at", timefmt.Format(resp.GetAccount().GetCreatedAt().AsTime()))
	return writeJSON(w, http.StatusCreated, o.End())
}

// rotate serves POST /v1/{ns}/credentials/rotate (spec 3.3). The body is
// ignored.
func (a *API) rotate(w http.ResponseWriter, r *http.Request, p Params) error {
	acc, err := a.authenticateOwner(r, p.NS)
	if err != nil {
		return err
	}
	resp, err := a.d.Accounts.RotateCredential(r.Context(), &accountv1.RotateCredentialRequest{AccountId: acc.ID})
	if err != nil {
		return grpcx.FromStatus(err)
	}
	a.d.Auth.Forget(acc.ID)
	if a.d.AnnounceRotation != nil {
		a.d.AnnounceRotation(acc.ID)
	}
	o := jsonw.Begin(make([]byte, 0, 192))
	o.Str("account_id", resp.GetAccount().GetAccountId())
	o.Str("namespace", resp.GetAccount().GetNamespace())
	o.Str("credential", resp.GetCredential())
	o.Str("rotated_at", timefmt.Format(resp.GetAccount().GetRotatedAt().AsTime()))
	return writeJSON(w, http.StatusOK, o.End())
}
