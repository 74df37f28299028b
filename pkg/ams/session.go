package ams

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/amsrouter/ams/pkg/wire"
)

// Events a Session adds to the server's frames.

// Closed is the last event of a session. Code and Reason are the close
// code and reason that ended it: 1000 after Close, 4001 "stream_displaced"
// when another connection took the stream over, 1006 when the connection
// was lost and reconnecting failed. Err is nil after Close.
type Closed struct {
	Code   int
	Reason wire.Code
	Err    error
}

// Reconnecting tells that the connection was lost (Code 1006) or ended with
// a retryable close code, and that attempt number Attempt to reconnect
// follows after Delay. Events received so far stay valid; the session
// resumes after them.
type Reconnecting struct {
	Attempt int
	Delay   time.Duration
	Code    int
	Reason  wire.Code
	Err     error
}

// Reconnected tells that the session is connected again; Joined is the
// server's new `joined` frame. Membership changes missed while away arrive
// as StreamJoined and StreamLeft events, missed tokens as Token events.
type Reconnected struct {
	Joined wire.Joined
}

func (Closed) EventType() string       { return "closed" }
func (Reconnecting) EventType() string { return "reconnecting" }
func (Reconnected) EventType() string  { return "reconnected" }

// Session is one participant's connection to a conversation: it owns one
// stream, writes it with Send and SetMetadata, and reads the other
// streams through Events. It reconnects by itself after a lost connection
// and after the close codes that allow it (1001 going_away, 4290
// slow_consumer, 4500 internal_error), resuming from the last event it
// delivered: the application sees no duplicate, and any loss as a
// wire.ReplayGap. It never reconnects after Close or after a close code
// that forbids it (4001 displaced, revoked or invalid link, 4002, 4003,
// 4004, 4005, 4400); the Closed event then tells why.
//
// The methods of a Session are safe for concurrent use.
type Session struct {
	cfg  joinConfig
	link MagicLink

	events    chan wire.Event
	closeReq  chan struct{} // closed by Close
	closeOnce sync.Once
	done      chan struct{} // closed when run returns

	mu       sync.Mutex
	cur      transport     // nil while reconnecting
	ready    chan struct{} // closed once cur is set or the session ended
	joined   wire.Joined
	cursor   wire.Cursor
	metadata json.RawMessage // the own metadata to present on reconnect
	filter   []string        // the read filter to present on reconnect
	filterOn bool
	err      error // why the session ended
	ended    bool

	// ownConn is the gRPC connection WithGRPC made, closed at the end.
	ownConn *grpc.ClientConn

	// known holds the streams the application was told about (peers,
	// stream_joined) and not yet told gone; only run uses it.
	known map[string]wire.Stream
}

// Join connects to the conversation of a magic link over WebSocket (or
// gRPC with WithGRPC) and returns once the server's `joined` frame
// arrived, which is also the first event of Events. ctx bounds the
// connect only; the session lives until Close or a final close. A refused
// join returns an *Error with the close code and reason (Close, Code).
func Join(ctx context.Context, magicLink string, opts ...JoinOption) (*Session, error) {
	link, err := ParseMagicLink(magicLink)
	if err != nil {
		return nil, err
	}
	cfg := joinConfig{bufferSize: 256}
	for _, o := range opts {
		o(&cfg)
	}
	cfg.reconnect = cfg.reconnect.withDefaults()
	if cfg.bufferSize < 1 {
		cfg.bufferSize = 1
	}
	var ownConn *grpc.ClientConn
	if cfg.grpcAddr != "" && cfg.grpcConn == nil {
		if ownConn, err = newGRPCConn(cfg.grpcAddr); err != nil {
			return nil, fmt.Errorf("ams: join: %w", err)
		}
		cfg.grpcConn = ownConn
	}
	s := &Session{
		cfg:      cfg,
		link:     link,
		events:   make(chan wire.Event, cfg.bufferSize),
		closeReq: make(chan struct{}),
		done:     make(chan struct{}),
		ready:    make(chan struct{}),
		metadata: cfg.metadata,
		filter:   cfg.subscribe,
		filterOn: cfg.subscribeSet,
		known:    map[string]wire.Stream{},
		ownConn:  ownConn,
	}
	if cfg.resume != nil {
		s.cursor = cfg.resume
	}
	t, joined, err := s.connect(ctx, s.dialInputs(false))
	if err != nil {
		if ownConn != nil {
			_ = ownConn.Close()
		}
		return nil, err
	}
	s.cursor = wire.Cursor{}
	for id, seq := range cfg.resume {
		s.cursor[id] = seq
	}
	for _, p := range joined.Peers {
		s.known[p.StreamID] = p
		if _, ok := s.cursor[p.StreamID]; !ok && cfg.resume == nil {
			s.cursor[p.StreamID] = p.LastSeq
		}
	}
	if joined.SelfSubscribe && !joined.Observer {
		if _, ok := s.cursor[joined.StreamID]; !ok && cfg.resume == nil {
			s.cursor[joined.StreamID] = joined.LastSeq
		}
	}
	s.joined = joined
	s.cur = t
	close(s.ready)
	s.events <- joined // the buffer is empty: this does not block
	go s.run(t)
	return s, nil
}

