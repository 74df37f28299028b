package mcpserver

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/amsrouter/ams/services/gateway/internal/admission"
	"github.com/amsrouter/ams/services/gateway/internal/connreq"
	"github.com/amsrouter/ams/services/gateway/internal/hub"
	"github.com/amsrouter/ams/services/gateway/internal/limits"
	"github.com/amsrouter/ams/services/internal/ids"
	"github.com/amsrouter/ams/services/internal/linktoken"
	"github.com/amsrouter/ams/services/internal/wireerr"
)

// session is one MCP session as this gateway sees it: its buffer and, if
// this gateway holds it, its wire (the hub connection of its stream). The
// record in the sessions bucket is the truth; the local state is a cache
// that is dropped when the record shows another holder.
type session struct {
	srv *Server
	id  string
	buf *buffer
	// frames rate-limits the session's requests on this gateway.
	frames *limits.Conn

	// op serialises the operations that change the binding on this
	// gateway; concurrent calls needing a re-join share the first one's.
	op sync.Mutex

	mu   sync.Mutex
	wire *wire
	idle *time.Timer // ends an unused wire; reset by every request
}

// touch records a request: the idle timer starts over.
func (s *session) touch() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.idle == nil {
		s.idle = time.AfterFunc(s.srv.cfg.IdleTimeout, s.idleCheck)
		return
	}
	s.idle.Reset(s.srv.cfg.IdleTimeout)
}

// idleCheck ends the wire of a session unused for IdleTimeout, unless a
// push leg keeps it (Touched in the record). The stream stays for its
// grace; a later call re-joins it with the cursor.
func (s *session) idleCheck() {
	w := s.current()
	if w == nil || w.ended() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	rec, _, err := s.srv.store.get(ctx, s.id)
	cancel()
	if err == nil && time.Since(rec.Touched) < s.srv.cfg.IdleTimeout {
		s.mu.Lock()
		s.idle.Reset(s.srv.cfg.IdleTimeout - time.Since(rec.Touched))
		s.mu.Unlock()
		return
	}
	if !s.op.TryLock() {
		s.touch() // in use right now
		return
	}
	defer s.op.Unlock()
	if s.current() == w {
		s.clearWire(w)
		w.detach(false)
		s.buf.reset() // a re-join replays from the cursor
	}
}

// wire is a session's hub connection on this gateway: the hub.Sink that
// moves the hub's frames into the session buffer and the push legs.
type wire struct {
	sess     *session
	conn     *hub.Conn
	epoch    uint64
	conv     convRef
	streamID string

	wake chan struct{}
	done chan struct{} // closed when the wire ended
	// decided is closed once the end was classified (moved, displaced…).
	decided    chan struct{}
	decideOnce sync.Once
	endOnce    sync.Once
	code       int
	reason     string
	detached   atomic.Bool // ended by this gateway: no classification needed
	pumpDone   chan struct{}
}

func newWire(s *session, epoch uint64, conv convRef) *wire {
	return &wire{
		sess: s, epoch: epoch, conv: conv,
		wake: make(chan struct{}, 1), done: make(chan struct{}), decided: make(chan struct{}),
		pumpDone: make(chan struct{}),
	}
}

// Wake implements hub.Sink.
func (w *wire) Wake() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Close implements hub.Sink: the hub ended the connection.
func (w *wire) Close(code int, reason string) {
	w.end(code, reason)
	go w.sess.wireEnded(w)
}

func (w *wire) end(code int, reason string) {
	w.endOnce.Do(func() {
		w.code, w.reason = code, reason
		close(w.done)
	})
}

func (w *wire) ended() bool {
	select {
	case <-w.done:
		return true
	default:
		return false
	}
}

// detach ends the wire from this side: leave (a clean close, peers get
// stream_left) or not (the hub keeps the stream for its grace, another
// gateway is taking it over).
func (w *wire) detach(leave bool) {
	w.detached.Store(true)
	if leave {
		w.conn.Close(1000, false)
	} else {
		w.conn.Close(1006, true)
	}
	w.end(1000, "")
	w.decide()
	<-w.pumpDone
}

