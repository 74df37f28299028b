package mcpserver

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/amsrouter/ams/services/gateway/internal/connreq"
	"github.com/amsrouter/ams/services/internal/jsonw"
	"github.com/amsrouter/ams/services/internal/wireerr"
)

// StdioConfig configures the stdio server (`ams mcp`): an MCP server for
// one local client that speaks to a gateway's public HTTP and WebSocket
// API (spec 5.5 stdio).
type StdioConfig struct {
	// URL is the gateway's base URL (AMS_URL).
	URL string
	// Credential is the account's Bearer credential; Namespace its
	// namespace (needed to create conversations).
	Credential string
	Namespace  string
	// MagicLink pre-binds the session to a conversation (AMS_MAGIC_LINK).
	MagicLink  string
	HTTPClient *http.Client
	Log        *slog.Logger
}

// MintAccount creates an account (spec 3.2) and returns its credential.
func MintAccount(ctx context.Context, base, namespace string, hc *http.Client) (string, error) {
	if hc == nil {
		hc = http.DefaultClient
	}
	body, _ := json.Marshal(map[string]string{"namespace": namespace})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(base, "/")+"/v1/accounts", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("create account: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("create account: %d %s", resp.StatusCode, errorCode(b))
	}
	var out struct {
		Credential string `json:"credential"`
	}
	if err := json.Unmarshal(b, &out); err != nil || out.Credential == "" {
		return "", errors.New("create account: no credential in the answer")
	}
	return out.Credential, nil
}

func errorCode(body []byte) string {
	var e struct {
		Error string `json:"error"`
	}
	_ = json.Unmarshal(body, &e)
	return e.Error
}

// RunStdio serves MCP on in/out until the client closes in or ctx ends.
func RunStdio(ctx context.Context, cfg StdioConfig, in io.ReadCloser, out io.WriteCloser) error {
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 40 * time.Second}
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	cfg.URL = strings.TrimRight(cfg.URL, "/")
	var sid [16]byte
	_, _ = rand.Read(sid[:])
	h := &stdioHost{cfg: cfg, buf: newBuffer(), id: hex.EncodeToString(sid[:]), cursor: map[string]uint64{}}
	opts := serverOptions{Instructions: baseInstructions, Logger: quietLogger(cfg.Log)}
	if cfg.MagicLink != "" {
		l, ok := parseLink(cfg.MagicLink)
		if !ok {
			return errors.New("AMS_MAGIC_LINK is not a magic link")
		}
		h.pre = &l
		ictx, cancel := context.WithTimeout(ctx, 10*time.Second)
		conv, err := h.inspect(ictx, l)
		cancel()
		if err != nil {
			return fmt.Errorf("read the pre-bound conversation: %w", err)
		}
		h.convID = conv.ID
		opts = linkServerOptions(l.ns, l.alias, conv.ID, string(conv.Metadata))
		opts.Logger = quietLogger(cfg.Log)
	}
	t := &connTransport{Transport: &mcp.IOTransport{Reader: in, Writer: out}}
	srv := newServer(opts, func(*mcp.ServerSession) (host, notifier, bool) { return h, t.conn, true })
	ss, err := srv.Connect(ctx, t, nil)
	if err != nil {
		return err
	}
	h.notifier = t.conn
	done := make(chan error, 1)
	go func() { done <- ss.Wait() }()
	select {
	case <-ctx.Done():
		_ = ss.Close()
		<-done
	case <-done:
	}
	h.shutdown()
	return nil
}

// link is a parsed magic link.
type link struct {
	raw, base, ns, alias, token string
}

// parseLink reads a magic link; its base keeps the link's path prefix, so
// derived URLs only insert a suffix before `?` (spec 2.3).
func parseLink(s string) (link, bool) {
	u, prefix, ns, alias, token, ok := splitMagicLink(s)
	if !ok || u.Host == "" || token == "" {
		return link{}, false
	}
	base := u.Scheme + "://" + u.Host + (&url.URL{Path: prefix}).EscapedPath()
	return link{raw: s, base: base, ns: ns, alias: alias, token: token}, true
}

func (l link) path(suffix string) string {
	return l.base + "/" + l.ns + "/conversations/" + l.alias + suffix + "?t=" + url.QueryEscape(l.token)
}

// stdioHost is the one session of the stdio server; its wire is a
// WebSocket to the gateway, its emits go over HTTP.
type stdioHost struct {
	cfg      StdioConfig
	buf      *buffer
	id       string
	pre      *link
	notifier notifier

	op sync.Mutex // serialises binding changes

	mu          sync.Mutex
	state       string
	closeCode   int
	closeReason string
	bound       *link
	convID      string
	name        string
	metadata    string
	metadataSet bool
	selfSub     bool
	identity    string
	filter      []string
	filterSet   bool
	wire        *wsWire
	cursor      map[string]uint64
}

