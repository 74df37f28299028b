package e2e

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/amsrouter/ams/services/gateway/gatewayd"
	"github.com/amsrouter/ams/services/gateway/internal/gwtest"
	"github.com/amsrouter/ams/services/internal/ids"
	"github.com/amsrouter/ams/services/internal/linktoken"
)

var mintKeys = []string{"conversation_id", "alias", "magic_link", "stream_id", "stream_name", "metadata",
	"stream_metadata", "created_at", "link_id", "expires_at"}

// rawField returns the exact bytes of a top-level member of a JSON object.
func rawField(t *testing.T, body []byte, key string) string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("body: %v", err)
	}
	return string(m[key])
}

// C10, C1, C2: a full mint answers the ten fields of 3.4 in order, in
// their formats, with the derived stream id; metadata comes back byte for
// byte, also from inspect.
func TestC10Mint(t *testing.T) {
	t.Parallel()
	sys := start(t, 1)
	accID, cred := sys.CreateAccount(t, 0, "acme")
	base := sys.URL(0)

	// Odd spacing, key order, escapes and number forms: all kept as sent.
	metadata := `{ "b" :1,"a":[1, 2,{"z":null}],"u":"\u00e9 \ud83d\ude00 é","n":1.50e3 , "": {} }`
	streamMetadata := `{"role" : "writer","x":[true,false]}`
	body := `{"alias":"room-1","stream_name":"Writer.1_a-b","id_kind":"uuid","metadata":` + metadata +
		`,"stream_metadata":` + streamMetadata + `,"link_expires_in":3600,"unknown":{"ignored":true}}`
	r := call(t, post, base+"/v1/acme/conversations", bearer(cred), body)
	if r.Status != http.StatusCreated {
		t.Fatalf("mint: %d %s", r.Status, r.Body)
	}
	wantKeys(t, r.Body, mintKeys...)
	m := r.JSON(t)
	convID := str(t, m, "conversation_id")
	wantMatch(t, "conversation_id", convID, convIDRe)
	wantMatch(t, "link_id", str(t, m, "link_id"), linkIDRe)
	wantMatch(t, "stream_id", str(t, m, "stream_id"), streamIDRe)
	if got := str(t, m, "alias"); got != "room-1" {
		t.Errorf("alias = %q", got)
	}
	if got := str(t, m, "stream_name"); got != "Writer.1_a-b" {
		t.Errorf("stream_name = %q", got)
	}
	want := ids.NewDeriver(sys.DerivationPepper).StreamID(convID, accID, "Writer.1_a-b")
	if got := str(t, m, "stream_id"); got != want {
		t.Errorf("stream_id = %q, want the derived %q", got, want)
	}
	if got := rawField(t, r.Body, "metadata"); got != metadata {
		t.Errorf("metadata = %s, want byte-identical %s", got, metadata)
	}
	if got := rawField(t, r.Body, "stream_metadata"); got != streamMetadata {
		t.Errorf("stream_metadata = %s, want byte-identical %s", got, streamMetadata)
	}
	created := wantRecent(t, "created_at", str(t, m, "created_at"))
	wantMatch(t, "expires_at", str(t, m, "expires_at"), timestampRe)
	exp, _ := time.Parse(time.RFC3339Nano, str(t, m, "expires_at"))
	if d := exp.Sub(created); d != time.Hour {
		t.Errorf("expires_at - created_at = %s, want 1h", d)
	}
	link := str(t, m, "magic_link")
	wantLink := regexp.MustCompile(`^` + regexp.QuoteMeta(base) + `/acme/conversations/room-1\?t=([^&]+)$`)
	if !wantLink.MatchString(link) {
		t.Errorf("magic_link = %q, want %s", link, wantLink)
	}

	// Inspect returns the same metadata bytes.
	r = call(t, get, base+"/v1/acme/conversations/room-1?t="+gwtest.LinkToken(t, link), nil, "")
	if r.Status != http.StatusOK {
		t.Fatalf("inspect: %d %s", r.Status, r.Body)
	}
	if got := rawField(t, r.Body, "metadata"); got != metadata {
		t.Errorf("inspect metadata = %s, want byte-identical %s", got, metadata)
	}
	// Same tuple, same stream id (C2): a second conversation differs.
	m2 := sys.Mint(t, 0, cred, "acme", `{"stream_name":"Writer.1_a-b"}`)
	if str(t, m2, "stream_id") == str(t, m, "stream_id") {
		t.Errorf("two conversations gave one stream_id")
	}
}