// Events returns the session's events: first wire.Joined, then
// wire.Token, wire.StreamJoined, wire.StreamLeft, wire.StreamMetadata,
// wire.ReplayGap, wire.Subscribed, wire.Pong as they come, Reconnecting and
// Reconnected around a reconnection, and last Closed, after which the
// channel is closed. Read it promptly: a session that cannot hand over
// its events stops reading from the server.
func (s *Session) Events() <-chan wire.Event { return s.events }

// Joined returns the latest `joined` frame: the own stream id and name,
// the account, the retention.
func (s *Session) Joined() wire.Joined {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.joined
}

// Cursor returns the session's resume position: per stream, the seq of
// the last event delivered (or announced). Saved, it lets a later Join
// continue where this session stopped (WithResume).
func (s *Session) Cursor() wire.Cursor {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := make(wire.Cursor, len(s.cursor))
	for id, seq := range s.cursor {
		c[id] = seq
	}
	return c
}

// Err returns why the session ended: nil while it runs and after Close,
// else the error of the final close (an *Error for a close code).
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Done is closed when the session has ended.
func (s *Session) Done() <-chan struct{} { return s.done }

// Send emits one token on the session's stream (spec 4.4). While the
// session is reconnecting it waits for the new connection (bounded by
// ctx). Delivery is at most once: a token written just before a
// connection was lost may be lost with it.
func (s *Session) Send(ctx context.Context, data string) error {
	if s.cfg.observe {
		return ErrReadOnly
	}
	return s.write(ctx, clientFrame{kind: frameToken, data: []string{data}})
}

// SendMany emits tokens in order; with WithBatch they travel in as few
// messages as possible (256 frames each).
func (s *Session) SendMany(ctx context.Context, data ...string) error {
	if s.cfg.observe {
		return ErrReadOnly
	}
	for len(data) > 0 {
		n := min(len(data), maxBatch)
		if err := s.write(ctx, clientFrame{kind: frameToken, data: data[:n]}); err != nil {
			return err
		}
		data = data[n:]
	}
	return nil
}

// maxBatch is the most frames in one batched message (spec 4.6).
const maxBatch = 256

// SetMetadata replaces the stream's metadata with a JSON object; readers
// get a wire.StreamMetadata event. It is kept across reconnects.
func (s *Session) SetMetadata(ctx context.Context, metadata json.RawMessage) error {
	if s.cfg.observe {
		return ErrReadOnly
	}
	if !json.Valid(metadata) || len(metadata) == 0 || firstNonSpace(metadata) != '{' {
		return errors.New("ams: metadata must be a JSON object")
	}
	if err := s.write(ctx, clientFrame{kind: frameSetMetadata, metadata: metadata}); err != nil {
		return err
	}
	s.mu.Lock()
	s.metadata = append(json.RawMessage(nil), metadata...)
	s.mu.Unlock()
	return nil
}

// Subscribe replaces the read filter (spec 5.2): stream ids or names; nil
// means every peer. The server answers with a wire.Subscribed event. The
// filter is kept across reconnects.
func (s *Session) Subscribe(ctx context.Context, streams []string) error {
	if err := s.write(ctx, clientFrame{kind: frameSubscribe, streams: streams}); err != nil {
		return err
	}
	s.mu.Lock()
	s.filter, s.filterOn = slices.Clone(streams), streams != nil
	s.mu.Unlock()
	return nil
}

// Ping asks the server for a wire.Pong event.
func (s *Session) Ping(ctx context.Context) error {
	return s.write(ctx, clientFrame{kind: framePing})
}