// wsWire is one WebSocket connection of the stdio session.
type wsWire struct {
	c        *websocket.Conn
	streamID string
	done     chan struct{}
	detached bool // guarded by stdioHost.mu
}

func (h *stdioHost) Buffer() *buffer { return h.buf }

func (h *stdioHost) shutdown() {
	h.mu.Lock()
	w := h.wire
	h.wire = nil
	if w != nil {
		w.detached = true
	}
	h.mu.Unlock()
	if w != nil {
		_ = w.c.Close(websocket.StatusGoingAway, "")
	}
}

func (h *stdioHost) do(ctx context.Context, method, u string, body []byte, out any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if h.cfg.Credential != "" {
		req.Header.Set("Authorization", "Bearer "+h.cfg.Credential)
	}
	resp, err := h.cfg.HTTPClient.Do(req)
	if err != nil {
		return 0, nil, wireerr.New(wireerr.Unavailable, "the gateway is unreachable")
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return 0, nil, wireerr.New(wireerr.Unavailable, "the gateway answer was cut")
	}
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, b, wireerr.New(wireerr.Internal, "unexpected answer")
		}
	}
	return resp.StatusCode, b, nil
}

// httpErr turns an error answer into a domain error.
func httpErr(status int, body []byte) error {
	code := errorCode(body)
	if code == "" {
		code = wireerr.Internal.Name
	}
	var e struct {
		Message string `json:"message"`
	}
	_ = json.Unmarshal(body, &e)
	return domainErr(code, e.Message)
}

type inspected struct {
	ID       string          `json:"conversation_id"`
	Metadata json.RawMessage `json:"metadata"`
}

func (h *stdioHost) inspect(ctx context.Context, l link) (inspected, error) {
	var c inspected
	status, b, err := h.do(ctx, http.MethodGet, h.cfg.URL+"/v1/"+l.ns+"/conversations/"+l.alias+"?t="+url.QueryEscape(l.token), nil, &c)
	if err != nil {
		return c, err
	}
	if status != http.StatusOK {
		return c, httpErr(status, b)
	}
	return c, nil
}

// CreateConversation mints through POST /v1/{ns}/conversations.
func (h *stdioHost) CreateConversation(ctx context.Context, a *createArgs) ([]byte, error) {
	if h.cfg.Credential == "" || h.cfg.Namespace == "" {
		return nil, domainErr(wireerr.InvalidCredential.Name, "creating a conversation needs a persistent account: set AMS_CREDENTIAL and AMS_NAMESPACE, or AMS_NAMESPACE alone")
	}
	if _, _, _, _, _, _, err := checkCreate(a.Body); err != nil {
		return nil, err
	}
	body, _ := json.Marshal(a.Body)
	status, b, err := h.do(ctx, http.MethodPost, h.cfg.URL+"/v1/"+h.cfg.Namespace+"/conversations", body, nil)
	if err != nil {
		return nil, err
	}
	if status != http.StatusCreated {
		return nil, httpErr(status, b)
	}
	return bytes.TrimSpace(b), nil
}

// Join connects the session's stream (spec 5.5 ams_join).
func (h *stdioHost) Join(ctx context.Context, a *joinArgs) ([]byte, error) {
	h.op.Lock()
	defer h.op.Unlock()
	_, joined, err := h.join(ctx, a)
	if err != nil {
		return nil, err
	}
	return joinedPayload(joined), nil
}

