// Package httpapi serves the gateway's HTTP surface: the control plane of
// spec 3 (accounts, conversations, links, operational endpoints) and the
// routing of the stream-plane, MCP and viewer paths to their handlers.
//
// Every error leaves through writeError, which renders the catalogue code
// as `{"error","message"}` with its status; anything not in the catalogue
// is logged once and answered `500 internal_error`.
package httpapi

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	accountv1 "github.com/amsrouter/ams/proto/gen/go/ams/account/v1"
	linkv1 "github.com/amsrouter/ams/proto/gen/go/ams/link/v1"
	"github.com/amsrouter/ams/services/gateway/internal/admission"
	"github.com/amsrouter/ams/services/gateway/internal/authcache"
	"github.com/amsrouter/ams/services/gateway/internal/controlplane"
	"github.com/amsrouter/ams/services/gateway/internal/limits"
	"github.com/amsrouter/ams/services/gateway/internal/metrics"
	"github.com/amsrouter/ams/services/internal/ids"
	"github.com/amsrouter/ams/services/internal/jsonw"
	"github.com/amsrouter/ams/services/internal/wireerr"
)

// Body limits of spec 3.1.
const (
	MaxBody    = controlplane.MaxBody
	MaxMCPBody = 4 << 20
)

// StreamInfo is one live stream of a conversation, as inspect lists it.
type StreamInfo = controlplane.StreamInfo

// Presence lists a conversation's live streams in join order.
type Presence = controlplane.Presence

// Handlers are the stream-plane, MCP and viewer handlers the router
// dispatches to. A nil handler answers as the spec says for a gateway
// without that surface.
type Handlers struct {
	Connect   http.Handler // GET …/connect (WebSocket or SSE)
	Tokens    http.Handler // POST …/streams/{name}/tokens
	Metadata  http.Handler // PUT …/streams/{name}/metadata
	MCP       http.Handler // /mcp
	MagicLink http.Handler // /{ns}/conversations/{alias}: MCP and viewer
}

// Deps are what the API needs.
type Deps struct {
	Log       *slog.Logger
	Metrics   *metrics.Metrics
	Accounts  accountv1.AccountServiceClient
	Links     linkv1.LinkServiceClient
	Auth      *authcache.Cache
	Admission *admission.Checker
	Deriver   *ids.Deriver
	Presence  Presence // nil: no live streams known
	// PublicURL is the base of magic links; empty derives it per request.
	PublicURL string
	// Ready reports readiness checks in order; nil answers ready.
	Ready func(ctx context.Context) []Check
	// Announce tells every gateway about a revocation or a rotation.
	AnnounceRevocation func(linkID string)
	AnnounceRotation   func(accountID string)
	Handlers           Handlers
	Now                func() time.Time
	// Limits rate-limits control-plane requests per client IP and per
	// credential (abuse controls); nil: none.
	Limits *limits.Limits
}

// Check is one readiness check: a name and "ok" or an error text.
type Check struct {
	Name   string
	Result string
}

// API is the gateway's HTTP handler.
type API struct {
	d   Deps
	ctl *controlplane.Service
}

// New returns the API.
func New(d Deps) *API {
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	ctl := controlplane.New(controlplane.Deps{
		Accounts:           d.Accounts,
		Links:              d.Links,
		Auth:               d.Auth,
		Admission:          d.Admission,
		Deriver:            d.Deriver,
		Presence:           d.Presence,
		AnnounceRevocation: d.AnnounceRevocation,
		AnnounceRotation:   d.AnnounceRotation,
	})
	return &API{d: d, ctl: ctl}
}

// Control is the control-plane service behind the API's routes, for the
// other transports that offer the same operations (gRPC).
func (a *API) Control() *controlplane.Service { return a.ctl }

type paramsKey struct{}

// PathParams returns the route parameters of a request dispatched by the
// API to a stream-plane handler.
func PathParams(r *http.Request) Params {
	p, _ := r.Context().Value(paramsKey{}).(Params)
	return p
}

