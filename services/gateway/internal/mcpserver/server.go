package mcpserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/nats-io/nats.go"

	linkv1 "github.com/amsrouter/ams/proto/gen/go/ams/link/v1"
	"github.com/amsrouter/ams/services/gateway/internal/admission"
	"github.com/amsrouter/ams/services/gateway/internal/authcache"
	"github.com/amsrouter/ams/services/gateway/internal/httpapi"
	"github.com/amsrouter/ams/services/gateway/internal/hub"
	"github.com/amsrouter/ams/services/gateway/internal/limits"
	"github.com/amsrouter/ams/services/internal/ids"
	"github.com/amsrouter/ams/services/internal/jsonw"
	"github.com/amsrouter/ams/services/internal/wireerr"
)

// Transport error codes of spec 5.5.
const (
	codeServer       = -32000
	codeParse        = -32700
	codeInvalid      = -32600
	codeNoSession    = -32001
	sessionHeader    = "Mcp-Session-Id"
	defaultKeepalive = 15 * time.Second
)

// Config configures the MCP server of a gateway.
type Config struct {
	Log *slog.Logger
	// Gateway is this replica's name: the holder of the wires it opens.
	Gateway   string
	Hub       *hub.Hub
	Auth      *authcache.Cache
	Admission *admission.Checker
	Deriver   *ids.Deriver
	Links     linkv1.LinkServiceClient
	// NATS is the gateway's connection: the sessions bucket and the push
	// subjects live there. Replicas and Memory configure the bucket.
	NATS     *nats.Conn
	Replicas int
	Memory   bool
	// PublicURL is the base of magic links; empty derives it per request.
	PublicURL string
	// Keepalive is the push leg's idle interval (spec: 15 s).
	Keepalive time.Duration
	// IdleTimeout ends the wire of a session nobody uses: no tool call on
	// the holder and no push leg anywhere for this long (default 30 min).
	// The stream leaves after its grace; a later call re-joins it.
	IdleTimeout time.Duration
	// Viewer serves GET with Accept text/html on the magic-link URL; nil
	// answers 404.
	Viewer http.Handler
	// Limits rate-limits each session's requests and its account's tokens
	// and initialize per client address (abuse controls); nil: none.
	Limits *limits.Limits
}

// Server serves MCP over Streamable HTTP on /mcp and on magic-link URLs.
// Each HTTP request runs on a short-lived SDK session rebuilt from the
// session record, so any replica serves any request (see doc.go).
type Server struct {
	cfg   Config
	log   *slog.Logger
	store *store
	base  *mcp.Server

	mu       sync.Mutex
	sessions map[string]*session
	links    map[string]*mcp.Server // per conversation id
	calls    map[*mcp.ServerSession]call
	legs     map[*mcp.ServerSession]struct{}
	hooked   map[*http.Server]bool
	closed   bool
}

// call is what a tool call needs beyond its SDK session.
type call struct {
	sess *session
	conn *patchConn
	base string // public base URL for minted links
}

// New opens the sessions bucket and returns the server.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Keepalive == 0 {
		cfg.Keepalive = defaultKeepalive
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = 30 * time.Minute
	}
	st, err := openStore(ctx, cfg.NATS, cfg.Replicas, cfg.Memory)
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg: cfg, log: cfg.Log, store: st,
		sessions: map[string]*session{},
		links:    map[string]*mcp.Server{},
		calls:    map[*mcp.ServerSession]call{},
		legs:     map[*mcp.ServerSession]struct{}{},
		hooked:   map[*http.Server]bool{},
	}
	s.base = newServer(serverOptions{Instructions: baseInstructions, Logger: quietLogger(cfg.Log)}, s.resolve)
	return s, nil
}

// MCP is the handler of /mcp.
func (s *Server) MCP() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hookShutdown(r)
		switch r.Method {
		case http.MethodPost:
			s.servePOST(w, r, nil)
		case http.MethodGet:
			s.serveGET(w, r)
		case http.MethodDelete:
			s.serveDELETE(w, r)
		default:
			httpapi.WriteError(w, s.log, wireerr.New(wireerr.NotFound, "no such route"))
		}
	})
}