func (h *stdioHost) join(ctx context.Context, a *joinArgs) (*wsWire, []byte, error) {
	if h.cfg.Credential == "" {
		return nil, nil, domainErr(wireerr.InvalidCredential.Name, "no credential")
	}
	var l link
	switch {
	case h.pre != nil:
		l = *h.pre
	case a.MagicLink != "":
		var ok bool
		if l, ok = parseLink(a.MagicLink); !ok {
			return nil, nil, domainErr(wireerr.InvalidMagicLink.Name, "magic_link is not a magic link URL")
		}
	default:
		return nil, nil, invalidArgs("magic_link is required")
	}
	h.mu.Lock()
	sameConv := h.state == stateJoined && h.bound != nil && h.bound.ns == l.ns && h.bound.alias == l.alias
	name := a.StreamName
	switch {
	case name != "":
	case a.PeerIdentity != "":
		name = stdioAutoName(h.id, a.PeerIdentity)
	case sameConv && h.name != "":
		name = h.name
	default:
		name = ""
	}
	same := sameConv && name == h.name
	old := h.wire
	h.mu.Unlock()
	if old != nil && !same {
		h.detach(old, true)
	}
	h.mu.Lock()
	h.bound, h.state, h.name = &l, stateJoined, name
	if !same || a.MetadataSet {
		h.metadata, h.metadataSet = a.Metadata, a.MetadataSet
	}
	h.selfSub, h.identity, h.filter, h.filterSet = a.SelfSubscribe, a.PeerIdentity, a.Filter, a.FilterSet
	h.closeCode, h.closeReason = 0, ""
	h.cursor = map[string]uint64{}
	if old != nil && same {
		old.detached = true // displaced by the connection below
	}
	h.mu.Unlock()
	w, joined, err := h.dial(ctx, false)
	if err != nil {
		h.mu.Lock()
		h.state, h.bound = stateNone, nil
		h.mu.Unlock()
		return nil, nil, err
	}
	return w, joined, nil
}

// dial opens the WebSocket of the binding, with the cursor of what the
// session already got when resuming, and starts its reader.
func (h *stdioHost) dial(ctx context.Context, resume bool) (*wsWire, []byte, error) {
	h.mu.Lock()
	l := *h.bound
	hdr := http.Header{}
	hdr.Set("Authorization", "Bearer "+h.cfg.Credential)
	if h.name != "" {
		hdr.Set("X-AMS-Stream-Name", h.name)
	}
	if h.metadataSet || !resume {
		md := h.metadata
		if md == "" {
			md = "{}"
		}
		hdr.Set("X-AMS-Stream-Metadata", base64.StdEncoding.EncodeToString([]byte(md)))
	}
	if h.selfSub {
		hdr.Set("X-AMS-Self-Subscribe", "true")
	}
	if h.identity != "" {
		hdr.Set("X-AMS-Peer-Identity", base64.StdEncoding.EncodeToString([]byte(h.identity)))
	}
	if h.filterSet {
		hdr.Set("X-AMS-Subscribe-Streams", strings.Join(h.filter, ","))
	}
	if resume {
		var pos []string
		for id, seq := range h.cursor {
			if len(pos) == connreq.MaxCursorItems {
				break
			}
			pos = append(pos, id+":"+strconv.FormatUint(seq, 10))
		}
		if len(pos) == 0 {
			hdr.Set("X-AMS-Resume", "*")
		} else {
			hdr.Set("X-AMS-Resume", strings.Join(pos, ","))
		}
	}
	h.mu.Unlock()
	u := strings.Replace(l.path("/connect"), "http", "ws", 1)
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(dctx, u, &websocket.DialOptions{HTTPHeader: hdr, HTTPClient: h.cfg.HTTPClient})
	if err != nil {
		return nil, nil, wireerr.New(wireerr.Unavailable, "cannot reach the gateway")
	}
	c.SetReadLimit(2 << 20)
	_, msg, err := c.Read(dctx)
	if err != nil {
		_ = c.CloseNow()
		var ce websocket.CloseError
		if errors.As(err, &ce) {
			return nil, nil, closeToErr(int(ce.Code), ce.Reason)
		}
		return nil, nil, wireerr.New(wireerr.Unavailable, "the connection ended before joined")
	}
	e, ok := notification(msg)
	if !ok || e.method != notifyPrefix+"joined" {
		_ = c.CloseNow()
		return nil, nil, wireerr.New(wireerr.Internal, "the first frame was not joined")
	}
	var j struct {
		ConversationID string `json:"conversation_id"`
		StreamID       string `json:"stream_id"`
		StreamName     string `json:"stream_name"`
		Peers          []struct {
			StreamID string `json:"stream_id"`
			LastSeq  uint64 `json:"last_seq"`
		} `json:"peers"`
	}
	_ = json.Unmarshal(e.params, &j)
	w := &wsWire{c: c, streamID: j.StreamID, done: make(chan struct{})}
	h.mu.Lock()
	h.wire, h.convID, h.name = w, j.ConversationID, j.StreamName
	if !resume {
		for _, p := range j.Peers {
			h.cursor[p.StreamID] = max(h.cursor[p.StreamID], p.LastSeq)
		}
	}
	h.mu.Unlock()
	go h.read(w)
	return w, msg, nil
}

// closeToErr maps a close at connect to a domain error.
func closeToErr(code int, reason string) error {
	switch reason {
	case wireerr.InvalidMagicLink.Name, wireerr.LinkExpired.Name, wireerr.LinkRevoked.Name,
		wireerr.ConversationNotFound.Name, wireerr.InvalidCredential.Name:
		return domainErr(reason, "refused by the gateway")
	}
	return wireClosed(code, reason)
}