// ServeHTTP routes, applies CORS, limits and metrics.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	route, params := match(r.URL.Path)
	rec := &recorder{ResponseWriter: w, status: http.StatusOK}
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			a.d.Log.Error("http handler panic", "route", route, "panic", fmt.Sprint(p))
			if !rec.wrote {
				a.writeError(rec, r, wireerr.New(wireerr.Internal, "internal error"))
			}
		}
		if a.d.Metrics != nil {
			a.d.Metrics.HTTPRequests.WithLabelValues(route, methodLabel(r.Method), strconv.Itoa(rec.status)).Inc()
			a.d.Metrics.HTTPDuration.WithLabelValues(route).Observe(time.Since(start).Seconds())
		}
	}()

	cors(rec.Header(), r)
	if r.Method == http.MethodOptions {
		rec.WriteHeader(http.StatusNoContent)
		return
	}
	if route == routeUnknown || !methodAllowed(route, r.Method) {
		a.writeError(rec, r, wireerr.New(wireerr.NotFound, "no such route"))
		return
	}
	limit := int64(MaxBody)
	if route == routeMCP || route == routeMagicLink {
		limit = MaxMCPBody
	}
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = http.MaxBytesReader(rec, r.Body, limit)
	}
	if isControl(route) {
		cred, _ := BearerCredential(r)
		if err := a.d.Limits.Control(a.d.Limits.ClientAddr(r.RemoteAddr, r.Header.Values("X-Forwarded-For")), cred); err != nil {
			a.writeError(rec, r, err)
			return
		}
	}
	r = r.WithContext(context.WithValue(r.Context(), paramsKey{}, params))

	var err error
	switch route {
	case routeHealthz:
		err = a.healthz(rec, r)
	case routeReadyz:
		err = a.readyz(rec, r)
	case routeMetrics:
		if a.d.Metrics == nil {
			err = wireerr.New(wireerr.NotFound, "metrics disabled")
			break
		}
		a.d.Metrics.Handler().ServeHTTP(rec, r)
	case routeJWKS:
		err = a.jwks(rec, r)
	case routeAccounts:
		err = a.createAccount(rec, r)
	case routeRotate:
		err = a.rotate(rec, r, params)
	case routeMint:
		err = a.mint(rec, r, params)
	case routeInspect:
		err = a.inspect(rec, r, params)
	case routeLinks:
		if r.Method == http.MethodPost {
			err = a.createLink(rec, r, params)
		} else {
			err = a.listLinks(rec, r, params)
		}
	case routeLink:
		err = a.revokeLink(rec, r, params)
	case routeConnect:
		err = a.dispatch(rec, r, a.d.Handlers.Connect, wireerr.New(wireerr.UpgradeRequired, "use a WebSocket upgrade or Accept: text/event-stream"))
	case routeTokens:
		err = a.dispatch(rec, r, a.d.Handlers.Tokens, wireerr.New(wireerr.NotFound, "emit is not served here"))
	case routeMetadata:
		err = a.dispatch(rec, r, a.d.Handlers.Metadata, wireerr.New(wireerr.NotFound, "emit is not served here"))
	case routeMCP:
		err = a.dispatch(rec, r, a.d.Handlers.MCP, wireerr.New(wireerr.NotFound, "MCP is not served here"))
	case routeMagicLink:
		err = a.dispatch(rec, r, a.d.Handlers.MagicLink, wireerr.New(wireerr.NotFound, "nothing is served at this link here"))
	}
	if err != nil {
		a.writeError(rec, r, err)
	}
}

func (a *API) dispatch(w http.ResponseWriter, r *http.Request, h http.Handler, missing error) error {
	if h == nil {
		return missing
	}
	h.ServeHTTP(w, r)
	return nil
}

func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodOptions, http.MethodPatch:
		return m
	}
	return "other"
}

// cors sets the CORS headers of spec 3.1 on every answer.
func cors(h http.Header, r *http.Request) {
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Allow-Methods", "GET, HEAD, POST, PUT, DELETE, OPTIONS")
	if req := r.Header.Values("Access-Control-Request-Headers"); len(req) > 0 {
		h.Set("Access-Control-Allow-Headers", strings.Join(req, ", "))
	}
	h.Set("Access-Control-Expose-Headers", "mcp-session-id")
	h.Set("Access-Control-Max-Age", "86400")
}

// WriteError renders err on w as spec 3 says: a catalogue code with its
// status and `{"error","message"}`; other errors as 500 internal_error,
// logged once here.
func WriteError(w http.ResponseWriter, log *slog.Logger, err error) {
	we, ok := wireerr.As(err)
	if !ok {
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			we = wireerr.New(wireerr.PayloadTooLarge, "request body too large")
		case errors.Is(err, context.Canceled):
			return // the client left; nobody reads an answer
		case errors.Is(err, context.DeadlineExceeded):
			we = wireerr.New(wireerr.Unavailable, "timed out")
		default:
			log.Error("request failed", "err", err)
			we = wireerr.New(wireerr.Internal, "internal error")
		}
	}
	status := we.Code.HTTP
	if status == 0 {
		status = http.StatusInternalServerError
	}
	msg := we.Message
	if msg == "" {
		msg = strings.ReplaceAll(we.Code.Name, "_", " ")
	}
	o := jsonw.Begin(make([]byte, 0, 96))
	o.Str("error", we.Code.Name)
	o.Str("message", msg)
	body := append(o.End(), '\n')
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	if we.Code.Name == wireerr.RateLimited.Name && h.Get("Retry-After") == "" {
		var ra interface{ RetryAfter() time.Duration }
		if errors.As(err, &ra) {
			h.Set("Retry-After", limits.RetryAfterSeconds(ra.RetryAfter()))
		} else {
			h.Set("Retry-After", "1")
		}
	}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func (a *API) writeError(w http.ResponseWriter, r *http.Request, err error) {
	WriteError(w, a.d.Log, err)
}

// writeJSON writes an already encoded JSON body.
func writeJSON(w http.ResponseWriter, status int, body []byte) error {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, err := w.Write(append(body, '\n'))
	return err
}

// recorder captures the status for metrics while passing through the
// interfaces streaming handlers need.
type recorder struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (r *recorder) WriteHeader(code int) {
	if !r.wrote {
		r.status = code
		r.wrote = true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	r.wrote = true
	return r.ResponseWriter.Write(b)
}

func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (r *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := r.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("hijack not supported")
	}
	r.status = http.StatusSwitchingProtocols
	r.wrote = true
	return hj.Hijack()
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
