package e2e

import (
	"net/http"
	"strings"
	"testing"

	"github.com/amsrouter/ams/services/gateway/internal/gwtest"
)

// C8, C1: creation answers 201 with exactly the four fields of 3.2, in
// order and in the formats of 2.1, and the credential authenticates.
func TestC8CreateAccount(t *testing.T) {
	t.Parallel()
	sys := start(t, 1)
	for _, ns := range []string{"acme", "a", "0", strings.Repeat("z", 63), "x-1-y"} {
		r := call(t, post, sys.URL(0)+"/v1/accounts", nil, `{"namespace":"`+ns+`","ignored":[1]}`)
		if r.Status != http.StatusCreated {
			t.Fatalf("namespace %q: status %d, want 201: %s", ns, r.Status, r.Body)
		}
		wantKeys(t, r.Body, "account_id", "namespace", "credential", "created_at")
		m := r.JSON(t)
		wantMatch(t, "account_id", str(t, m, "account_id"), accountIDRe)
		wantMatch(t, "credential", str(t, m, "credential"), credentialRe)
		wantRecent(t, "created_at", str(t, m, "created_at"))
		if got := str(t, m, "namespace"); got != ns {
			t.Errorf("namespace = %q, want %q", got, ns)
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type = %q", ct)
		}
		// The credential is live: it mints in its namespace.
		sys.Mint(t, 0, str(t, m, "credential"), ns, "")
	}
}

// C8, C13: the errors of 3.2, in order.
func TestC8CreateAccountErrors(t *testing.T) {
	t.Parallel()
	sys := start(t, 1)
	sys.CreateAccount(t, 0, "taken")
	tests := []struct {
		name, body string
		status     int
		code       string
	}{
		{"empty", ``, 400, "invalid_json"},
		{"whitespace", " \n\t ", 400, "invalid_json"},
		{"not JSON", `namespace=acme`, 400, "invalid_json"},
		{"truncated", `{"namespace":"acme"`, 400, "invalid_json"},
		{"trailing garbage", `{"namespace":"acme"} x`, 400, "invalid_json"},
		{"two values", `{"namespace":"acme"}{}`, 400, "invalid_json"},
		{"non-JSON space", "\v[]", 400, "invalid_json"},
		{"non-breaking space", "\u00a0{\"namespace\":\"acme\"}", 400, "invalid_json"},
		{"array", `[]`, 400, "invalid_namespace"},
		{"null", `null`, 400, "invalid_namespace"},
		{"empty object", `{}`, 400, "invalid_namespace"},
		{"string", `"acme"`, 400, "invalid_namespace"},
		{"number body", `7`, 400, "invalid_namespace"},
		{"namespace null", `{"namespace":null}`, 400, "invalid_namespace"},
		{"namespace number", `{"namespace":7}`, 400, "invalid_namespace"},
		{"namespace array", `{"namespace":["acme"]}`, 400, "invalid_namespace"},
		{"namespace object", `{"namespace":{}}`, 400, "invalid_namespace"},
		{"namespace bool", `{"namespace":true}`, 400, "invalid_namespace"},
		{"namespace empty", `{"namespace":""}`, 400, "invalid_namespace"},
		{"upper case", `{"namespace":"Acme"}`, 400, "invalid_namespace"},
		{"leading dash", `{"namespace":"-acme"}`, 400, "invalid_namespace"},
		{"underscore", `{"namespace":"ac_me"}`, 400, "invalid_namespace"},
		{"dot", `{"namespace":"ac.me"}`, 400, "invalid_namespace"},
		{"space", `{"namespace":"ac me"}`, 400, "invalid_namespace"},
		{"non-ASCII", `{"namespace":"acmé"}`, 400, "invalid_namespace"},
		{"64 chars", `{"namespace":"` + strings.Repeat("a", 64) + `"}`, 400, "invalid_namespace"},
		{"escaped upper case", `{"namespace":"\u0041cme"}`, 400, "invalid_namespace"},
		{"taken", `{"namespace":"taken"}`, 409, "namespace_taken"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			wantError(t, call(t, post, sys.URL(0)+"/v1/accounts", nil, tc.body), tc.status, tc.code)
		})
	}
}

// C9: concurrent creation of one namespace succeeds exactly once; the
// others get 409 namespace_taken.
func TestC9ConcurrentNamespaceCreation(t *testing.T) {
	t.Parallel()
	sys := start(t, 2)
	answers := concurrently(12, func(i int) *gwtest.Response {
		return call(t, post, sys.URL(i%2)+"/v1/accounts", nil, `{"namespace":"contested"}`)
	})
	wantOneCreated(t, answers, "namespace_taken")
}