// read moves frames into the buffer and out as notifications until the
// connection ends, then classifies the end.
func (h *stdioHost) read(w *wsWire) {
	defer close(w.done)
	for {
		_, msg, err := w.c.Read(context.Background())
		if err != nil {
			code, reason := -1, ""
			var ce websocket.CloseError
			if errors.As(err, &ce) {
				code, reason = int(ce.Code), ce.Reason
			}
			h.ended(w, code, reason)
			return
		}
		e, ok := notification(msg)
		if !ok || e.method == notifyPrefix+"pong" || e.method == notifyPrefix+"cursor" {
			continue
		}
		var f struct {
			StreamID string `json:"stream_id"`
			Seq      uint64 `json:"seq"`
			LastSeq  uint64 `json:"last_seq"`
		}
		_ = json.Unmarshal(e.params, &f)
		if f.StreamID != "" {
			pos := max(f.Seq, f.LastSeq)
			id := f.StreamID
			e.ack = func() {
				h.mu.Lock()
				h.cursor[id] = max(h.cursor[id], pos)
				h.mu.Unlock()
			}
		}
		h.mu.Lock()
		detached := w.detached
		h.mu.Unlock()
		if detached {
			continue
		}
		h.buf.add(e)
		if h.notifier != nil {
			_ = h.notifier.Notify(context.Background(), e.method, e.params)
		}
	}
}

func (h *stdioHost) ended(w *wsWire, code int, reason string) {
	h.mu.Lock()
	if h.wire == w {
		h.wire = nil
	}
	if w.detached {
		h.mu.Unlock()
		return
	}
	if code == 4001 {
		h.state, h.closeCode, h.closeReason = stateClosed, code, reason
	}
	convID := h.convID
	h.mu.Unlock()
	if code >= 4000 {
		e := closedEntry(convID, code, reason)
		h.buf.add(e)
		if h.notifier != nil {
			_ = h.notifier.Notify(context.Background(), e.method, e.params)
		}
	}
}

// detach ends a connection from this side; leave sends a normal close
// (peers get stream_left).
func (h *stdioHost) detach(w *wsWire, leave bool) {
	h.mu.Lock()
	w.detached = true
	if h.wire == w {
		h.wire = nil
	}
	h.mu.Unlock()
	if leave {
		_ = w.c.Close(websocket.StatusNormalClosure, "")
	} else {
		_ = w.c.CloseNow()
	}
	<-w.done
}

// ensureWire returns the live connection, re-joining if it was lost.
func (h *stdioHost) ensureWire(ctx context.Context, t *target) (*wsWire, error) {
	h.op.Lock()
	defer h.op.Unlock()
	h.mu.Lock()
	w, state, code, reason, bound := h.wire, h.state, h.closeCode, h.closeReason, h.bound
	h.mu.Unlock()
	if w != nil {
		select {
		case <-w.done:
		default:
			return w, nil
		}
	}
	if h.cfg.Credential == "" {
		return nil, domainErr(wireerr.InvalidCredential.Name, "no credential")
	}
	switch state {
	case stateLeft:
		return nil, domainErr("left", "the session left; call ams_join")
	case stateClosed:
		return nil, wireClosed(code, reason)
	case stateJoined:
		if bound != nil {
			w, _, err := h.dial(ctx, true)
			return w, err
		}
	}
	var ja joinArgs
	switch {
	case h.pre != nil:
	case t != nil && t.MagicLink != "":
		ja.MagicLink = t.MagicLink
	default:
		return nil, domainErr("not_joined", "no conversation joined: call ams_join")
	}
	if t != nil {
		ja.StreamName = t.StreamName
	}
	ja.Metadata = "{}"
	w, _, err := h.join(ctx, &ja)
	return w, err
}

// emit posts to the HTTP emit path of the session's stream, re-joining
// once if the gateway no longer has it live.
func (h *stdioHost) emit(ctx context.Context, t *target, method, suffix string, body []byte) ([]byte, error) {
	for attempt := 0; ; attempt++ {
		w, err := h.ensureWire(ctx, t)
		if err != nil {
			return nil, err
		}
		h.mu.Lock()
		l, name := *h.bound, h.name
		h.mu.Unlock()
		var out struct {
			StreamID string `json:"stream_id"`
			Seq      uint64 `json:"seq"`
			LastSeq  uint64 `json:"last_seq"`
			TS       string `json:"ts"`
		}
		status, b, err := h.do(ctx, method, l.path("/streams/"+url.PathEscape(name)+suffix), body, &out)
		if err != nil {
			return nil, err
		}
		if status == http.StatusConflict && errorCode(b) == wireerr.StreamNotLive.Name && attempt == 0 {
			h.detach(w, false)
			continue
		}
		if status >= 300 {
			return nil, httpErr(status, b)
		}
		return sendPayload(out.TS, out.StreamID, max(out.Seq, out.LastSeq)), nil
	}
}