func (w *wire) decide() { w.decideOnce.Do(func() { close(w.decided) }) }

// pump moves queued frames into the session until the wire ends.
func (w *wire) pump() {
	defer close(w.pumpDone)
	var items []hub.Item
	drain := func() {
		for {
			var more bool
			items, more = w.conn.Take(items[:0])
			for i := range items {
				w.sess.frame(w, items[i])
			}
			clear(items)
			if !more {
				return
			}
		}
	}
	for {
		select {
		case <-w.wake:
			drain()
		case <-w.done:
			if !w.detached.Load() {
				drain()
			}
			return
		}
	}
}

// frame buffers one frame and copies it to the push legs.
func (s *session) frame(w *wire, it hub.Item) {
	if w.detached.Load() {
		return
	}
	e, ok := notification(it.Frame)
	if !ok || e.method == notifyPrefix+"joined" || e.method == notifyPrefix+"pong" || e.method == notifyPrefix+"subscribed" {
		return
	}
	if it.StreamID() != "" {
		item := it
		e.ack = func() { w.conn.Delivered([]hub.Item{item}) }
	}
	s.buf.add(e)
	s.srv.publish(s.id, &e)
}

func (s *session) current() *wire {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.wire
}

func (s *session) setWire(w *wire) {
	s.mu.Lock()
	s.wire = w
	s.mu.Unlock()
}

// clearWire forgets w if it is still the session's wire.
func (s *session) clearWire(w *wire) {
	s.mu.Lock()
	if s.wire == w {
		s.wire = nil
	}
	s.mu.Unlock()
}

