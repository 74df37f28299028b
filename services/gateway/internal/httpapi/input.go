package httpapi

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/amsrouter/ams/services/gateway/internal/authcache"
	"github.com/amsrouter/ams/services/internal/wireerr"
)

// BearerCredential extracts the credential of `Authorization: Bearer …`
// (scheme case-insensitive). ok is false when the header is absent or of
// another scheme.
func BearerCredential(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	if len(h) < 7 || !strings.EqualFold(h[:7], "bearer ") {
		return "", false
	}
	c := strings.TrimSpace(h[7:])
	return c, c != ""
}

// authenticate resolves the request's Bearer credential: 401
// missing_credential without one, 401 invalid_credential for an unknown one.
func (a *API) authenticate(r *http.Request) (authcache.Account, error) {
	cred, ok := BearerCredential(r)
	if !ok {
		return authcache.Account{}, wireerr.New(wireerr.MissingCredential, "an Authorization: Bearer credential is required")
	}
	return a.d.Auth.Authenticate(r.Context(), cred)
}

// authenticateOwner authenticates and checks the account owns namespace ns.
func (a *API) authenticateOwner(r *http.Request, ns string) (authcache.Account, error) {
	acc, err := a.authenticate(r)
	if err != nil {
		return acc, err
	}
	if acc.Namespace != ns {
		return acc, wireerr.New(wireerr.NamespaceMismatch, "the credential does not own this namespace")
	}
	return acc, nil
}

// readBody reads the whole (size-limited) body.
func readBody(r *http.Request) ([]byte, error) {
	if r.Body == nil {
		return nil, nil
	}
	return io.ReadAll(r.Body)
}

// jsonSpace is the whitespace of JSON (RFC 8259): other Unicode spaces
// around a body make it something that is not JSON.
const jsonSpace = " \t\r\n"

// object parses a request body that must be a JSON object into its
// members, keeping each value's exact bytes. An empty or whitespace body is
// `{}` when emptyOK. Anything else that is not an object is invalid_json.
func object(body []byte, emptyOK bool) (map[string]json.RawMessage, error) {
	trimmed := bytes.Trim(body, jsonSpace)
	if len(trimmed) == 0 && emptyOK {
		return map[string]json.RawMessage{}, nil
	}
	if len(trimmed) == 0 || trimmed[0] != '{' || !json.Valid(trimmed) {
		return nil, wireerr.New(wireerr.InvalidJSON, "the body must be a JSON object")
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &m); err != nil {
		return nil, wireerr.New(wireerr.InvalidJSON, "the body must be a JSON object")
	}
	return m, nil
}

func isNull(v json.RawMessage) bool { return v == nil || string(v) == "null" }

// optString reads an optional string member: absent, null and "" give "".
// ok is false when the member holds another type.
func optString(m map[string]json.RawMessage, k string) (s string, ok bool) {
	v, present := m[k]
	if !present || isNull(v) {
		return "", true
	}
	if err := json.Unmarshal(v, &s); err != nil || v[0] != '"' {
		return "", false
	}
	return s, true
}

// optObject reads an optional JSON object member of at most max bytes:
// absent or null give def. The value's bytes are kept exactly.
func optObject(m map[string]json.RawMessage, k string, max int, def string) (string, bool) {
	v, present := m[k]
	if !present || isNull(v) {
		return def, true
	}
	if len(v) == 0 || v[0] != '{' || len(v) > max || !utf8.Valid(v) {
		return "", false
	}
	return string(v), true
}

// optInt reads an optional integer member within [lo, hi]: absent or null
// give present=false. ok is false for non-integers and out-of-range values.
func optInt(m map[string]json.RawMessage, k string, lo, hi int64) (n int64, present, ok bool) {
	v, present := m[k]
	if !present || isNull(v) {
		return 0, false, true
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil || n < lo || n > hi {
		return 0, true, false
	}
	return n, true, true
}

// publicBase is the base of magic links (spec 2.3): the configured public
// URL, else https://Host over TLS or behind X-Forwarded-Proto: https, else
// http://Host.
func (a *API) publicBase(r *http.Request) string {
	if a.d.PublicURL != "" {
		return strings.TrimRight(a.d.PublicURL, "/")
	}
	scheme := "http"
	if r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https") {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// MagicLink builds `{base}/{ns}/conversations/{alias}?t={token}`.
func MagicLink(base, ns, alias, token string) string {
	return base + "/" + ns + "/conversations/" + alias + "?t=" + token
}

func jsonValid(b []byte) bool { return json.Valid(b) }