// C10, C1: absent, null and empty fields take the defaults of 3.4: a
// random alias, a default stream name, {} metadata, no expiry.
func TestC10MintDefaults(t *testing.T) {
	t.Parallel()
	sys := start(t, 1)
	_, cred := sys.CreateAccount(t, 0, "acme")
	for _, body := range []string{``, "  \n ", `{}`, `{"alias":null,"stream_name":null,"metadata":null,"stream_metadata":null,"link_expires_in":null}`, `{"alias":"","stream_name":""}`} {
		r := call(t, post, sys.URL(0)+"/v1/acme/conversations", bearer(cred), body)
		if r.Status != http.StatusCreated {
			t.Fatalf("body %q: %d %s", body, r.Status, r.Body)
		}
		wantKeys(t, r.Body, mintKeys...)
		m := r.JSON(t)
		alias := str(t, m, "alias")
		wantMatch(t, "alias", alias, randomAliasRe)
		parts := strings.Split(alias, "-")
		if len(parts) == 3 && (!slices.Contains(adjectives, parts[0]) || !slices.Contains(nouns, parts[1])) {
			t.Errorf("alias %q is not ADJ-NOUN-n from the 2.1 lists", alias)
		}
		wantMatch(t, "stream_name", str(t, m, "stream_name"), defaultNameRe)
		for _, k := range []string{"metadata", "stream_metadata"} {
			if got := rawField(t, r.Body, k); got != `{}` {
				t.Errorf("%s = %s, want {}", k, got)
			}
		}
		if got := rawField(t, r.Body, "expires_at"); got != `null` {
			t.Errorf("expires_at = %s, want null", got)
		}
		if !strings.Contains(str(t, m, "magic_link"), "/acme/conversations/"+alias+"?t=") {
			t.Errorf("magic_link does not name the random alias")
		}
	}
}