// wireEnded classifies a wire the hub closed: moved to another gateway
// (silent), or displaced / revoked (spec 5.5: `closed`, no re-join until
// ams_join), or lost otherwise (the next call re-joins).
func (s *session) wireEnded(w *wire) {
	defer w.decide()
	if w.detached.Load() {
		return
	}
	<-w.pumpDone
	s.clearWire(w)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	me := s.srv.cfg.Gateway
	final := w.code == 4001
	moved := false
	_, _, err := s.srv.store.update(ctx, s.id, func(r *record) error {
		if r.Holder != me || r.Epoch != w.epoch {
			moved = true
			return errStop
		}
		if !final {
			return errStop
		}
		r.State, r.CloseCode, r.CloseReason = stateClosed, w.code, w.reason
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		if !errors.Is(err, errNoSession) {
			s.srv.log.Warn("mcp wire end not recorded", "err", err)
		}
		return
	}
	if moved {
		if !s.heldHere() {
			s.buf.reset()
		}
		return
	}
	if w.code >= 4000 {
		e := closedEntry(w.conv.ID, w.code, w.reason)
		s.buf.add(e)
		s.srv.publish(s.id, &e)
	}
}

var errStop = errors.New("stop")

// heldHere reports whether this gateway holds a live wire of the session.
// settle waits until an ended wire was classified, so that the record and
// the buffer reflect it.
func (s *session) settle() {
	if w := s.current(); w != nil && w.ended() {
		<-w.decided
	}
}

func (s *session) heldHere() bool {
	w := s.current()
	return w != nil && !w.ended()
}

// target resolution ---------------------------------------------------------

// parseMagicLink reads a magic link {base}/{ns}/conversations/{alias}?t=…
// (spec 2.3) as the gRPC x-ams-magic-link is read: {base} is a public URL
// and may have a path prefix, one trailing slash is accepted, and space
// around the link is ignored. A derived URL (a path suffix such as
// /connect) is not a magic link.
func parseMagicLink(link string) (ns, alias, token string, ok bool) {
	_, _, ns, alias, token, ok = splitMagicLink(link)
	return ns, alias, token, ok
}

// splitMagicLink is parseMagicLink also returning the parsed URL and the
// path prefix of {base} ("" when there is none), unescaped.
func splitMagicLink(link string) (u *url.URL, prefix, ns, alias, token string, ok bool) {
	u, err := url.Parse(strings.TrimSpace(link))
	if err != nil {
		return nil, "", "", "", "", false
	}
	seg := strings.Split(strings.TrimSuffix(u.Path, "/"), "/")
	n := len(seg)
	if n < 4 || seg[n-2] != "conversations" || seg[n-3] == "" || seg[n-1] == "" {
		return nil, "", "", "", "", false
	}
	return u, strings.Join(seg[:n-3], "/"), seg[n-3], seg[n-1], u.Query().Get("t"), true
}

// admitLink checks a magic_link argument.
func (s *session) admitLink(ctx context.Context, link string) (*admission.Conversation, convRef, error) {
	ns, alias, token, ok := parseMagicLink(link)
	if !ok {
		return nil, convRef{}, domainErr(wireerr.InvalidMagicLink.Name, "magic_link is not a magic link URL")
	}
	return s.srv.admit(ctx, ns, alias, token)
}

// readmit checks that a known conversation's link still admits (spec 2.3:
// not revoked, not expired) and returns the conversation.
func (s *session) readmit(ctx context.Context, ref convRef) (*admission.Conversation, error) {
	adm := s.srv.cfg.Admission
	conv, err := adm.Conversation(ctx, ref.NS, ref.Alias)
	if errors.Is(err, admission.ErrNoConversation) {
		return nil, domainErr(wireerr.ConversationNotFound.Name, "no such conversation")
	}
	if err != nil {
		return nil, err
	}
	if adm.Revoked.IsRevoked(ref.LinkID) {
		return nil, domainErr(wireerr.LinkRevoked.Name, "the link was revoked")
	}
	if !ref.Expires.IsZero() && !time.Now().Before(ref.Expires.Add(linktoken.Leeway)) {
		return nil, domainErr(wireerr.LinkExpired.Name, "the link has expired")
	}
	return conv, nil
}

// binding parameters -----------------------------------------------------------

// dial joins the hub with the record's binding, as holder epoch, and
// returns the wire with the `joined` frame.
func (s *session) dial(ctx context.Context, conv *admission.Conversation, rec *record, epoch uint64, cursor map[string]uint64, resume bool) (*wire, []byte, error) {
	w := newWire(s, epoch, *rec.Conv)
	jr := hub.JoinRequest{
		Conversation:  conv,
		LinkID:        rec.Conv.LinkID,
		AccountID:     rec.Account,
		StreamName:    rec.Name,
		Metadata:      rec.Metadata,
		MetadataSet:   rec.MetadataSet,
		PeerIdentity:  rec.PeerIdentity,
		SelfSubscribe: rec.SelfSubscribe,
		Filter:        rec.Filter,
		FilterSet:     rec.FilterSet,
		Transport:     "mcp",
	}
	if jr.Metadata == "" {
		jr.Metadata = "{}"
	}
	if resume {
		c := &connreq.Cursor{Positions: map[string]uint64{}}
		for id, seq := range cursor {
			if len(c.Order) == connreq.MaxCursorItems {
				break
			}
			c.Positions[id] = seq
			c.Order = append(c.Order, id)
		}
		jr.Cursor = c
	}
	conn, err := s.srv.cfg.Hub.Join(ctx, jr, w)
	if err != nil {
		return nil, nil, err
	}
	w.conn = conn
	w.streamID = s.srv.cfg.Deriver.StreamID(conv.ID, rec.Account, rec.Name)
	items, _ := conn.Take(nil)
	var joined []byte
	for i, it := range items {
		if i == 0 {
			joined = it.Frame
			continue
		}
		s.frame(w, it)
	}
	if joined == nil {
		conn.Close(1000, false)
		return nil, nil, wireerr.New(wireerr.Internal, "no joined frame")
	}
	go w.pump()
	return w, joined, nil
}

// takeHolder makes this gateway the holder in the record (a new epoch)
// after fn's changes; the wire a previous holder keeps is displaced by the
// join that follows and sees it moved.
func (s *session) takeHolder(ctx context.Context, fn func(r *record) error) (record, error) {
	me := s.srv.cfg.Gateway
	rec, _, err := s.srv.store.update(ctx, s.id, func(r *record) error {
		if err := fn(r); err != nil {
			return err
		}
		r.Holder = me
		r.Epoch++
		return nil
	})
	return rec, err
}

// ensureWire returns the session's live wire on this gateway, re-joining
// its binding here if needed (spec 5.5 rehydration).
func (s *session) ensureWire(ctx context.Context, t *target) (*wire, error) {
	s.op.Lock()
	defer s.op.Unlock()
	s.settle()
	rec, _, err := s.srv.store.get(ctx, s.id)
	if err != nil {
		return nil, err
	}
	if w := s.current(); w != nil && !w.ended() && rec.Holder == s.srv.cfg.Gateway && rec.Epoch == w.epoch {
		return w, nil
	}
	if rec.BadCredential {
		return nil, domainErr(wireerr.InvalidCredential.Name, "the session's Bearer credential is not valid")
	}
	switch rec.State {
	case stateLeft:
		return nil, domainErr("left", "the session left; call ams_join")
	case stateClosed:
		return nil, wireClosed(rec.CloseCode, rec.CloseReason)
	case stateJoined:
		if rec.Conv == nil {
			return nil, domainErr("not_joined", "no conversation joined")
		}
		conv, err := s.readmit(ctx, *rec.Conv)
		if err != nil {
			return nil, err
		}
		return s.redial(ctx, conv, true, nil)
	}
	// Never joined: the pre-bound conversation or the call's magic link.
	var ja joinArgs
	switch {
	case rec.Pre != nil:
	case t != nil && t.MagicLink != "":
		ja.MagicLink = t.MagicLink
	default:
		return nil, domainErr("not_joined", "no conversation joined: call ams_join")
	}
	if t != nil {
		ja.StreamName = t.StreamName
	}
	ja.Metadata = "{}"
	w, _, err := s.join(ctx, &ja)
	return w, err
}

// redial re-joins the record's binding on this gateway with the cursor of
// what the session already got.
func (s *session) redial(ctx context.Context, conv *admission.Conversation, resume bool, fn func(r *record) error) (*wire, error) {
	old := s.current()
	if old != nil && !old.ended() {
		// Another holder took it, or this wire is stale: the join below
		// displaces it.
		old.detached.Store(true)
		s.clearWire(old)
	}
	rec, err := s.takeHolder(ctx, func(r *record) error {
		if r.State != stateJoined || r.Conv == nil {
			return errStop
		}
		if fn != nil {
			return fn(r)
		}
		return nil
	})
	if errors.Is(err, errStop) {
		return nil, domainErr("not_joined", "no conversation joined")
	}
	if err != nil {
		return nil, err
	}
	w, _, err := s.dial(ctx, conv, &rec, rec.Epoch, rec.Cursor, resume)
	if err != nil {
		retire(old)
		return nil, s.joinFailed(ctx, rec.Epoch, err)
	}
	s.setWire(w)
	return w, nil
}

// retire ends a wire a failed join did not displace, keeping its stream
// for the grace (the session will re-join it).
func retire(w *wire) {
	if w != nil && !w.ended() {
		w.detach(false)
	}
}

// joinFailed records a failed join (no binding) and returns its error.
func (s *session) joinFailed(ctx context.Context, epoch uint64, err error) error {
	_, _, _ = s.srv.store.update(ctx, s.id, func(r *record) error {
		if r.Epoch != epoch {
			return errStop
		}
		r.State, r.Conv, r.Cursor = stateNone, nil, nil
		return nil
	})
	return err
}

// join binds the session to a conversation (ams_join, or a first re-join
// from a magic link or the pre-bound conversation). s.op is held.
func (s *session) join(ctx context.Context, a *joinArgs) (*wire, []byte, error) {
	s.settle()
	rec, _, err := s.srv.store.get(ctx, s.id)
	if err != nil {
		return nil, nil, err
	}
	if rec.BadCredential {
		return nil, nil, domainErr(wireerr.InvalidCredential.Name, "the session's Bearer credential is not valid")
	}
	var (
		conv *admission.Conversation
		ref  convRef
	)
	switch {
	case rec.Pre != nil:
		ref = *rec.Pre
		if conv, err = s.readmit(ctx, ref); err != nil {
			return nil, nil, err
		}
	case a.MagicLink != "":
		if conv, ref, err = s.admitLink(ctx, a.MagicLink); err != nil {
			return nil, nil, err
		}
	case rec.Account == "":
		return nil, nil, domainErr(wireerr.InvalidCredential.Name, "no account: pass a magic_link or connect with a Bearer credential")
	default:
		return nil, nil, invalidArgs("magic_link is required")
	}
	account := rec.Account
	if account == "" {
		account = s.srv.cfg.Deriver.AnonAccountID(ref.LinkID)
	}
	name := a.StreamName
	sameConv := rec.State == stateJoined && rec.Conv != nil && rec.Conv.ID == ref.ID
	switch {
	case name != "":
	case a.PeerIdentity != "":
		name = autoStreamName(s.srv.cfg.Deriver, s.id, a.PeerIdentity)
	case sameConv && rec.Name != "":
		name = rec.Name
	default:
		name = ids.NewDefaultStreamName()
	}
	same := sameConv && rec.Name == name && rec.Account == account
	if rec.State == stateJoined && !same {
		if _, err := s.leaveLocked(ctx); err != nil {
			return nil, nil, err
		}
	}
	rec, err = s.takeHolder(ctx, func(r *record) error {
		if r.Account == "" {
			r.Account = account
		}
		keepMD := same && !a.MetadataSet
		r.State, r.Conv, r.Name = stateJoined, &ref, name
		if !keepMD {
			r.Metadata, r.MetadataSet = a.Metadata, a.MetadataSet
		}
		r.SelfSubscribe, r.PeerIdentity = a.SelfSubscribe, a.PeerIdentity
		r.Filter, r.FilterSet = a.Filter, a.FilterSet
		r.CloseCode, r.CloseReason, r.Cursor = 0, "", nil
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	old := s.current()
	if old != nil && !old.ended() {
		old.detached.Store(true) // displaced by the join below
		s.clearWire(old)
	}
	w, joined, err := s.dial(ctx, conv, &rec, rec.Epoch, nil, false)
	if err != nil {
		retire(old)
		return nil, nil, s.joinFailed(ctx, rec.Epoch, err)
	}
	s.setWire(w)
	s.persistCursor(ctx, w)
	return w, joined, nil
}

// persistCursor records what the session already got (the wire's cursor)
// if the wire is still the current one.
func (s *session) persistCursor(ctx context.Context, w *wire) {
	cur := w.conn.Cursor()
	me := s.srv.cfg.Gateway
	_, _, err := s.srv.store.update(ctx, s.id, func(r *record) error {
		if r.Holder != me || r.Epoch != w.epoch {
			return errStop
		}
		if r.Cursor == nil {
			r.Cursor = map[string]uint64{}
		}
		for id, seq := range cur {
			if seq > r.Cursor[id] {
				r.Cursor[id] = seq
			}
		}
		if len(r.Cursor) > connreq.MaxCursorItems {
			for id := range r.Cursor {
				if _, live := cur[id]; !live {
					delete(r.Cursor, id)
				}
				if len(r.Cursor) <= connreq.MaxCursorItems {
					break
				}
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStop) && !errors.Is(err, errNoSession) {
		s.srv.log.Warn("mcp cursor not recorded", "err", err)
	}
}

// leave ends the binding (ams_leave, DELETE): peers get stream_left.
func (s *session) leave(ctx context.Context) ([]byte, error) {
	s.op.Lock()
	defer s.op.Unlock()
	return s.leaveLocked(ctx)
}

func (s *session) leaveLocked(ctx context.Context) ([]byte, error) {
	s.settle()
	rec, _, err := s.srv.store.get(ctx, s.id)
	if err != nil {
		return nil, err
	}
	me := s.srv.cfg.Gateway
	w := s.current()
	switch {
	case rec.State == stateJoined && w != nil && !w.ended() && rec.Holder == me && rec.Epoch == w.epoch:
		if _, _, err := s.srv.store.update(ctx, s.id, func(r *record) error {
			r.State = stateLeft
			return nil
		}); err != nil {
			return nil, err
		}
		s.clearWire(w)
		w.detach(true)
	case rec.State == stateJoined && rec.Conv != nil:
		// The wire is elsewhere (or lost): take it over here and leave.
		conv, err := s.readmit(ctx, *rec.Conv)
		if err != nil {
			// The link no longer admits: the stream leaves when its
			// holder notices the revocation, or by its grace.
			_, _, uerr := s.srv.store.update(ctx, s.id, func(r *record) error { r.State = stateLeft; return nil })
			return okPayload, uerr
		}
		w, err := s.redial(ctx, conv, false, nil)
		if err != nil {
			return nil, err
		}
		if _, _, err := s.srv.store.update(ctx, s.id, func(r *record) error {
			r.State = stateLeft
			return nil
		}); err != nil {
			return nil, err
		}
		s.clearWire(w)
		w.detach(true)
	default:
		if _, _, err := s.srv.store.update(ctx, s.id, func(r *record) error {
			r.State = stateLeft
			return nil
		}); err != nil {
			return nil, err
		}
	}
	return okPayload, nil
}

// callHost is a session as seen by one tool call.
type callHost struct {
	*session
	base string
}

func (h *callHost) Buffer() *buffer { return h.buf }

func (h *callHost) Join(ctx context.Context, a *joinArgs) ([]byte, error) {
	h.op.Lock()
	defer h.op.Unlock()
	_, joined, err := h.join(ctx, a)
	if err != nil {
		return nil, err
	}
	return joinedPayload(joined), nil
}

func (h *callHost) Leave(ctx context.Context) ([]byte, error) { return h.leave(ctx) }

// withWire runs fn on the session's wire, re-joining once if the wire was
// displaced by a move while fn ran.
func (h *callHost) withWire(ctx context.Context, t *target, fn func(w *wire) error) error {
	for attempt := 0; ; attempt++ {
		w, err := h.ensureWire(ctx, t)
		if err != nil {
			return err
		}
		err = fn(w)
		we, ok := wireerr.As(err)
		if !ok || we.Code.Name != wireerr.StreamDisplaced.Name || attempt == 2 {
			return err
		}
		<-w.decided
	}
}

func (h *callHost) Send(ctx context.Context, data string, t *target) ([]byte, error) {
	var out []byte
	err := h.withWire(ctx, t, func(w *wire) error {
		if err := h.srv.cfg.Limits.Tokens(w.conn.AccountID(), 1); err != nil {
			return err
		}
		seq, ts, err := w.conn.Emit(data)
		if err != nil {
			return err
		}
		out = sendPayload(formatTS(ts), w.streamID, seq)
		return nil
	})
	return out, err
}

func (h *callHost) SetMetadata(ctx context.Context, md string, t *target) ([]byte, error) {
	var out []byte
	err := h.withWire(ctx, t, func(w *wire) error {
		if err := h.srv.cfg.Limits.Tokens(w.conn.AccountID(), 1); err != nil {
			return err
		}
		seq, ts, err := w.conn.SetMetadata(ctx, md)
		if err != nil {
			return err
		}
		out = sendPayload(formatTS(ts), w.streamID, seq)
		_, _, uerr := h.srv.store.update(ctx, h.id, func(r *record) error {
			r.Metadata, r.MetadataSet = md, true
			return nil
		})
		return uerr
	})
	return out, err
}

func (h *callHost) Recv(ctx context.Context, wait time.Duration, t *target) ([]byte, error) {
	w, err := h.ensureWire(ctx, t)
	var stop <-chan struct{}
	if err != nil {
		var te *toolError
		if !errors.As(err, &te) {
			return nil, err
		}
		switch te.Code {
		case "left", "wire_closed", "not_joined":
			wait = 0 // only drain
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
	if w != nil && len(es) > 0 {
		h.persistCursor(ctx, w)
	}
	return recvPayload(es, dropped), nil
}

// RideAlong persists the cursor after ride-along frames were acknowledged.
func (h *callHost) afterRideAlong(ctx context.Context) {
	if w := h.current(); w != nil && !w.ended() {
		h.persistCursor(ctx, w)
	}
}
