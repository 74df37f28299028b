package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/amsrouter/ams/services/gateway/internal/gwtest"
)

// C16: the owner creates links (with expiry and label), lists them oldest
// first with revoked ones, and revokes them; re-revoking keeps the first
// revoked_at.
func TestC16Links(t *testing.T) {
	t.Parallel()
	sys := start(t, 1)
	_, cred := sys.CreateAccount(t, 0, "acme")
	first := sys.Mint(t, 0, cred, "acme", `{"alias":"room"}`)
	u := sys.URL(0) + "/v1/acme/conversations/room/links"

	// Create.
	r := call(t, post, u, bearer(cred), "")
	if r.Status != http.StatusCreated {
		t.Fatalf("create link: %d %s", r.Status, r.Body)
	}
	wantKeys(t, r.Body, "link_id", "magic_link", "created_at", "expires_at", "label")
	plain := r.JSON(t)
	wantMatch(t, "link_id", str(t, plain, "link_id"), linkIDRe)
	wantRecent(t, "created_at", str(t, plain, "created_at"))
	if plain["expires_at"] != nil || plain["label"] != nil {
		t.Errorf("expires_at, label = %v, %v; want null, null", plain["expires_at"], plain["label"])
	}
	if !strings.HasPrefix(str(t, plain, "magic_link"), sys.URL(0)+"/acme/conversations/room?t=") {
		t.Errorf("magic_link = %q", plain["magic_link"])
	}
	label := strings.Repeat("é", 64) // 64 characters, 128 bytes
	r = call(t, post, u, bearer(cred), `{"expires_in":3600,"label":"`+label+`"}`)
	if r.Status != http.StatusCreated {
		t.Fatalf("create link: %d %s", r.Status, r.Body)
	}
	labelled := r.JSON(t)
	if labelled["label"] != label {
		t.Errorf("label = %v", labelled["label"])
	}
	created, _ := time.Parse(time.RFC3339Nano, str(t, labelled, "created_at"))
	exp, _ := time.Parse(time.RFC3339Nano, str(t, labelled, "expires_at"))
	if exp.Sub(created) != time.Hour {
		t.Errorf("expires_at - created_at = %s, want 1h", exp.Sub(created))
	}
	r = call(t, post, u, bearer(cred), `{"expires_in":null,"label":null}`)
	if r.Status != http.StatusCreated {
		t.Fatalf("create link with nulls: %d %s", r.Status, r.Body)
	}
	third := r.JSON(t)

	// Every link admits.
	for _, l := range []map[string]any{first, plain, labelled, third} {
		if r := call(t, get, sys.URL(0)+"/v1/acme/conversations/room?t="+gwtest.LinkToken(t, l), nil, ""); r.Status != http.StatusOK {
			t.Errorf("inspect with link %v: %d %s", l["link_id"], r.Status, r.Body)
		}
	}

	// Revoke, twice.
	id := str(t, plain, "link_id")
	r = call(t, del, u+"/"+id, bearer(cred), "")
	if r.Status != http.StatusOK {
		t.Fatalf("revoke: %d %s", r.Status, r.Body)
	}
	wantKeys(t, r.Body, "link_id", "revoked_at")
	rev := r.JSON(t)
	if rev["link_id"] != id {
		t.Errorf("link_id = %v, want %s", rev["link_id"], id)
	}
	revokedAt := str(t, rev, "revoked_at")
	wantRecent(t, "revoked_at", revokedAt)
	r = call(t, del, u+"/"+id+"/", bearer(cred), "")
	if r.Status != http.StatusOK || str(t, r.JSON(t), "revoked_at") != revokedAt {
		t.Errorf("re-revoke: %d %s, want 200 with the first revoked_at %s", r.Status, r.Body, revokedAt)
	}

	// List: oldest first, revoked included.
	r = call(t, get, u, bearer(cred), "")
	if r.Status != http.StatusOK {
		t.Fatalf("list: %d %s", r.Status, r.Body)
	}
	wantKeys(t, r.Body, "links")
	list, _ := r.JSON(t)["links"].([]any)
	wantIDs := []any{first["link_id"], plain["link_id"], labelled["link_id"], third["link_id"]}
	if len(list) != len(wantIDs) {
		t.Fatalf("list has %d links, want %d: %s", len(list), len(wantIDs), r.Body)
	}
	for i, e := range list {
		l := e.(map[string]any)
		if l["link_id"] != wantIDs[i] {
			t.Errorf("links[%d] = %v, want %v (oldest first)", i, l["link_id"], wantIDs[i])
		}
		if len(l) != 5 {
			t.Errorf("links[%d] has fields %v, want link_id, created_at, expires_at, revoked_at, label", i, l)
		}
		for _, k := range []string{"link_id", "created_at", "expires_at", "revoked_at", "label"} {
			if _, ok := l[k]; !ok {
				t.Errorf("links[%d] lacks %s", i, k)
			}
		}
		if _, shown := l["magic_link"]; shown {
			t.Errorf("links[%d] shows the magic link again", i)
		}
		wantRevoked := l["link_id"] == id
		if (l["revoked_at"] != nil) != wantRevoked {
			t.Errorf("links[%d] revoked_at = %v", i, l["revoked_at"])
		}
	}
	if l := list[1].(map[string]any); l["revoked_at"] != revokedAt {
		t.Errorf("listed revoked_at = %v, want %s", l["revoked_at"], revokedAt)
	}
	if l := list[2].(map[string]any); l["label"] != label || l["expires_at"] != labelled["expires_at"] {
		t.Errorf("listed labelled link = %v", l)
	}

	// The revoked link stops admitting at once; the others still do.
	wantError(t, call(t, get, sys.URL(0)+"/v1/acme/conversations/room?t="+gwtest.LinkToken(t, plain), nil, ""), http.StatusForbidden, "link_revoked")
	if r := call(t, get, sys.URL(0)+"/v1/acme/conversations/room?t="+gwtest.LinkToken(t, first), nil, ""); r.Status != http.StatusOK {
		t.Errorf("first link after revoking another: %d %s", r.Status, r.Body)
	}
}

