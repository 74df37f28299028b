package httpapi

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"

	"github.com/amsrouter/ams/services/gateway/internal/controlplane"
	"github.com/amsrouter/ams/services/internal/wireerr"
)

// BearerCredential extracts the credential of `Authorization: Bearer …`
// (scheme case-insensitive). ok is false when the header is absent or of
// another scheme.
func BearerCredential(r *http.Request) (string, bool) {
	return controlplane.BearerCredential(authorization(r))
}

// authorization is the request's Authorization value, "" if absent.
func authorization(r *http.Request) string { return r.Header.Get("Authorization") }

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
func object(body []byte, emptyOK bool) (controlplane.Members, error) {
	trimmed := bytes.Trim(body, jsonSpace)
	if len(trimmed) == 0 && emptyOK {
		return controlplane.Members{}, nil
	}
	if len(trimmed) == 0 || trimmed[0] != '{' || !json.Valid(trimmed) {
		return nil, wireerr.New(wireerr.InvalidJSON, "the body must be a JSON object")
	}
	var m controlplane.Members
	if err := json.Unmarshal(trimmed, &m); err != nil {
		return nil, wireerr.New(wireerr.InvalidJSON, "the body must be a JSON object")
	}
	return m, nil
}

// publicBase is the base of magic links (spec 2.3): the configured public
// URL, else https://Host over TLS or behind X-Forwarded-Proto: https, else
// http://Host.
func (a *API) publicBase(r *http.Request) string {
	secure := r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
	return controlplane.PublicBase(a.d.PublicURL, secure, r.Host)
}

// MagicLink builds `{base}/{ns}/conversations/{alias}?t={token}`.
func MagicLink(base, ns, alias, token string) string {
	return controlplane.MagicLink(base, ns, alias, token)
}

func jsonValid(b []byte) bool { return json.Valid(b) }