// Close leaves the conversation with close code 1000: peers get
// stream_left at once. It waits for the session to end; events not yet
// read may be dropped, and Events is closed. Close is idempotent.
func (s *Session) Close() error {
	s.closeOnce.Do(func() {
		close(s.closeReq)
		s.mu.Lock()
		t := s.cur
		s.mu.Unlock()
		if t != nil {
			t.close()
		}
	})
	<-s.done
	return nil
}

func firstNonSpace(b []byte) byte {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		}
		return c
	}
	return 0
}

// write sends a frame on the current connection, waiting for one while
// reconnecting. A write that fails because the connection just broke is
// retried once on the next connection.
func (s *Session) write(ctx context.Context, f clientFrame) error {
	var lastErr error
	for attempt := 0; attempt < 2; attempt++ {
		t, err := s.transport(ctx)
		if err != nil {
			return err
		}
		lastErr = t.send(ctx, f)
		if lastErr == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// The connection failed under us: wait until run notices and
		// replaces it, then try once more.
		s.mu.Lock()
		if s.cur == t {
			s.mu.Unlock()
			select {
			case <-t.broken():
			case <-ctx.Done():
				return ctx.Err()
			}
		} else {
			s.mu.Unlock()
		}
	}
	return fmt.Errorf("ams: send: %w", lastErr)
}