// MagicLink is the handler of /{ns}/conversations/{alias} (spec 3.7).
func (s *Server) MagicLink() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hookShutdown(r)
		switch r.Method {
		case http.MethodGet:
			switch {
			// Spec 3.7 dispatches on the media types the Accept header
			// names, not on wildcards: a browser's navigation (text/html,
			// …, */*) is the viewer's, not the push leg's.
			case r.Header.Get(sessionHeader) != "" || names(r, "text/event-stream"):
				s.serveGET(w, r)
			case names(r, "text/html") && s.cfg.Viewer != nil:
				s.cfg.Viewer.ServeHTTP(w, r)
			default:
				httpapi.WriteError(w, s.log, wireerr.New(wireerr.NotFound, "nothing is served here for this Accept"))
			}
		case http.MethodPost:
			pre, err := s.checkLink(r)
			if err != nil {
				httpapi.WriteError(w, s.log, err)
				return
			}
			s.servePOST(w, r, pre)
		case http.MethodDelete:
			s.serveDELETE(w, r)
		default:
			httpapi.WriteError(w, s.log, wireerr.New(wireerr.NotFound, "no such route"))
		}
	})
}

// linkAdmission is a magic-link POST's verified conversation and account.
type linkAdmission struct {
	conv      *admission.Conversation
	ref       convRef
	account   string
	namespace string
}

// checkLink applies the magic-link POST checks of spec 3.7 in order.
func (s *Server) checkLink(r *http.Request) (*linkAdmission, error) {
	if mediaType(r.Header.Get("Content-Type")) != "application/json" {
		return nil, wireerr.New(wireerr.UnsupportedMediaType, "Content-Type must be application/json")
	}
	p := httpapi.PathParams(r)
	token := r.URL.Query().Get("t")
	if token == "" {
		return nil, wireerr.New(wireerr.InvalidMagicLink.WithHTTP(http.StatusBadRequest), "the link token t is missing")
	}
	conv, ref, err := s.admit(r.Context(), p.NS, p.Alias, token)
	if err != nil {
		if we, ok := wireerr.As(err); ok {
			switch we.Code.Name {
			case wireerr.InvalidMagicLink.Name, wireerr.LinkExpired.Name, wireerr.LinkRevoked.Name:
				return nil, wireerr.New(we.Code.WithHTTP(http.StatusUnauthorized), we.Message)
			}
		}
		return nil, err
	}
	la := &linkAdmission{conv: conv, ref: ref}
	if cred, present := bearer(r); present {
		acc, err := s.cfg.Auth.Authenticate(r.Context(), cred)
		if err != nil {
			return nil, err
		}
		la.account, la.namespace = acc.ID, acc.Namespace
	} else {
		la.account = s.cfg.Deriver.AnonAccountID(ref.LinkID)
	}
	return la, nil
}

// admit checks a magic link's conversation and token (spec 4.2 checks
// 1–3 order): conversation_not_found before the token.
func (s *Server) admit(ctx context.Context, ns, alias, token string) (*admission.Conversation, convRef, error) {
	if token == "" {
		return nil, convRef{}, wireerr.New(wireerr.InvalidMagicLink, "the link token t is missing")
	}
	if !ids.ValidNamespace(ns) || !ids.ValidAlias(alias) {
		return nil, convRef{}, wireerr.New(wireerr.ConversationNotFound, "no such conversation")
	}
	conv, err := s.cfg.Admission.Conversation(ctx, ns, alias)
	if errors.Is(err, admission.ErrNoConversation) {
		return nil, convRef{}, wireerr.New(wireerr.ConversationNotFound, "no such conversation")
	}
	if err != nil {
		return nil, convRef{}, err
	}
	adm, err := s.cfg.Admission.Verify(conv, token)
	switch {
	case err == nil:
	case errors.Is(err, admission.ErrExpired):
		return nil, convRef{}, wireerr.New(wireerr.LinkExpired, "the link has expired")
	case errors.Is(err, admission.ErrRevoked):
		return nil, convRef{}, wireerr.New(wireerr.LinkRevoked, "the link was revoked")
	case errors.Is(err, admission.ErrInvalid):
		return nil, convRef{}, wireerr.New(wireerr.InvalidMagicLink, "the link token is not valid for this conversation")
	default:
		return nil, convRef{}, err
	}
	return conv, convRef{ID: conv.ID, NS: conv.Namespace, Alias: conv.Alias, LinkID: adm.LinkID, Expires: adm.ExpiresAt}, nil
}