// C10, C11, C13: the mint errors of 3.4, each case failing exactly one
// check so that the order shows: credentials, then the namespace (before
// the body), then the body fields in the listed order.
func TestC10MintErrorsInOrder(t *testing.T) {
	t.Parallel()
	sys := start(t, 1)
	_, cred := sys.CreateAccount(t, 0, "acme")
	_, otherCred := sys.CreateAccount(t, 0, "other")
	sys.Mint(t, 0, cred, "acme", `{"alias":"taken"}`)
	unknown := "ams_sk_" + strings.Repeat("A", 43)
	big := func(n int) string { return `{"k":"` + strings.Repeat("x", n-len(`{"k":""}`)) + `"}` }
	tests := []struct {
		name   string
		ns     string
		header map[string]string
		body   string
		status int
		code   string
	}{
		{"no credential, bad body", "acme", nil, `{`, 401, "missing_credential"},
		{"other scheme", "acme", map[string]string{"Authorization": "Basic " + cred}, `{}`, 401, "missing_credential"},
		{"empty bearer", "acme", map[string]string{"Authorization": "Bearer "}, `{}`, 401, "missing_credential"},
		{"unknown credential, bad body", "acme", bearer(unknown), `{`, 401, "invalid_credential"},
		{"malformed credential", "acme", bearer("hunter2"), `{}`, 401, "invalid_credential"},
		{"foreign namespace, bad body", "other", bearer(cred), `{`, 403, "namespace_mismatch"},
		{"foreign namespace, bad alias", "other", bearer(cred), `{"alias":"BAD"}`, 403, "namespace_mismatch"},
		{"namespace without account", "nobody", bearer(cred), `{}`, 403, "namespace_mismatch"},
		{"invalid namespace path", "Acme", bearer(cred), `{}`, 403, "namespace_mismatch"},
		{"other's credential here", "acme", bearer(otherCred), `{}`, 403, "namespace_mismatch"},
		{"unparseable", "acme", bearer(cred), `{"alias":`, 400, "invalid_json"},
		{"array", "acme", bearer(cred), `[]`, 400, "invalid_json"},
		{"null", "acme", bearer(cred), `null`, 400, "invalid_json"},
		{"string", "acme", bearer(cred), `"x"`, 400, "invalid_json"},
		{"trailing garbage", "acme", bearer(cred), `{} {}`, 400, "invalid_json"},
		{"form feed", "acme", bearer(cred), "\f", 400, "invalid_json"},
		{"alias pattern, bad name too", "acme", bearer(cred), `{"alias":"Room","stream_name":"-x"}`, 400, "invalid_alias"},
		{"alias number", "acme", bearer(cred), `{"alias":7}`, 400, "invalid_alias"},
		{"alias too long", "acme", bearer(cred), `{"alias":"` + strings.Repeat("a", 64) + `"}`, 400, "invalid_alias"},
		{"alias leading dash", "acme", bearer(cred), `{"alias":"-a"}`, 400, "invalid_alias"},
		{"name pattern, bad kind too", "acme", bearer(cred), `{"stream_name":".x","id_kind":"ulid"}`, 400, "invalid_stream_name"},
		{"name array", "acme", bearer(cred), `{"stream_name":["x"]}`, 400, "invalid_stream_name"},
		{"name too long", "acme", bearer(cred), `{"stream_name":"` + strings.Repeat("A", 64) + `"}`, 400, "invalid_stream_name"},
		{"name with space", "acme", bearer(cred), `{"stream_name":"a b"}`, 400, "invalid_stream_name"},
		{"id_kind ulid, bad metadata too", "acme", bearer(cred), `{"id_kind":"ulid","metadata":1}`, 400, "unsupported_id_kind"},
		{"id_kind null", "acme", bearer(cred), `{"id_kind":null}`, 400, "unsupported_id_kind"},
		{"id_kind empty", "acme", bearer(cred), `{"id_kind":""}`, 400, "unsupported_id_kind"},
		{"id_kind UUID", "acme", bearer(cred), `{"id_kind":"UUID"}`, 400, "unsupported_id_kind"},
		{"metadata array, bad stream metadata too", "acme", bearer(cred), `{"metadata":[],"stream_metadata":1}`, 400, "invalid_metadata"},
		{"metadata string", "acme", bearer(cred), `{"metadata":"{}"}`, 400, "invalid_metadata"},
		{"metadata over 64 KiB", "acme", bearer(cred), `{"metadata":` + big(64<<10+1) + `}`, 400, "invalid_metadata"},
		{"stream metadata number, bad expiry too", "acme", bearer(cred), `{"stream_metadata":1,"link_expires_in":1}`, 400, "invalid_stream_metadata"},
		{"stream metadata over 16 KiB", "acme", bearer(cred), `{"stream_metadata":` + big(16<<10+1) + `}`, 400, "invalid_stream_metadata"},
		{"expiry 59", "acme", bearer(cred), `{"link_expires_in":59}`, 400, "invalid_link_expiry"},
		{"expiry one year and a second", "acme", bearer(cred), `{"link_expires_in":31536001}`, 400, "invalid_link_expiry"},
		{"expiry string", "acme", bearer(cred), `{"link_expires_in":"60"}`, 400, "invalid_link_expiry"},
		{"expiry fraction", "acme", bearer(cred), `{"link_expires_in":60.5}`, 400, "invalid_link_expiry"},
		{"expiry negative", "acme", bearer(cred), `{"link_expires_in":-60}`, 400, "invalid_link_expiry"},
		{"alias taken", "acme", bearer(cred), `{"alias":"taken"}`, 409, "alias_taken"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			wantError(t, call(t, post, sys.URL(0)+"/v1/"+tc.ns+"/conversations", tc.header, tc.body), tc.status, tc.code)
		})
	}

	// The bounds themselves are accepted.
	for _, body := range []string{
		`{"metadata":` + big(64<<10) + `,"stream_metadata":` + big(16<<10) + `}`,
		`{"link_expires_in":60}`, `{"link_expires_in":31536000}`,
		`{"alias":"` + strings.Repeat("a", 63) + `","stream_name":"` + strings.Repeat("Z", 63) + `"}`,
	} {
		if r := call(t, post, sys.URL(0)+"/v1/acme/conversations", bearer(cred), body); r.Status != http.StatusCreated {
			t.Errorf("body of %d bytes: %d %.200s", len(body), r.Status, r.Body)
		}
	}
	// The Bearer scheme is case-insensitive.
	if r := call(t, post, sys.URL(0)+"/v1/acme/conversations", map[string]string{"Authorization": "bEaReR " + cred}, ""); r.Status != http.StatusCreated {
		t.Errorf("lower-case scheme: %d %s", r.Status, r.Body)
	}
}