// transport returns the current connection, waiting while reconnecting.
func (s *Session) transport(ctx context.Context) (transport, error) {
	for {
		s.mu.Lock()
		t, ready, ended := s.cur, s.ready, s.ended
		s.mu.Unlock()
		if ended {
			return nil, ErrClosed
		}
		select {
		case <-s.closeReq:
			return nil, ErrClosed
		default:
		}
		if t != nil {
			return t, nil
		}
		select {
		case <-ready:
		case <-s.closeReq:
			return nil, ErrClosed
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// emit hands an event to the application, giving up when Close was called.
func (s *Session) emit(ev wire.Event) bool {
	select {
	case s.events <- ev:
		return true
	case <-s.closeReq:
		return false
	}
}

// closing reports whether Close was called.
func (s *Session) closing() bool {
	select {
	case <-s.closeReq:
		return true
	default:
		return false
	}
}

// run reads the connection, reconnects when it breaks, and ends the
// session.
func (s *Session) run(t transport) {
	defer close(s.done)
	var final Closed
	for {
		ev, err := t.recv()
		if err == nil {
			// After Close, frames are dropped until the connection ends
			// (Close waits for the server's answer, bounded).
			s.handle(ev)
			continue
		}
		code, reason := t.status(err)
		s.mu.Lock()
		s.cur = nil
		s.ready = make(chan struct{})
		s.mu.Unlock()
		t.abort()
		if s.closing() {
			final = Closed{Code: wire.CloseNormal}
			break
		}
		if !wire.Retryable(code) || s.cfg.reconnect.MaxAttempts < 0 {
			final = Closed{Code: code, Reason: reason, Err: endError(code, reason, err)}
			break
		}
		nt, f, ok := s.reconnect(code, reason, err)
		if !ok {
			final = f
			break
		}
		t = nt
	}
	s.finish(final)
}

// finish records the end, delivers Closed if there is room, and closes
// Events.
func (s *Session) finish(c Closed) {
	s.mu.Lock()
	s.cur = nil
	s.ended = true
	s.err = c.Err
	ready := s.ready
	s.mu.Unlock()
	select {
	case <-ready:
	default:
		close(ready)
	}
	if s.ownConn != nil {
		_ = s.ownConn.Close()
	}
	if s.closing() {
		select {
		case s.events <- c:
		default:
		}
	} else {
		select {
		case s.events <- c:
		case <-s.closeReq:
		}
	}
	close(s.events)
}

func endError(code int, reason wire.Code, err error) error {
	if code == wire.CloseAbnormal {
		return fmt.Errorf("ams: connection lost: %w", err)
	}
	return closeError(code, string(reason))
}

// reconnect dials again with backoff until a connection is joined, the
// attempts are used up, a refusal is final, or Close is called.
func (s *Session) reconnect(code int, reason wire.Code, cause error) (transport, Closed, bool) {
	p := s.cfg.reconnect
	delay := p.MinDelay
	for attempt := 1; ; attempt++ {
		if attempt > p.MaxAttempts {
			return nil, Closed{Code: code, Reason: reason, Err: fmt.Errorf("ams: gave up reconnecting after %d attempts: %w", p.MaxAttempts, cause)}, false
		}
		// Equal jitter: between half the delay and the full delay.
		wait := delay/2 + rand.N(delay/2+1)
		if !s.emit(Reconnecting{Attempt: attempt, Delay: wait, Code: code, Reason: reason, Err: cause}) {
			return nil, Closed{Code: wire.CloseNormal}, false
		}
		timer := time.NewTimer(wait)
		select {
		case <-timer.C:
		case <-s.closeReq:
			timer.Stop()
			return nil, Closed{Code: wire.CloseNormal}, false
		}
		delay = min(delay*2, p.MaxDelay)

		// The attempt ends early when Close is called.
		ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
		go func() {
			select {
			case <-s.closeReq:
				cancel()
			case <-ctx.Done():
			}
		}()
		t, joined, err := s.connect(ctx, s.dialInputs(true))
		cancel()
		if err == nil {
			if !s.rejoined(t, joined) {
				t.close()
				return nil, Closed{Code: wire.CloseNormal}, false
			}
			return t, Closed{}, true
		}
		if s.closing() {
			return nil, Closed{Code: wire.CloseNormal}, false
		}
		if !retryableDialError(err) {
			var e *Error
			if errors.As(err, &e) && e.Close != 0 {
				return nil, Closed{Code: e.Close, Reason: e.Code, Err: err}, false
			}
			return nil, Closed{Code: code, Reason: reason, Err: err}, false
		}
		cause = err
		code, reason = wire.CloseAbnormal, ""
		var e *Error
		if errors.As(err, &e) && e.Close != 0 {
			code, reason = e.Close, e.Code
		}
	}
}

// dialTimeout bounds one connect attempt, joined frame included.
const dialTimeout = 15 * time.Second

// retryableDialError reports whether a failed reconnect attempt may be
// tried again: network failures, 5xx and 429 answers, retryable closes.
func retryableDialError(err error) bool {
	var e *Error
	if !errors.As(err, &e) {
		return true
	}
	if e.Close != 0 {
		return wire.Retryable(e.Close)
	}
	return e.Status >= 500 || e.Status == 429
}

// rejoined installs a new connection after a reconnect: it reconciles the
// streams the application knows with the new `joined` and tells it what
// changed while it was away.
func (s *Session) rejoined(t transport, joined wire.Joined) bool {
	s.mu.Lock()
	s.joined = joined
	filter, filterOn := s.filter, s.filterOn
	cursor := s.cursor
	s.mu.Unlock()

	var news []wire.Event
	live := make(map[string]bool, len(joined.Peers))
	for _, p := range joined.Peers {
		live[p.StreamID] = true
		if _, ok := s.known[p.StreamID]; !ok {
			// Joined while we were away. It is not in the cursor, so the
			// server replays all of its retained events.
			s.known[p.StreamID] = p
			news = append(news, wire.StreamJoined{Stream: p})
		}
	}
	s.mu.Lock()
	for id, st := range s.known {
		if live[id] {
			continue
		}
		// Gone while we were away. The server replays it and sends its
		// stream_left if it is in the cursor and read; else say it here.
		if _, inCursor := cursor[id]; inCursor && matches(filter, filterOn, st) {
			continue
		}
		delete(s.known, id)
		delete(s.cursor, id)
		news = append(news, wire.StreamLeft{StreamID: st.StreamID, StreamName: st.StreamName, OwnerAccountID: st.OwnerAccountID, PeerIdentity: st.PeerIdentity, LastSeq: st.LastSeq})
	}
	s.mu.Unlock()

	if !s.emit(Reconnected{Joined: joined}) {
		return false
	}
	for _, ev := range news {
		if !s.emit(ev) {
			return false
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing() {
		return false
	}
	s.cur = t
	close(s.ready)
	return true
}

// matches reports whether a read filter selects the stream.
func matches(filter []string, on bool, st wire.Stream) bool {
	if !on {
		return true
	}
	return slices.Contains(filter, st.StreamID) || slices.Contains(filter, st.StreamName)
}

// handle processes one server frame: it drops what the application
// already has, keeps the cursor, and delivers the rest. It returns false
// when Close was called.
func (s *Session) handle(ev wire.Event) bool {
	if s.closing() {
		return false
	}
	switch e := ev.(type) {
	case wire.Token:
		if !s.advance(e.StreamID, e.Seq) {
			return true
		}
	case wire.StreamMetadata:
		if !s.advance(e.StreamID, e.Seq) {
			return true
		}
		if st, ok := s.known[e.StreamID]; ok {
			st.Metadata = e.Metadata
			s.known[e.StreamID] = st
		}
	case wire.StreamJoined:
		if _, ok := s.known[e.StreamID]; ok {
			return true // already announced after a reconnect
		}
		s.known[e.StreamID] = e.Stream
		s.mu.Lock()
		if e.LastSeq > s.cursor[e.StreamID] || !hasKey(s.cursor, e.StreamID) {
			s.cursor[e.StreamID] = e.LastSeq
		}
		s.mu.Unlock()
	case wire.StreamLeft:
		if _, ok := s.known[e.StreamID]; !ok {
			return true // already said gone
		}
		delete(s.known, e.StreamID)
		s.mu.Lock()
		delete(s.cursor, e.StreamID)
		s.mu.Unlock()
	case wire.Subscribed:
		s.mu.Lock()
		s.filter, s.filterOn = e.Subscription, e.Subscription != nil
		s.mu.Unlock()
	case wire.ReplayGap, wire.Pong:
	default: // cursor frames, a second joined, unknown types
		return true
	}
	return s.emit(ev)
}

func hasKey(c wire.Cursor, id string) bool {
	_, ok := c[id]
	return ok
}

// advance moves the cursor of a stream to seq and reports whether the
// event is new to the application.
func (s *Session) advance(streamID string, seq uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if last, ok := s.cursor[streamID]; ok && seq <= last {
		return false
	}
	s.cursor[streamID] = seq
	return true
}

// dialInputs are the connect inputs of the next connection. A reconnect
// presents the name the server gave, the latest metadata and filter, and
// the cursor.
func (s *Session) dialInputs(reconnect bool) dialInputs {
	s.mu.Lock()
	defer s.mu.Unlock()
	in := dialInputs{
		streamName: s.cfg.streamName,
		metadata:   s.metadata,
		filter:     s.filter,
		filterOn:   s.filterOn,
	}
	if s.cursor != nil {
		in.resume = wire.Cursor(s.cursor).String()
	}
	if reconnect {
		in.streamName = s.joined.StreamName
		if len(s.cursor) > wire.MaxCursorPositions {
			in.resume = trimCursor(s.cursor).String()
		}
	}
	return in
}

// trimCursor keeps the first MaxCursorPositions positions by stream id.
func trimCursor(c wire.Cursor) wire.Cursor {
	ids := make([]string, 0, len(c))
	for id := range c {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	out := wire.Cursor{}
	for _, id := range ids[:wire.MaxCursorPositions] {
		out[id] = c[id]
	}
	return out
}

// connect dials and waits for the `joined` frame.
func (s *Session) connect(ctx context.Context, in dialInputs) (transport, wire.Joined, error) {
	var (
		t   transport
		err error
	)
	if s.cfg.grpcConn != nil {
		t, err = dialGRPC(ctx, &s.cfg, s.link, in)
	} else {
		t, err = dialWS(ctx, &s.cfg, s.link, in)
	}
	if err != nil {
		return nil, wire.Joined{}, err
	}
	// The first frame is joined, or the connection ends with a close code.
	type first struct {
		ev  wire.Event
		err error
	}
	ch := make(chan first, 1)
	go func() {
		ev, err := t.recv()
		ch <- first{ev, err}
	}()
	select {
	case f := <-ch:
		if f.err != nil {
			code, reason := t.status(f.err)
			t.abort()
			if code == wire.CloseAbnormal {
				return nil, wire.Joined{}, fmt.Errorf("ams: join: connection lost: %w", f.err)
			}
			return nil, wire.Joined{}, closeError(code, string(reason))
		}
		j, ok := f.ev.(wire.Joined)
		if !ok {
			t.abort()
			return nil, wire.Joined{}, fmt.Errorf("ams: join: first frame is %q, not joined", f.ev.EventType())
		}
		return t, j, nil
	case <-ctx.Done():
		t.abort()
		<-ch
		return nil, wire.Joined{}, fmt.Errorf("ams: join: %w", ctx.Err())
	}
}