// rpcError writes a transport-level JSON-RPC error (spec 5.5).
func rpcError(w http.ResponseWriter, status, code int, msg string) {
	o := jsonw.Begin(make([]byte, 0, 128))
	o.Str("jsonrpc", "2.0")
	o.Key("error")
	e := jsonw.Begin(o.B)
	e.Int("code", int64(code))
	e.Str("message", msg)
	o.B = e.End()
	o.Null("id")
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(o.End())
}

// servePOST applies the POST checks of spec 5.5 in order, then hands the
// request to an SDK session rebuilt for it.
func (s *Server) servePOST(w http.ResponseWriter, r *http.Request, pre *linkAdmission) {
	if !accepts(r, "application/json") || !accepts(r, "text/event-stream") {
		rpcError(w, http.StatusNotAcceptable, codeServer, "Accept must list application/json and text/event-stream")
		return
	}
	if mediaType(r.Header.Get("Content-Type")) != "application/json" {
		rpcError(w, http.StatusUnsupportedMediaType, codeServer, "Content-Type must be application/json")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, httpapi.MaxMCPBody+1))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) || len(body) > httpapi.MaxMCPBody {
		rpcError(w, http.StatusRequestEntityTooLarge, codeServer, "request body is over 4 MiB")
		return
	}
	if err != nil {
		rpcError(w, http.StatusBadRequest, codeParse, "unreadable body")
		return
	}
	msgs, ok := decodeMessages(body)
	if !ok {
		rpcError(w, http.StatusBadRequest, codeParse, "the body is not JSON-RPC")
		return
	}
	var init *jsonrpc.Request
	inits := 0
	for _, m := range msgs {
		if req, ok := m.(*jsonrpc.Request); ok && req.Method == "initialize" {
			inits++
			init = req
		}
	}
	sid := r.Header.Get(sessionHeader)
	if inits > 0 && (sid != "" || inits > 1) {
		rpcError(w, http.StatusBadRequest, codeInvalid, "initialize must come alone and without a session id")
		return
	}
	if inits == 0 && sid == "" {
		rpcError(w, http.StatusBadRequest, codeServer, "missing Mcp-Session-Id")
		return
	}
	var rec record
	if init != nil {
		if err := s.limit(r, "", true, len(msgs)); err != nil {
			rateLimited(w, err)
			return
		}
		sid, rec, err = s.mint(r, pre, init)
		if err != nil {
			httpapi.WriteError(w, s.log, err)
			return
		}
	} else {
		rec, _, err = s.store.get(r.Context(), sid)
		if errors.Is(err, errNoSession) {
			rpcError(w, http.StatusNotFound, codeNoSession, "session not found")
			return
		}
		if err != nil {
			s.log.Error("mcp session lookup failed", "err", err)
			rpcError(w, http.StatusServiceUnavailable, codeServer, "sessions unavailable")
			return
		}
		if err := s.limit(r, sid, false, len(msgs)); err != nil {
			rateLimited(w, err)
			return
		}
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	s.serveSDK(w, r, sid, &rec, init == nil)
}

// mint creates a session at initialize: its id and record, with the
// account fixed now (spec 5.5).
func (s *Server) mint(r *http.Request, pre *linkAdmission, init *jsonrpc.Request) (string, record, error) {
	rec := record{Route: "mcp", Init: init.Params}
	var ip struct {
		ProtocolVersion string `json:"protocolVersion"`
	}
	_ = json.Unmarshal(init.Params, &ip)
	rec.Proto = negotiate(ip.ProtocolVersion)
	if pre != nil {
		ref := pre.ref
		rec.Route, rec.Pre = "link", &ref
		rec.Account, rec.Namespace = pre.account, pre.namespace
	} else if cred, present := bearer(r); present {
		acc, err := s.cfg.Auth.Authenticate(r.Context(), cred)
		if we, ok := wireerr.As(err); ok && we.Code.Name == wireerr.InvalidCredential.Name {
			rec.BadCredential = true
		} else if err != nil {
			return "", rec, err
		} else {
			rec.Account, rec.Namespace = acc.ID, acc.Namespace
		}
	}
	sid := ids.NewMCPSessionID()
	if _, err := s.store.create(r.Context(), sid, &rec); err != nil {
		return "", rec, err
	}
	return sid, rec, nil
}

// state rebuilds the SDK session state of an initialized session.
func (rec *record) state() *mcp.ServerSessionState {
	st := &mcp.ServerSessionState{NegotiatedProtocolVersion: rec.Proto}
	var ip mcp.InitializeParams
	if len(rec.Init) > 0 && json.Unmarshal(rec.Init, &ip) == nil {
		st.InitializeParams = &ip
	} else {
		st.InitializeParams = &mcp.InitializeParams{ProtocolVersion: rec.Proto}
	}
	return st
}

