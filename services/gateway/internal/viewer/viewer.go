// Package viewer serves the live browser view of a conversation: the page
// a person gets when opening a magic link in a browser (spec 3.7, GET with
// `Accept: text/html`).
//
// The page is one self-contained HTML document, assembled once from the
// embedded page.html, viewer.css and viewer.js: no build step, no external
// assets. Its Content-Security-Policy allows exactly the inline style and
// script it carries (by SHA-256 hash) and WebSocket connections to its own
// origin; nothing else loads. The script connects to the same gateway as
// an observer (spec 4.7) through the browser path (spec 4.1: the link with
// `/connect` inserted before `?`, query aliases `observe=1` and `resume=`),
// shows every stream of the conversation live, and reconnects with a
// resume cursor, so a refresh or a network blip loses nothing retained.
// Every payload is rendered as text, never as HTML.
//
// The handler checks the link before serving the page (the magic-link POST
// checks from the second on): the page is only ever served to holders of a
// valid link, and it carries no conversation data of its own.
package viewer

import (
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/amsrouter/ams/services/gateway/internal/connreq"
	"github.com/amsrouter/ams/services/gateway/internal/httpapi"
	"github.com/amsrouter/ams/services/gateway/internal/wsconn"
	"github.com/amsrouter/ams/services/internal/wireerr"
)

var (
	//go:embed page.html
	pageHTML string
	//go:embed viewer.css
	pageCSS string
	//go:embed viewer.js
	pageJS string
)

// page is the assembled document and its Content-Security-Policy.
var page, csp = assemble(pageHTML, pageCSS, pageJS)

// assemble puts the style and the script into the page and returns it with
// the policy that admits exactly them.
func assemble(html, css, js string) ([]byte, string) {
	doc := strings.Replace(html, "/*STYLE*/", css, 1)
	doc = strings.Replace(doc, "/*SCRIPT*/", js, 1)
	policy := strings.Join([]string{
		"default-src 'none'",
		"script-src " + hash(js),
		"style-src " + hash(css),
		"connect-src 'self'",
		"base-uri 'none'",
		"form-action 'none'",
		"frame-ancestors 'none'",
	}, "; ")
	return []byte(doc), policy
}

func hash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}

// Handler serves the viewer page on GET /{ns}/conversations/{alias}. The
// router (httpapi) and the magic-link dispatch (mcpserver) decide which
// requests reach it; it answers every request it gets with the page or a
// link error.
type Handler struct {
	Log      *slog.Logger
	Admitter *wsconn.Admitter
}

// ServeHTTP checks the link and serves the page.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := h.check(r); err != nil {
		httpapi.WriteError(w, h.Log, err)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", "text/html; charset=utf-8")
	hd.Set("Content-Length", strconv.Itoa(len(page)))
	hd.Set("Cache-Control", "no-store")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Content-Security-Policy", csp)
	hd.Add("Vary", "Accept")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(page)
	}
}

// check applies the magic-link checks of spec 3.7 (those of POST from the
// second on): no token is `400 invalid_magic_link`, an unknown
// conversation `404 conversation_not_found`, a bad, expired or revoked
// token `401 invalid_magic_link` / `link_expired` / `link_revoked`. No
// credential is needed: the page connects as an observer.
func (h *Handler) check(r *http.Request) error {
	p := httpapi.PathParams(r)
	raw := connreq.Raw{Token: r.URL.Query().Get("t")}
	if raw.Token == "" {
		return wireerr.New(wireerr.InvalidMagicLink.WithHTTP(http.StatusBadRequest), "the link token t is missing")
	}
	_, err := h.Admitter.Authorize(r.Context(), p.NS, p.Alias, &raw, true)
	if we, ok := wireerr.As(err); ok {
		switch we.Code.Name {
		case wireerr.InvalidMagicLink.Name, wireerr.LinkExpired.Name, wireerr.LinkRevoked.Name:
			return wireerr.New(we.Code.WithHTTP(http.StatusUnauthorized), we.Message)
		}
	}
	return err
}