// C9: concurrent mints of one alias in a namespace succeed exactly once.
func TestC9ConcurrentAliasCreation(t *testing.T) {
	t.Parallel()
	sys := start(t, 2)
	_, cred := sys.CreateAccount(t, 0, "acme")
	answers := concurrently(12, func(i int) *gwtest.Response {
		return call(t, post, sys.URL(i%2)+"/v1/acme/conversations", bearer(cred), `{"alias":"contested"}`)
	})
	wantOneCreated(t, answers, "alias_taken")
}

// C10 (2.3): the magic link's base is the configured public URL, else
// https://Host behind X-Forwarded-Proto: https, else http://Host; the
// token's issuer is the same base.
func TestC10MagicLinkBase(t *testing.T) {
	t.Parallel()
	sys := gwtest.Start(t, gwtest.Options{Gateways: 2, Gateway: func(i int, cfg *gatewayd.Config) {
		if i == 1 {
			cfg.PublicURL = "https://ams.example.com/base/"
		}
	}})
	_, cred := sys.CreateAccount(t, 0, "acme")
	withHeaders := func(extra map[string]string) map[string]string {
		h := bearer(cred)
		for k, v := range extra {
			h[k] = v
		}
		return h
	}
	host := strings.TrimPrefix(sys.URL(0), "http://")
	tests := []struct {
		name   string
		gw     int
		header map[string]string
		base   string
	}{
		{"request host", 0, nil, "http://" + host},
		{"forwarded https", 0, map[string]string{"X-Forwarded-Proto": "https"}, "https://" + host},
		{"forwarded HTTPS", 0, map[string]string{"X-Forwarded-Proto": "HTTPS"}, "https://" + host},
		{"forwarded http", 0, map[string]string{"X-Forwarded-Proto": "http"}, "http://" + host},
		{"other host", 0, map[string]string{"Host": "agents.example:8443", "X-Forwarded-Proto": "https"}, "https://agents.example:8443"},
		{"configured public URL wins", 1, map[string]string{"Host": "ignored.example", "X-Forwarded-Proto": "http"}, "https://ams.example.com/base"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			alias := fmt.Sprintf("room-%d", i)
			r := call(t, post, sys.URL(tc.gw)+"/v1/acme/conversations", withHeaders(tc.header), `{"alias":"`+alias+`"}`)
			if r.Status != http.StatusCreated {
				t.Fatalf("mint: %d %s", r.Status, r.Body)
			}
			link := str(t, r.JSON(t), "magic_link")
			prefix := tc.base + "/acme/conversations/" + alias + "?t="
			if !strings.HasPrefix(link, prefix) || !jwtRe.MatchString(strings.TrimPrefix(link, prefix)) {
				t.Errorf("magic_link = %q, want %s<jwt>", link, prefix)
			}
			_, claims := decodeJWT(t, gwtest.LinkToken(t, link))
			if claims["iss"] != tc.base {
				t.Errorf("iss = %v, want %q", claims["iss"], tc.base)
			}
			// Links minted later use the same base.
			r = call(t, post, sys.URL(tc.gw)+"/v1/acme/conversations/"+alias+"/links", withHeaders(tc.header), `{}`)
			if got := str(t, r.JSON(t), "magic_link"); !strings.HasPrefix(got, prefix) {
				t.Errorf("link magic_link = %q, want prefix %q", got, prefix)
			}
		})
	}
}