// serverFor is the SDK server of a session's route.
func (s *Server) serverFor(ctx context.Context, rec *record) *mcp.Server {
	if rec.Pre == nil {
		return s.base
	}
	s.mu.Lock()
	srv := s.links[rec.Pre.ID]
	s.mu.Unlock()
	if srv != nil {
		return srv
	}
	conv, err := s.cfg.Admission.Conversation(ctx, rec.Pre.NS, rec.Pre.Alias)
	if err != nil {
		return s.base
	}
	o := linkServerOptions(conv.Namespace, conv.Alias, conv.ID, conv.Metadata)
	o.Logger = quietLogger(s.log)
	srv = newServer(o, s.resolve)
	s.mu.Lock()
	if len(s.links) >= 10_000 {
		clear(s.links)
	}
	s.links[rec.Pre.ID] = srv
	s.mu.Unlock()
	return srv
}

// serveSDK serves one request on an SDK session connected for it.
func (s *Server) serveSDK(w http.ResponseWriter, r *http.Request, sid string, rec *record, rehydrate bool) {
	srv := s.serverFor(r.Context(), rec)
	inner := &mcp.StreamableServerTransport{SessionID: sid}
	t := &connTransport{Transport: inner}
	var opts *mcp.ServerSessionOptions
	if rehydrate {
		opts = &mcp.ServerSessionOptions{State: rec.state()}
	}
	ss, err := srv.Connect(r.Context(), t, opts)
	if err != nil {
		s.log.Error("mcp connect failed", "err", err)
		rpcError(w, http.StatusInternalServerError, codeServer, "internal error")
		return
	}
	sess := s.session(sid)
	sess.touch()
	c := call{sess: sess, conn: t.conn, base: s.publicBase(r)}
	s.mu.Lock()
	s.calls[ss] = c
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.calls, ss)
		s.mu.Unlock()
		_ = ss.Close()
	}()
	inner.ServeHTTP(w, r)
}

// resolve finds a tool call's session.
func (s *Server) resolve(ss *mcp.ServerSession) (host, notifier, bool) {
	s.mu.Lock()
	c, ok := s.calls[ss]
	s.mu.Unlock()
	if !ok {
		return nil, nil, false
	}
	return &callHost{session: c.sess, base: c.base}, c.conn, true
}

// session returns the local state of a session, creating it.
func (s *Server) session(id string) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess := s.sessions[id]
	if sess == nil {
		if len(s.sessions) >= maxLocalSessions {
			s.sweepLocked()
		}
		sess = &session{srv: s, id: id, buf: newBuffer(), frames: s.cfg.Limits.Conn()}
		s.sessions[id] = sess
	}
	return sess
}

// maxLocalSessions bounds the sessions a gateway keeps state for; beyond,
// sessions without a wire or buffered frames are forgotten (the record
// has what a later request needs).
const maxLocalSessions = 10_000

func (s *Server) sweepLocked() {
	for id, sess := range s.sessions {
		if !sess.heldHere() && sess.buf.len() == 0 && sess.op.TryLock() {
			delete(s.sessions, id)
			sess.op.Unlock()
		}
	}
}

func (s *Server) forget(id string) {
	s.mu.Lock()
	delete(s.sessions, id)
	s.mu.Unlock()
}