// C16, C13: the link errors of 3.6, in order; only the owner manages links.
func TestC16LinkErrors(t *testing.T) {
	t.Parallel()
	sys := start(t, 1)
	_, cred := sys.CreateAccount(t, 0, "acme")
	_, otherCred := sys.CreateAccount(t, 0, "other")
	m := sys.Mint(t, 0, cred, "acme", `{"alias":"room"}`)
	elsewhere := sys.Mint(t, 0, cred, "acme", `{"alias":"elsewhere"}`)
	theirs := sys.Mint(t, 0, otherCred, "other", `{"alias":"room"}`)
	linkID := str(t, m, "link_id")
	unknownCred := bearer("ams_sk_" + strings.Repeat("C", 43))
	base := sys.URL(0) + "/v1/"
	tests := []struct {
		name   string
		method string
		path   string
		header map[string]string
		body   string
		status int
		code   string
	}{
		{"create: no credential", post, "acme/conversations/room/links", nil, `{`, 401, "missing_credential"},
		{"create: unknown credential", post, "acme/conversations/room/links", unknownCred, `{`, 401, "invalid_credential"},
		{"create: not the owner", post, "acme/conversations/room/links", bearer(otherCred), `{`, 403, "namespace_mismatch"},
		{"create: not the owner, unknown alias", post, "acme/conversations/nowhere/links", bearer(otherCred), `{}`, 403, "namespace_mismatch"},
		{"create: unknown alias, bad body", post, "acme/conversations/nowhere/links", bearer(cred), `{`, 404, "not_found"},
		{"create: unparseable", post, "acme/conversations/room/links", bearer(cred), `{`, 400, "invalid_json"},
		{"create: array", post, "acme/conversations/room/links", bearer(cred), `[]`, 400, "invalid_json"},
		{"create: null", post, "acme/conversations/room/links", bearer(cred), `null`, 400, "invalid_json"},
		{"create: expiry 59, bad label too", post, "acme/conversations/room/links", bearer(cred), `{"expires_in":59,"label":""}`, 400, "invalid_link_expiry"},
		{"create: expiry too long", post, "acme/conversations/room/links", bearer(cred), `{"expires_in":31536001}`, 400, "invalid_link_expiry"},
		{"create: expiry string", post, "acme/conversations/room/links", bearer(cred), `{"expires_in":"60"}`, 400, "invalid_link_expiry"},
		{"create: empty label", post, "acme/conversations/room/links", bearer(cred), `{"label":""}`, 400, "invalid_label"},
		{"create: label of 65 characters", post, "acme/conversations/room/links", bearer(cred), `{"label":"` + strings.Repeat("é", 65) + `"}`, 400, "invalid_label"},
		{"create: label number", post, "acme/conversations/room/links", bearer(cred), `{"label":7}`, 400, "invalid_label"},
		{"list: no credential", get, "acme/conversations/room/links", nil, "", 401, "missing_credential"},
		{"list: unknown credential", get, "acme/conversations/room/links", unknownCred, "", 401, "invalid_credential"},
		{"list: not the owner", get, "acme/conversations/room/links", bearer(otherCred), "", 403, "namespace_mismatch"},
		{"list: not the owner, their own alias name", get, "other/conversations/room/links", bearer(cred), "", 403, "namespace_mismatch"},
		{"list: unknown alias", get, "acme/conversations/nowhere/links", bearer(cred), "", 404, "not_found"},
		{"revoke: no credential", del, "acme/conversations/room/links/" + linkID, nil, "", 401, "missing_credential"},
		{"revoke: unknown credential", del, "acme/conversations/room/links/" + linkID, unknownCred, "", 401, "invalid_credential"},
		{"revoke: not the owner", del, "acme/conversations/room/links/" + linkID, bearer(otherCred), "", 403, "namespace_mismatch"},
		{"revoke: unknown alias", del, "acme/conversations/nowhere/links/" + linkID, bearer(cred), "", 404, "not_found"},
		{"revoke: unknown link", del, "acme/conversations/room/links/lnk_00000000000000000000", bearer(cred), "", 404, "link_not_found"},
		{"revoke: malformed link id", del, "acme/conversations/room/links/nope", bearer(cred), "", 404, "link_not_found"},
		{"revoke: link of another conversation", del, "acme/conversations/room/links/" + str(t, elsewhere, "link_id"), bearer(cred), "", 404, "link_not_found"},
		{"revoke: link of another account", del, "acme/conversations/room/links/" + str(t, theirs, "link_id"), bearer(cred), "", 404, "link_not_found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			wantError(t, call(t, tc.method, base+tc.path, tc.header, tc.body), tc.status, tc.code)
		})
	}
	t.Run("nothing was revoked", func(t *testing.T) {
		for _, c := range []struct {
			m    map[string]any
			cred string
			ns   string
		}{{m, cred, "acme"}, {elsewhere, cred, "acme"}, {theirs, otherCred, "other"}} {
			r := call(t, get, base+c.ns+"/conversations/"+str(t, c.m, "alias")+"/links", bearer(c.cred), "")
			if strings.Contains(string(r.Body), `"revoked_at":"`) {
				t.Errorf("a failed revocation revoked a link: %s", r.Body)
			}
		}
	})
}
