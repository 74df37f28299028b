package ams

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// MagicLink is a magic link taken apart (spec 2.3):
// `{Base}/{Namespace}/conversations/{Alias}?t={Token}`. Clients present
// links intact; the parts serve the calls that need them (inspect, gRPC).
type MagicLink struct {
	// Base is the scheme, host and any path prefix, without a trailing /.
	Base      string
	Namespace string
	Alias     string
	// Token is the admission token t (a JWT). Treat it as a secret.
	Token string

	raw string
}

// ErrInvalidMagicLink reports a string that is not a magic link. The text
// of the link is never part of the error: it holds a token.
var ErrInvalidMagicLink = errors.New("not a magic link: want {base}/{namespace}/conversations/{alias}?t={token}")

// ParseMagicLink takes a magic link apart.
func ParseMagicLink(link string) (MagicLink, error) {
	u, err := url.Parse(strings.TrimSpace(link))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return MagicLink{}, ErrInvalidMagicLink
	}
	path := strings.TrimSuffix(u.EscapedPath(), "/")
	i := strings.LastIndex(path, "/conversations/")
	if i < 0 {
		return MagicLink{}, ErrInvalidMagicLink
	}
	alias := path[i+len("/conversations/"):]
	prefix := path[:i]
	j := strings.LastIndex(prefix, "/")
	ns := prefix[j+1:]
	token := u.Query().Get("t")
	if ns == "" || alias == "" || strings.Contains(alias, "/") || token == "" {
		return MagicLink{}, ErrInvalidMagicLink
	}
	return MagicLink{
		Base:      u.Scheme + "://" + u.Host + prefix[:j],
		Namespace: ns,
		Alias:     alias,
		Token:     token,
		raw:       strings.TrimSpace(link),
	}, nil
}

// String returns the link as given to ParseMagicLink, or built from the
// parts.
func (l MagicLink) String() string {
	if l.raw != "" {
		return l.raw
	}
	return fmt.Sprintf("%s/%s/conversations/%s?t=%s", l.Base, l.Namespace, l.Alias, url.QueryEscape(l.Token))
}

// suffixed returns the link with a path suffix inserted before its query,
// the way derived URLs are built (spec 2.3).
func (l MagicLink) suffixed(suffix string) string {
	raw := l.String()
	i := strings.IndexByte(raw, '?')
	return strings.TrimSuffix(raw[:i], "/") + suffix + raw[i:]
}

// connectURL is the WebSocket URL of the link (spec 4.1).
func (l MagicLink) connectURL() string {
	u := l.suffixed("/connect")
	switch {
	case strings.HasPrefix(u, "https://"):
		return "wss://" + strings.TrimPrefix(u, "https://")
	case strings.HasPrefix(u, "http://"):
		return "ws://" + strings.TrimPrefix(u, "http://")
	}
	return u
}

// inspectURL is the control-plane URL of the conversation with the link's
// token (spec 3.5).
func (l MagicLink) inspectURL() string {
	return fmt.Sprintf("%s/v1/%s/conversations/%s?t=%s", l.Base, l.Namespace, l.Alias, url.QueryEscape(l.Token))
}