// serveGET serves the push leg: every frame of the session, wherever its
// wire is, arrives on its NATS subject and is written as a notification.
func (s *Server) serveGET(w http.ResponseWriter, r *http.Request) {
	if !accepts(r, "text/event-stream") {
		rpcError(w, http.StatusNotAcceptable, codeServer, "Accept must list text/event-stream")
		return
	}
	sid := r.Header.Get(sessionHeader)
	if sid == "" {
		rpcError(w, http.StatusBadRequest, codeServer, "missing Mcp-Session-Id")
		return
	}
	rec, _, err := s.store.get(r.Context(), sid)
	if errors.Is(err, errNoSession) {
		rpcError(w, http.StatusNotFound, codeNoSession, "session not found")
		return
	}
	if err != nil {
		rpcError(w, http.StatusServiceUnavailable, codeServer, "sessions unavailable")
		return
	}
	inner := &mcp.StreamableServerTransport{SessionID: sid}
	t := &connTransport{Transport: inner}
	ss, err := s.base.Connect(r.Context(), t, &mcp.ServerSessionOptions{State: rec.state()})
	if err != nil {
		rpcError(w, http.StatusInternalServerError, codeServer, "internal error")
		return
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = ss.Close()
		rpcError(w, http.StatusServiceUnavailable, codeServer, "shutting down")
		return
	}
	s.legs[ss] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.legs, ss)
		s.mu.Unlock()
		_ = ss.Close()
	}()
	sub, err := s.cfg.NATS.Subscribe(pushSubject(sid), func(m *nats.Msg) {
		method, params, ok := bytes.Cut(m.Data, []byte{'\n'})
		if !ok {
			_ = ss.Close() // the session ended
			return
		}
		_ = t.conn.Notify(context.Background(), string(method), params)
	})
	if err != nil {
		rpcError(w, http.StatusServiceUnavailable, codeServer, "push unavailable")
		return
	}
	defer func() { _ = sub.Unsubscribe() }()
	// The subscription is in place at the server before the client sees
	// the stream open.
	_ = s.cfg.NATS.FlushTimeout(5 * time.Second)
	pw := newPushWriter(w, s.cfg.Keepalive)
	defer pw.stop()
	stopTouch := s.touchRecord(sid)
	defer stopTouch()
	inner.ServeHTTP(pw, r)
}

// touchRecord marks the session in use while a push leg is open, so that
// its holder (on any gateway) keeps the wire.
func (s *Server) touchRecord(sid string) func() {
	touch := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _, _ = s.store.update(ctx, sid, func(r *record) error {
			r.Touched = time.Now()
			return nil
		})
	}
	touch()
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(s.cfg.IdleTimeout / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				touch()
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
	}
}

// serveDELETE ends a session: it leaves its stream (spec 5.5).
func (s *Server) serveDELETE(w http.ResponseWriter, r *http.Request) {
	sid := r.Header.Get(sessionHeader)
	if sid == "" {
		rpcError(w, http.StatusBadRequest, codeServer, "missing Mcp-Session-Id")
		return
	}
	if _, _, err := s.store.get(r.Context(), sid); errors.Is(err, errNoSession) {
		rpcError(w, http.StatusNotFound, codeNoSession, "session not found")
		return
	} else if err != nil {
		rpcError(w, http.StatusServiceUnavailable, codeServer, "sessions unavailable")
		return
	}
	sess := s.session(sid)
	if _, err := sess.leave(r.Context()); err != nil && !errors.Is(err, errNoSession) {
		s.log.Warn("mcp session leave failed", "err", err)
	}
	if err := s.store.delete(r.Context(), sid); err != nil {
		s.log.Warn("mcp session delete failed", "err", err)
	}
	_ = s.cfg.NATS.Publish(pushSubject(sid), []byte("end"))
	s.forget(sid)
	w.WriteHeader(http.StatusNoContent)
}

// hookShutdown ends the push legs when the HTTP server shuts down (they
// would otherwise hold its graceful shutdown until the deadline).
func (s *Server) hookShutdown(r *http.Request) {
	hs, ok := r.Context().Value(http.ServerContextKey).(*http.Server)
	if !ok {
		return
	}
	s.mu.Lock()
	done := s.hooked[hs]
	s.hooked[hs] = true
	s.mu.Unlock()
	if !done {
		hs.RegisterOnShutdown(s.Shutdown)
	}
}

// Shutdown ends every push leg served here; later ones are refused.
func (s *Server) Shutdown() {
	s.mu.Lock()
	s.closed = true
	legs := make([]*mcp.ServerSession, 0, len(s.legs))
	for ss := range s.legs {
		legs = append(legs, ss)
	}
	s.mu.Unlock()
	for _, ss := range legs {
		_ = ss.Close()
	}
}

func pushSubject(sid string) string { return "ams.mcp.push." + sid }

// publish sends a copy of an entry to the session's push legs.
func (s *Server) publish(sid string, e *entry) {
	b := make([]byte, 0, len(e.method)+1+len(e.params))
	b = append(b, e.method...)
	b = append(b, '\n')
	b = append(b, e.params...)
	_ = s.cfg.NATS.Publish(pushSubject(sid), b)
}