func (h *stdioHost) Send(ctx context.Context, data string, t *target) ([]byte, error) {
	o := jsonw.Begin(nil)
	o.Str("data", data)
	return h.emit(ctx, t, http.MethodPost, "/tokens", o.End())
}

func (h *stdioHost) SetMetadata(ctx context.Context, md string, t *target) ([]byte, error) {
	out, err := h.emit(ctx, t, http.MethodPut, "/metadata", []byte(md))
	if err == nil {
		h.mu.Lock()
		h.metadata, h.metadataSet = md, true
		h.mu.Unlock()
	}
	return out, err
}

func (h *stdioHost) Leave(ctx context.Context) ([]byte, error) {
	h.op.Lock()
	defer h.op.Unlock()
	h.mu.Lock()
	w := h.wire
	h.state = stateLeft
	h.mu.Unlock()
	if w != nil {
		h.detach(w, true)
	}
	return okPayload, nil
}

func (h *stdioHost) Recv(ctx context.Context, wait time.Duration, t *target) ([]byte, error) {
	w, err := h.ensureWire(ctx, t)
	var stop <-chan struct{}
	if err != nil {
		var te *toolError
		if !errors.As(err, &te) {
			return nil, err
		}
		switch te.Code {
		case "left", "wire_closed", "not_joined":
			wait = 0
		default:
			return nil, err
		}
	} else {
		stop = w.done
	}
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	es, dropped := h.buf.recv(wctx, stop)
	acknowledge(es)
	return recvPayload(es, dropped), nil
}

// known returns the link of a conversation the session knows.
func (h *stdioHost) known(ctx context.Context, id string) (*link, string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.convID != id {
		return nil, "", nil
	}
	l := h.bound
	if l == nil {
		l = h.pre
	}
	own := ""
	if h.wire != nil {
		own = h.wire.streamID
	}
	return l, own, nil
}

func (h *stdioHost) Conversation(ctx context.Context, id string) ([]byte, bool, error) {
	l, _, _ := h.known(ctx, id)
	if l == nil {
		return nil, false, nil
	}
	var c map[string]json.RawMessage
	status, b, err := h.do(ctx, http.MethodGet, h.cfg.URL+"/v1/"+l.ns+"/conversations/"+l.alias+"?t="+url.QueryEscape(l.token), nil, &c)
	if err != nil {
		return nil, false, err
	}
	if status != http.StatusOK {
		return nil, false, httpErr(status, b)
	}
	o := jsonw.Begin(make([]byte, 0, len(b)))
	for _, k := range []string{"conversation_id", "alias", "namespace", "created_at", "metadata", "streams"} {
		o.Raw(k, c[k])
	}
	return o.End(), true, nil
}

func (h *stdioHost) Peers(ctx context.Context, id string) ([]byte, bool, error) {
	l, own, _ := h.known(ctx, id)
	if l == nil {
		return nil, false, nil
	}
	var c struct {
		Streams []json.RawMessage `json:"streams"`
	}
	status, b, err := h.do(ctx, http.MethodGet, h.cfg.URL+"/v1/"+l.ns+"/conversations/"+l.alias+"?t="+url.QueryEscape(l.token), nil, &c)
	if err != nil {
		return nil, false, err
	}
	if status != http.StatusOK {
		return nil, false, httpErr(status, b)
	}
	out := []byte(`{"peers":[`)
	n := 0
	for _, s := range c.Streams {
		var sid struct {
			StreamID string `json:"stream_id"`
		}
		if json.Unmarshal(s, &sid) == nil && sid.StreamID == own {
			continue
		}
		if n > 0 {
			out = append(out, ',')
		}
		out = append(out, s...)
		n++
	}
	return append(out, "]}"...), true, nil
}

// stdioAutoName is the peer-identity stream name of the stdio server. The
// gateway hashes with the deployment pepper, which a client does not
// have; the stdio server hashes its own session id with SHA-256.
func stdioAutoName(sessionID, identity string) string {
	sum := sha256.Sum256([]byte("auto-stream-name|" + sessionID))
	return autoSlug(identity) + "-" + hex.EncodeToString(sum[:])[:4]
}