// decodeJWT decodes a compact JWT's header and claims (no verification).
func decodeJWT(t *testing.T, token string) (header, claims map[string]any) {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	dec := func(s string) map[string]any {
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil {
			t.Fatalf("token part: %v", err)
		}
		return gwtest.DecodeObject(t, b)
	}
	return dec(parts[0]), dec(parts[1])
}

// C6: the token is an EdDSA JWT with the 2.3 header and claims; its kid
// is in /.well-known/jwks.json, whose key verifies it.
func TestC6TokenAndJWKS(t *testing.T) {
	t.Parallel()
	sys := start(t, 1)
	_, cred := sys.CreateAccount(t, 0, "acme")

	r := call(t, get, sys.URL(0)+"/.well-known/jwks.json", nil, "")
	if r.Status != http.StatusOK {
		t.Fatalf("jwks: %d %s", r.Status, r.Body)
	}
	var set struct {
		Keys []map[string]string `json:"keys"`
	}
	if err := json.Unmarshal(r.Body, &set); err != nil {
		t.Fatalf("jwks body: %v: %s", err, r.Body)
	}
	wantKeys(t, r.Body, "keys")
	if len(set.Keys) != 1 {
		t.Fatalf("jwks has %d keys, want 1", len(set.Keys))
	}
	k := set.Keys[0]
	pub := sys.SigningKeys[0].Public().(ed25519.PublicKey)
	want := map[string]string{"kty": "OKP", "crv": "Ed25519", "x": base64.RawURLEncoding.EncodeToString(pub),
		"kid": linktoken.KeyID(pub), "alg": "EdDSA", "use": "sig"}
	for f, v := range want {
		if k[f] != v {
			t.Errorf("jwks key %s = %q, want %q", f, k[f], v)
		}
	}
	if len(k) != len(want) {
		t.Errorf("jwks key has fields %v", k)
	}
	jwksKey := func(kid string) (ed25519.PublicKey, bool) {
		for _, k := range set.Keys {
			if k["kid"] == kid {
				x, err := base64.RawURLEncoding.DecodeString(k["x"])
				return ed25519.PublicKey(x), err == nil
			}
		}
		return nil, false
	}

	for _, tc := range []struct {
		name, body string
		exp        bool
	}{{"no expiry", `{"alias":"forever"}`, false}, {"expiring", `{"alias":"brief","link_expires_in":120}`, true}} {
		t.Run(tc.name, func(t *testing.T) {
			m := sys.Mint(t, 0, cred, "acme", tc.body)
			tok := gwtest.LinkToken(t, m)
			h, c := decodeJWT(t, tok)
			if h["alg"] != "EdDSA" || h["typ"] != "JWT" || h["kid"] != want["kid"] || len(h) != 3 {
				t.Errorf("header = %v, want alg EdDSA, typ JWT, kid %s", h, want["kid"])
			}
			if c["sub"] != m["conversation_id"] || c["ns"] != "acme" || c["alias"] != m["alias"] || c["jti"] != m["link_id"] {
				t.Errorf("claims = %v, want sub, ns, alias, jti of the conversation and link", c)
			}
			if _, ok := c["iat"]; !ok {
				t.Errorf("claims lack iat: %v", c)
			}
			if _, ok := c["exp"]; ok != tc.exp {
				t.Errorf("exp present = %v, want %v", ok, tc.exp)
			}
			if _, err := linktoken.Verify(tok, jwksKey, str(t, m, "conversation_id"), "acme", str(t, m, "alias"), time.Now()); err != nil {
				t.Errorf("token does not verify with the published key: %v", err)
			}
		})
	}
}

