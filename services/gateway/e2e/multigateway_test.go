package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/amsrouter/ams/services/gateway/internal/gwtest"
)

// spreadBound is the spec's bound for a revocation or a rotation to reach
// every replica (2.3, 3.3).
const spreadBound = 5 * time.Second

// C17: after a rotation on one gateway the new credential works
// everywhere and the old one is refused everywhere within 5 s, also by a
// gateway that had it cached.
func TestC17RotationAcrossGateways(t *testing.T) {
	t.Parallel()
	sys := start(t, 2)
	accID, old := sys.CreateAccount(t, 0, "acme")
	sys.Mint(t, 0, old, "acme", `{"alias":"room"}`)
	owner := func(gw int, cred string) *gwtest.Response {
		return call(t, get, sys.URL(gw)+"/v1/acme/conversations/room", bearer(cred), "")
	}
	// Gateway 1 authenticates the old credential, so it is in its cache.
	if r := owner(1, old); r.Status != http.StatusOK {
		t.Fatalf("owner inspect on gateway 1: %d %s", r.Status, r.Body)
	}

	r := call(t, post, sys.URL(0)+"/v1/acme/credentials/rotate", bearer(old), `this body is ignored`)
	if r.Status != http.StatusOK {
		t.Fatalf("rotate: %d %s", r.Status, r.Body)
	}
	rotatedAt := time.Now()
	wantKeys(t, r.Body, "account_id", "namespace", "credential", "rotated_at")
	m := r.JSON(t)
	fresh := str(t, m, "credential")
	wantMatch(t, "credential", fresh, credentialRe)
	wantRecent(t, "rotated_at", str(t, m, "rotated_at"))
	if m["account_id"] != accID || m["namespace"] != "acme" || fresh == old {
		t.Errorf("rotate = %s, want the same account with a new credential", r.Body)
	}

	// The rotating gateway refuses the old credential at once.
	wantError(t, owner(0, old), 401, "invalid_credential")
	// The other one within 5 s.
	took := eventually(t, spreadBound, "old credential refused on gateway 1", func() bool {
		return owner(1, old).Status == http.StatusUnauthorized
	})
	wantError(t, owner(1, old), 401, "invalid_credential")
	if since := time.Since(rotatedAt); since > spreadBound {
		t.Errorf("old credential refused after %s, want < %s", since, spreadBound)
	}
	t.Logf("old credential refused on the other gateway after %s", took)
	for gw := range 2 {
		if r := owner(gw, fresh); r.Status != http.StatusOK {
			t.Errorf("new credential on gateway %d: %d %s", gw, r.Status, r.Body)
		}
		wantError(t, call(t, post, sys.URL(gw)+"/v1/acme/conversations", bearer(old), `{}`), 401, "invalid_credential")
	}
	sys.Mint(t, 1, fresh, "acme", "")
}

// C17, C13: the rotation errors of 3.3.
func TestC17RotationErrors(t *testing.T) {
	t.Parallel()
	sys := start(t, 1)
	_, cred := sys.CreateAccount(t, 0, "acme")
	sys.CreateAccount(t, 0, "other")
	u := sys.URL(0) + "/v1/"
	for _, tc := range []struct {
		name, ns string
		header   map[string]string
		status   int
		code     string
	}{
		{"no credential", "acme", nil, 401, "missing_credential"},
		{"basic scheme", "acme", map[string]string{"Authorization": "Basic " + cred}, 401, "missing_credential"},
		{"unknown credential", "acme", bearer("ams_sk_" + strings.Repeat("D", 43)), 401, "invalid_credential"},
		{"foreign namespace", "other", bearer(cred), 403, "namespace_mismatch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantError(t, call(t, post, u+tc.ns+"/credentials/rotate", tc.header, ""), tc.status, tc.code)
		})
	}
	// None of them rotated anything.
	sys.Mint(t, 0, cred, "acme", "")
}

// C15 (control plane): a link revoked through one gateway is refused by
// that gateway at once and by every other gateway within 5 s: another
// in-process gateway and a gateway running as its own process, both of
// which had admitted it before.
func TestC15RevokedLinkRefusedByEveryGateway(t *testing.T) {
	t.Parallel()
	sys := start(t, 2)
	proc := gwtest.StartGatewayProcess(t, sys, "gw-proc")
	_, cred := sys.CreateAccount(t, 0, "acme")
	m := sys.Mint(t, 0, cred, "acme", `{"alias":"room"}`)
	keep := call(t, post, sys.URL(0)+"/v1/acme/conversations/room/links", bearer(cred), `{}`).JSON(t)
	inspect := func(base string, link map[string]any) *gwtest.Response {
		return call(t, get, base+"/v1/acme/conversations/room?t="+gwtest.LinkToken(t, link), nil, "")
	}
	bases := []string{sys.URL(0), sys.URL(1), proc.URL}
	for _, b := range bases {
		if r := inspect(b, m); r.Status != http.StatusOK {
			t.Fatalf("inspect on %s before revocation: %d %s", b, r.Status, r.Body)
		}
	}

	r := call(t, del, sys.URL(0)+"/v1/acme/conversations/room/links/"+str(t, m, "link_id"), bearer(cred), "")
	if r.Status != http.StatusOK {
		t.Fatalf("revoke: %d %s", r.Status, r.Body)
	}
	revokedAt := time.Now()
	// The gateway that revoked refuses the link at once.
	wantError(t, inspect(bases[0], m), http.StatusForbidden, "link_revoked")
	for _, b := range bases[1:] {
		took := eventually(t, spreadBound, "revoked link refused on "+b, func() bool {
			return inspect(b, m).Status == http.StatusForbidden
		})
		t.Logf("%s refused the revoked link %s after the revocation", b, took)
	}
	if since := time.Since(revokedAt); since > spreadBound {
		t.Errorf("every gateway refused the link only after %s, want < %s", since, spreadBound)
	}
	for _, b := range bases {
		wantError(t, inspect(b, m), http.StatusForbidden, "link_revoked")
		if r := inspect(b, keep); r.Status != http.StatusOK {
			t.Errorf("another link of the conversation on %s: %d %s", b, r.Status, r.Body)
		}
	}
}

// A gateway process serves the control plane like an in-process one, and
// a killed replica does not disturb the others.
func TestGatewayProcessKilled(t *testing.T) {
	t.Parallel()
	sys := start(t, 1)
	a := gwtest.StartGatewayProcess(t, sys, "gw-a")
	b := gwtest.StartGatewayProcess(t, sys, "gw-b")
	_, cred := sys.CreateAccount(t, 0, "acme")
	r := call(t, post, a.URL+"/v1/acme/conversations", bearer(cred), `{"alias":"room"}`)
	if r.Status != http.StatusCreated {
		t.Fatalf("mint on process a: %d %s", r.Status, r.Body)
	}
	tok := gwtest.LinkToken(t, r.JSON(t))
	a.Kill()
	select {
	case <-a.Exited():
	default:
		t.Fatal("Kill returned before the process exited")
	}
	for _, base := range []string{b.URL, sys.URL(0)} {
		if r := call(t, get, base+"/v1/acme/conversations/room?t="+tok, nil, ""); r.Status != http.StatusOK {
			t.Errorf("inspect on %s after killing a: %d %s", base, r.Status, r.Body)
		}
	}
	if err := b.Stop(); err != nil {
		t.Errorf("stop b: %v", err)
	}
	if !strings.Contains(b.Logs(), `"gateway stopped"`) {
		t.Errorf("b did not shut down gracefully:\n%s", b.Logs())
	}
}
