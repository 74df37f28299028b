package viewere2e

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/amsrouter/ams/services/gateway/internal/gwtest"
	"github.com/amsrouter/ams/services/internal/linktoken"
)

const browserAccept = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"

// C89: the magic-link URL with Accept text/html serves the page with the
// headers of spec 3.7, and a policy that admits exactly its inline style
// and script; other GETs are 404 not_found.
func TestC89ViewerHeaders(t *testing.T) {
	t.Parallel()
	sys := gwtest.Start(t, gwtest.Options{})
	_, cred := sys.CreateAccount(t, 0, "alice")
	link := sys.Mint(t, 0, cred, "alice", `{"alias":"room"}`)["magic_link"].(string)
	i := strings.Index(link, "?")
	slash := link[:i] + "/" + link[i:]

	for _, tc := range []struct{ name, url, accept string }{
		{"browser", link, browserAccept},
		{"text/html only", link, "text/html"},
		{"trailing slash", slash, browserAccept},
	} {
		resp := gwtest.DoResponse(t, http.MethodGet, tc.url, map[string]string{"Accept": tc.accept}, "")
		if resp.Status != http.StatusOK {
			t.Fatalf("%s: %d %s", tc.name, resp.Status, resp.Body)
		}
		for k, want := range map[string]string{
			"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store",
			"Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff",
		} {
			if got := resp.Header.Get(k); got != want {
				t.Errorf("%s: %s = %q, want %q", tc.name, k, got, want)
			}
		}
		body := string(resp.Body)
		if !strings.HasPrefix(body, "<!doctype html>") {
			t.Errorf("%s: body does not start with <!doctype html>: %.100s", tc.name, body)
		}
		// No external asset: nothing is loaded from anywhere.
		for _, bad := range []string{"src=", "href=", "@import", "url("} {
			if strings.Contains(body, bad) {
				t.Errorf("%s: page contains %q", tc.name, bad)
			}
		}
		csp := resp.Header.Get("Content-Security-Policy")
		want := "default-src 'none'; script-src " + inlineHash(t, body, "script") + "; style-src " + inlineHash(t, body, "style") +
			"; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
		if diff := cmp.Diff(want, csp); diff != "" {
			t.Errorf("%s: Content-Security-Policy (-want +got):\n%s", tc.name, diff)
		}
	}

	// Any other GET is not the viewer's.
	for _, accept := range []string{"", "application/json", "*/*"} {
		resp := gwtest.DoResponse(t, http.MethodGet, link, map[string]string{"Accept": accept}, "")
		if resp.Status != http.StatusNotFound || resp.JSON(t)["error"] != "not_found" {
			t.Errorf("GET with Accept %q: %d %s, want 404 not_found", accept, resp.Status, resp.Body)
		}
	}
}

// inlineHash is the CSP source of the one inline element tag of a page.
func inlineHash(t *testing.T, page, tag string) string {
	t.Helper()
	m := regexp.MustCompile(`(?s)<`+tag+`>(.*?)</`+tag+`>`).FindAllStringSubmatch(page, -1)
	if len(m) != 1 {
		t.Fatalf("page has %d <%s> elements, want 1", len(m), tag)
	}
	sum := sha256.Sum256([]byte(m[0][1]))
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}

// C89: the viewer answers link errors as the magic-link POST does from its
// second check on: no token 400 invalid_magic_link, unknown conversation
// 404 conversation_not_found (before the token is checked), bad, expired
// or revoked token 401 invalid_magic_link / link_expired / link_revoked.
func TestC89ViewerLinkErrors(t *testing.T) {
	t.Parallel()
	sys := gwtest.Start(t, gwtest.Options{})
	_, cred := sys.CreateAccount(t, 0, "alice")
	conv := sys.Mint(t, 0, cred, "alice", `{"alias":"room"}`)
	other := sys.Mint(t, 0, cred, "alice", `{"alias":"other"}`)
	tok := gwtest.LinkToken(t, conv)
	base := sys.URL(0) + "/alice/conversations/"
	now := time.Now()
	expired, err := linktoken.Mint(sys.SigningKey(), sys.URL(0), conv["conversation_id"].(string), "alice", "room",
		conv["link_id"].(string), now.Add(-time.Hour), now.Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	second := gwtest.DoResponse(t, http.MethodPost, sys.URL(0)+"/v1/alice/conversations/room/links", gwtest.Bearer(cred), "")
	if second.Status != http.StatusCreated {
		t.Fatalf("create link: %d %s", second.Status, second.Body)
	}
	revokedLink := second.JSON(t)
	if r := gwtest.DoResponse(t, http.MethodDelete, sys.URL(0)+"/v1/alice/conversations/room/links/"+revokedLink["link_id"].(string), gwtest.Bearer(cred), ""); r.Status != http.StatusOK {
		t.Fatalf("revoke: %d %s", r.Status, r.Body)
	}

	get := func(url string) (int, string) {
		resp := gwtest.DoResponse(t, http.MethodGet, url, map[string]string{"Accept": browserAccept}, "")
		if resp.Status == http.StatusOK {
			return resp.Status, ""
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("error with Content-Type %q", ct)
		}
		code, _ := resp.JSON(t)["error"].(string)
		return resp.Status, code
	}
	for _, tc := range []struct {
		name, url string
		status    int
		code      string
	}{
		{"no token", base + "room", 400, "invalid_magic_link"},
		{"empty token", base + "room?t=", 400, "invalid_magic_link"},
		{"unknown alias", base + "nope?t=" + tok, 404, "conversation_not_found"},
		{"unknown alias, bad token", base + "nope?t=garbage", 404, "conversation_not_found"},
		{"bad token", base + "room?t=garbage", 401, "invalid_magic_link"},
		{"another conversation's token", base + "room?t=" + gwtest.LinkToken(t, other), 401, "invalid_magic_link"},
		{"expired", base + "room?t=" + expired, 401, "link_expired"},
		{"valid", base + "room?t=" + tok, 200, ""},
	} {
		if status, code := get(tc.url); status != tc.status || code != tc.code {
			t.Errorf("%s: %d %s, want %d %s", tc.name, status, code, tc.status, tc.code)
		}
	}
	// Revocations reach the gateways within 5 s.
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		status, code := get(revokedLink["magic_link"].(string))
		if status == http.StatusUnauthorized && code == "link_revoked" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("revoked link: %d %s, want 401 link_revoked", status, code)
		}
		<-tick.C
	}
}