// C12: inspect with a valid t, or without t with the owner's Bearer,
// answers the 3.5 body; a t wins over a Bearer.
func TestC12Inspect(t *testing.T) {
	t.Parallel()
	sys := start(t, 1)
	_, cred := sys.CreateAccount(t, 0, "acme")
	_, otherCred := sys.CreateAccount(t, 0, "other")
	m := sys.Mint(t, 0, cred, "acme", `{"alias":"room","metadata":{"topic":"x"}}`)
	tok := gwtest.LinkToken(t, m)
	u := sys.URL(0) + "/v1/acme/conversations/room"

	check := func(t *testing.T, r *gwtest.Response) {
		t.Helper()
		if r.Status != http.StatusOK {
			t.Fatalf("inspect: %d %s", r.Status, r.Body)
		}
		wantKeys(t, r.Body, "conversation_id", "namespace", "alias", "metadata", "created_at", "id_kind", "streams")
		got := r.JSON(t)
		if got["conversation_id"] != m["conversation_id"] || got["namespace"] != "acme" || got["alias"] != "room" ||
			got["created_at"] != m["created_at"] || got["id_kind"] != "uuid" {
			t.Errorf("inspect = %s, want the minted conversation", r.Body)
		}
		if s := rawField(t, r.Body, "metadata"); s != `{"topic":"x"}` {
			t.Errorf("metadata = %s", s)
		}
		if s := rawField(t, r.Body, "streams"); s != `[]` {
			t.Errorf("streams = %s, want [] (nobody connected)", s)
		}
	}
	t.Run("token", func(t *testing.T) { check(t, call(t, get, u+"?t="+tok, nil, "")) })
	t.Run("token and trailing slash", func(t *testing.T) { check(t, call(t, get, u+"/?t="+tok, nil, "")) })
	t.Run("owner bearer", func(t *testing.T) { check(t, call(t, get, u, bearer(cred), "")) })
	t.Run("token wins over a stranger's bearer", func(t *testing.T) { check(t, call(t, get, u+"?t="+tok, bearer(otherCred), "")) })
	t.Run("token of a later link", func(t *testing.T) {
		r := call(t, post, u+"/links", bearer(cred), `{"label":"second"}`)
		check(t, call(t, get, u+"?t="+gwtest.LinkToken(t, r.JSON(t)), nil, ""))
	})
}