func (s *Server) publicBase(r *http.Request) string {
	if s.cfg.PublicURL != "" {
		return strings.TrimRight(s.cfg.PublicURL, "/")
	}
	scheme := "http"
	if r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https") {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// decodeMessages reads a JSON-RPC message or a non-empty batch of them.
// The whole body must be one JSON value: the SDK's decoder stops after
// the first value and would ignore what follows it.
func decodeMessages(body []byte) ([]jsonrpc.Message, bool) {
	if !json.Valid(body) {
		return nil, false
	}
	t := bytes.TrimSpace(body)
	var raws []json.RawMessage
	if t[0] == '[' {
		if json.Unmarshal(t, &raws) != nil || len(raws) == 0 {
			return nil, false
		}
	} else {
		raws = []json.RawMessage{t}
	}
	out := make([]jsonrpc.Message, 0, len(raws))
	for _, raw := range raws {
		if tr := bytes.TrimSpace(raw); len(tr) == 0 || tr[0] != '{' {
			return nil, false
		}
		m, err := jsonrpc.DecodeMessage(raw)
		if err != nil {
			return nil, false
		}
		out = append(out, m)
	}
	return out, true
}

// accepts reports whether the Accept header lists the media type (or a
// wildcard covering it).
func accepts(r *http.Request, want string) bool {
	major, _, _ := strings.Cut(want, "/")
	for _, v := range r.Header.Values("Accept") {
		for _, part := range strings.Split(v, ",") {
			mt, _, _ := strings.Cut(strings.TrimSpace(part), ";")
			mt = strings.ToLower(strings.TrimSpace(mt))
			if mt == want || mt == "*/*" || mt == major+"/*" {
				return true
			}
		}
	}
	return false
}

// names reports an Accept header that names the media type want itself
// (wildcards do not count).
func names(r *http.Request, want string) bool {
	for _, v := range r.Header.Values("Accept") {
		for _, part := range strings.Split(v, ",") {
			mt, _, _ := strings.Cut(strings.TrimSpace(part), ";")
			if strings.EqualFold(strings.TrimSpace(mt), want) {
				return true
			}
		}
	}
	return false
}

func mediaType(v string) string {
	mt, _, err := mime.ParseMediaType(v)
	if err != nil {
		return ""
	}
	return mt
}

// bearer returns the Bearer credential; present is true for any Bearer
// Authorization header, even an empty one (which is invalid).
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	if len(h) < 7 || !strings.EqualFold(h[:7], "bearer ") {
		return "", false
	}
	return strings.TrimSpace(h[7:]), true
}

// pushWriter is the push leg's response writer: it opens with `:ok` and
// writes `:keepalive` after each idle interval. Writes are serialised, the
// SDK's and the keepalive's.
type pushWriter struct {
	http.ResponseWriter
	mu    sync.Mutex
	idle  time.Duration
	last  time.Time
	first bool
	done  chan struct{}
	wg    sync.WaitGroup
}

func newPushWriter(w http.ResponseWriter, idle time.Duration) *pushWriter {
	p := &pushWriter{ResponseWriter: w, idle: idle, last: time.Now(), first: true, done: make(chan struct{})}
	p.wg.Add(1)
	go p.keepalive()
	return p
}

func (p *pushWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.last = time.Now()
	if p.first {
		p.first = false
		if string(b) == ": ok\n\n" {
			if _, err := p.ResponseWriter.Write([]byte(":ok\n\n")); err != nil {
				return 0, err
			}
			return len(b), nil
		}
	}
	return p.ResponseWriter.Write(b)
}

func (p *pushWriter) Flush() {
	p.mu.Lock()
	defer p.mu.Unlock()
	_ = http.NewResponseController(p.ResponseWriter).Flush()
}

func (p *pushWriter) keepalive() {
	defer p.wg.Done()
	t := time.NewTimer(p.idle)
	defer t.Stop()
	for {
		select {
		case <-p.done:
			return
		case <-t.C:
		}
		p.mu.Lock()
		wait := p.idle - time.Since(p.last)
		if wait <= 0 && !p.first {
			_, err := p.ResponseWriter.Write([]byte(":keepalive\n\n"))
			_ = http.NewResponseController(p.ResponseWriter).Flush()
			p.last = time.Now()
			wait = p.idle
			if err != nil {
				p.mu.Unlock()
				return
			}
		} else if wait <= 0 {
			wait = p.idle
		}
		p.mu.Unlock()
		t.Reset(wait)
	}
}

func (p *pushWriter) stop() {
	close(p.done)
	p.wg.Wait()
}