// C12, C7, C13, C14: the inspect errors of 3.5 in order, plus the owner
// Bearer's own failures.
func TestC12InspectErrorsInOrder(t *testing.T) {
	t.Parallel()
	sys := start(t, 1)
	_, cred := sys.CreateAccount(t, 0, "acme")
	_, otherCred := sys.CreateAccount(t, 0, "other")
	m := sys.Mint(t, 0, cred, "acme", `{"alias":"room"}`)
	tok := gwtest.LinkToken(t, m)
	otherConv := sys.Mint(t, 0, cred, "acme", `{"alias":"elsewhere"}`)
	otherTok := gwtest.LinkToken(t, otherConv)
	convID, linkID := str(t, m, "conversation_id"), str(t, m, "link_id")

	// Tokens built with the link service's key or a stranger's.
	key := sys.SigningKey()
	now := time.Now()
	mint := func(k linktoken.Key, conv, ns, alias, link string, iat, exp time.Time) string {
		s, err := linktoken.Mint(k, "http://x", conv, ns, alias, link, iat, exp)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	_, stranger, _ := ed25519.GenerateKey(nil)
	strangerKey := linktoken.NewKey(stranger)
	sameKidStranger := linktoken.Key{ID: key.ID, Private: stranger}
	expired := mint(key, convID, "acme", "room", linkID, now.Add(-time.Hour), now.Add(-6*time.Second))
	parts := strings.Split(tok, ".")
	badSig := parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(make([]byte, 64))
	noneAlg := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","kid":"`+key.ID+`","typ":"JWT"}`)) + "." + parts[1] + "."
	hsAlg := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","kid":"`+key.ID+`","typ":"JWT"}`)) + "." + parts[1] + "." + parts[2]

	// A revoked link of this conversation.
	r := call(t, post, sys.URL(0)+"/v1/acme/conversations/room/links", bearer(cred), `{}`)
	revoked := r.JSON(t)
	if r := call(t, del, sys.URL(0)+"/v1/acme/conversations/room/links/"+str(t, revoked, "link_id"), bearer(cred), ""); r.Status != http.StatusOK {
		t.Fatalf("revoke: %d %s", r.Status, r.Body)
	}
	revokedTok := gwtest.LinkToken(t, revoked)
	expiredAndRevoked := mint(key, convID, "acme", "room", str(t, revoked, "link_id"), now.Add(-time.Hour), now.Add(-time.Minute))
	u := sys.URL(0) + "/v1/"
	// Revocation reaches the gateway asynchronously (within 5 s).
	eventually(t, 5*time.Second, "revoked link refused", func() bool {
		return call(t, get, u+"acme/conversations/room?t="+revokedTok, nil, "").Status == http.StatusForbidden
	})

	tests := []struct {
		name   string
		path   string
		header map[string]string
		status int
		code   string
	}{
		{"no token, no bearer", "acme/conversations/room", nil, 400, "missing_token"},
		{"no token, unknown alias", "acme/conversations/nowhere", nil, 400, "missing_token"},
		{"empty token", "acme/conversations/room?t=", nil, 400, "missing_token"},
		{"unknown alias, good token", "acme/conversations/nowhere?t=" + tok, nil, 404, "not_found"},
		{"unknown alias, bad token", "acme/conversations/nowhere?t=garbage", nil, 404, "not_found"},
		{"invalid alias", "acme/conversations/No_Such?t=" + tok, nil, 404, "not_found"},
		{"unknown namespace", "nobody/conversations/room?t=" + tok, nil, 404, "not_found"},
		{"garbage token", "acme/conversations/room?t=garbage", nil, 403, "invalid_token"},
		{"another conversation's token", "acme/conversations/room?t=" + otherTok, nil, 403, "invalid_token"},
		{"bad signature", "acme/conversations/room?t=" + badSig, nil, 403, "invalid_token"},
		{"unknown kid", "acme/conversations/room?t=" + mint(strangerKey, convID, "acme", "room", linkID, now, time.Time{}), nil, 403, "invalid_token"},
		{"known kid, stranger's key", "acme/conversations/room?t=" + mint(sameKidStranger, convID, "acme", "room", linkID, now, time.Time{}), nil, 403, "invalid_token"},
		{"alg none", "acme/conversations/room?t=" + noneAlg, nil, 403, "invalid_token"},
		{"alg HS256", "acme/conversations/room?t=" + hsAlg, nil, 403, "invalid_token"},
		{"wrong ns claim", "acme/conversations/room?t=" + mint(key, convID, "other", "room", linkID, now, time.Time{}), nil, 403, "invalid_token"},
		{"wrong alias claim", "acme/conversations/room?t=" + mint(key, convID, "acme", "elsewhere", linkID, now, time.Time{}), nil, 403, "invalid_token"},
		{"expired another conversation's", "acme/conversations/room?t=" + mint(key, str(t, otherConv, "conversation_id"), "acme", "elsewhere", linkID, now.Add(-time.Hour), now.Add(-time.Minute)), nil, 403, "invalid_token"},
		{"expired", "acme/conversations/room?t=" + expired, nil, 403, "link_expired"},
		{"expired and revoked", "acme/conversations/room?t=" + expiredAndRevoked, nil, 403, "link_expired"},
		{"revoked", "acme/conversations/room?t=" + revokedTok, nil, 403, "link_revoked"},
		{"revoked, with the owner's bearer", "acme/conversations/room?t=" + revokedTok, bearer(cred), 403, "link_revoked"},
		{"bearer of another namespace", "acme/conversations/room", bearer(otherCred), 403, "namespace_mismatch"},
		{"unknown bearer", "acme/conversations/room", bearer("ams_sk_" + strings.Repeat("B", 43)), 401, "invalid_credential"},
		{"owner bearer, unknown alias", "acme/conversations/nowhere", bearer(cred), 404, "not_found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			wantError(t, call(t, get, u+tc.path, tc.header, ""), tc.status, tc.code)
		})
	}

	// C14: within 5 s after exp the token is still accepted.
	inLeeway := mint(key, convID, "acme", "room", linkID, time.Now().Add(-time.Hour), time.Now().Add(-2*time.Second))
	if r := call(t, get, u+"acme/conversations/room?t="+inLeeway, nil, ""); r.Status != http.StatusOK {
		t.Errorf("token 2 s past exp: %d %s, want 200 (5 s leeway)", r.Status, r.Body)
	}
}
