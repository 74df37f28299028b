package hub

import (
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/amsrouter/ams/services/gateway/internal/admission"
	"github.com/amsrouter/ams/services/gateway/internal/connreq"
	"github.com/amsrouter/ams/services/gateway/internal/frame"
	"github.com/amsrouter/ams/services/gateway/internal/presence"
	"github.com/amsrouter/ams/services/gateway/internal/subject"
	"github.com/amsrouter/ams/services/internal/wireerr"
)

// maxJoinAttempts bounds a join's compare-and-set retries on its record.
const maxJoinAttempts = 20

var (
	goingAway    = wireerr.GoingAway
	slowConsumer = wireerr.SlowConsumer
)

// JoinRequest is a validated connect request (spec 4.1, 4.2 checks 1–7
// already passed).
type JoinRequest struct {
	Conversation *admission.Conversation
	LinkID       string
	// AccountID is the authenticated account; "" only for an observer
	// without a credential.
	AccountID string
	Observer  bool
	// StreamName is the stream to own (writers); already defaulted.
	StreamName string
	// Metadata is the metadata header's object text; MetadataSet is false
	// when no header was given (a resume then keeps the metadata).
	Metadata    string
	MetadataSet bool
	// PeerIdentity is the identity object text, "" if none.
	PeerIdentity  string
	SelfSubscribe bool
	// Filter is the read filter; FilterSet false means all streams.
	Filter    []string
	FilterSet bool
	// Cursor asks for a replay (spec 5.1); nil: live events only.
	Cursor    *connreq.Cursor
	Batch     bool
	Transport string
	// Gone, if set, reports that the client closed its connection while
	// the join waited for its turn (MaxJoining): it is then not served.
	Gone func() bool
}

// Join attaches a connection (spec 4.2 checks 8–10 and 4.5): it owns its
// stream, by a fresh join or by displacing the same account's connection
// of the same name on any replica, and it is queued `joined` followed by
// the events of its read set. Errors are *wireerr.Error close codes.
func (h *Hub) Join(ctx context.Context, req JoinRequest, sink Sink) (*Conn, error) {
	if h.draining.Load() {
		return nil, wireerr.New(wireerr.GoingAway, "gateway is draining")
	}
	if q := h.cfg.Quota; q != nil {
		if err := q.AcquireConn(req.AccountID); err != nil {
			return nil, err
		}
	}
	select {
	case h.joining <- struct{}{}:
	case <-ctx.Done():
		h.releaseQuota(req.AccountID)
		return nil, ctx.Err()
	}
	defer func() { <-h.joining }()
	if req.Gone != nil && req.Gone() {
		// Gave up waiting (a connect timeout in a reconnect storm): its
		// NATS work would only delay the clients still waiting.
		h.releaseQuota(req.AccountID)
		return nil, errClientGone
	}
	c, err := h.acquire(ctx, req.Conversation)
	if err != nil {
		h.releaseQuota(req.AccountID)
		if _, ok := wireerr.As(err); !ok && ctx.Err() == nil {
			return nil, h.internal(req.Conversation.ID, "serve conversation", err)
		}
		return nil, err
	}
	conn := &Conn{
		id: h.nextConn.Add(1), conv: c, sink: sink, transport: req.Transport,
		accountID: req.AccountID, linkID: req.LinkID, observer: req.Observer, batch: req.Batch,
		selfSub: req.SelfSubscribe, reads: map[*stream]struct{}{},
		maxFrames: h.cfg.QueueFrames, maxBytes: h.cfg.QueueBytes,
		space: make(chan struct{}, 1), latency: h.metrics.latency(req.Transport),
	}
	conn.ctx, conn.cancel = context.WithCancel(context.Background())
	if req.FilterSet {
		conn.filter = newFilter(req.Filter)
	}
	if req.Observer {
		err = h.joinObserver(ctx, c, conn, req.Cursor)
	} else {
		err = h.joinWriter(ctx, c, conn, req)
	}
	if err != nil {
		conn.cancel()
		h.release(c)
		h.releaseQuota(req.AccountID)
		return nil, err
	}
	h.metrics.conn(req.Transport, 1)
	if req.Cursor != nil {
		h.metrics.resumeStarted()
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			h.metrics.resumeEnded(c.replay(conn, req.Cursor))
		}()
	}
	return conn, nil
}

var errClientGone = wireerr.New(wireerr.GoingAway, "the client closed the connection before it joined")

// joinObserver admits an observer within the per-conversation cap. The
// cap counts every gateway's observers, read from the observers bucket;
// admissions racing on several gateways at once may pass it by a few.
func (h *Hub) joinObserver(ctx context.Context, c *conv, conn *Conn, cursor *connreq.Cursor) error {
	others, err := h.otherObservers(ctx, c.id)
	if err != nil {
		return h.internal(c.id, "count observers", err)
	}
	c.mu.Lock()
	if c.observers+others >= h.cfg.MaxObservers {
		c.mu.Unlock()
		return wireerr.New(wireerr.ObserversFull, "this conversation has its maximum of observers")
	}
	c.observers++
	n := c.observers
	c.attach(conn, nil, 0, false, cursor)
	c.mu.Unlock()
	h.publishObservers(ctx, c.id, n)
	return nil
}

// observersKey is this gateway's observer count key of a conversation.
func (h *Hub) observersKey(conversationID string) string {
	return conversationID + "." + h.cfg.Gateway
}

// otherObservers sums the observer counts other gateways published for
// the conversation.
func (h *Hub) otherObservers(ctx context.Context, conversationID string) (int, error) {
	filter, err := subject.PresenceFilter(conversationID)
	if err != nil {
		return 0, err
	}
	lister, err := h.plane.Observers.ListKeysFiltered(ctx, filter)
	if err != nil {
		return 0, err
	}
	own := h.observersKey(conversationID)
	total := 0
	for key := range lister.Keys() {
		if key == own {
			continue
		}
		e, err := h.plane.Observers.Get(ctx, key)
		if err != nil {
			continue // expired or deleted meanwhile
		}
		if n, err := strconv.Atoi(string(e.Value())); err == nil {
			total += n
		}
	}
	return total, nil
}

// publishObservers writes this gateway's observer count of a conversation
// (refreshed by the checkpoint loop; the bucket's TTL drops a dead
// gateway's counts).
func (h *Hub) publishObservers(ctx context.Context, conversationID string, n int) {
	if _, err := h.plane.Observers.Put(ctx, h.observersKey(conversationID), []byte(strconv.Itoa(n))); err != nil {
		h.log.Warn("observer count not published", "conversation_id", conversationID, "err", err)
	}
}

// attach queues `joined` and registers conn as a reader of its read set,
// atomically with respect to every event; c.mu is held.
func (c *conv) attach(conn *Conn, own *frame.Stream, ownLast uint64, resumed bool, cursor *connreq.Cursor) {
	maxAge, maxEvents := c.hub.Retention()
	j := frame.Joined{
		ConversationID: c.id,
		Own:            own,
		SelfSubscribe:  conn.selfSub,
		Resumed:        resumed,
		AccountID:      conn.accountID,
		MaxAgeMs:       maxAge,
		MaxEvents:      maxEvents,
		Observer:       conn.observer,
	}
	for _, p := range c.peers(conn.own) {
		j.Peers = append(j.Peers, frame.Stream{ID: p.ID, Name: p.Name, Owner: p.Owner,
			Metadata: p.Metadata, PeerIdentity: p.PeerIdentity, LastSeq: p.LastSeq})
	}
	if conn.filter != nil {
		j.Subscription = conn.filter.items
		j.SubscribedStreams = c.subscribed(conn)
	}
	conn.enqueue(Item{Frame: frame.AppendJoined(nil, &j)})
	conn.ownFrom = ownLast
	conn.resume, conn.resumeUntil = cursor, time.Now().Add(resumeLateWindow)
	c.conns[conn] = struct{}{}
	for _, s := range c.streams {
		if s.announced && conn.wantsRead(s) {
			c.register(conn, s)
			if s == conn.own {
				conn.qmu.Lock()
				conn.base[s.info.ID] = max(conn.base[s.info.ID], ownLast)
				conn.qmu.Unlock()
			}
			if cursor != nil {
				c.planReplay(conn, s, cursor, ownLast)
				conn.markResumed(s.info.ID)
			}
		}
	}
	if cursor != nil {
		conn.ownFrom = 0
	}
}

// subscribed lists the live stream ids in conn's read set; c.mu is held.
func (c *conv) subscribed(conn *Conn) []string {
	out := []string{}
	for _, p := range c.peers(nil) {
		if s := c.streams[p.ID]; s != nil && conn.wantsRead(s) {
			out = append(out, p.ID)
		}
	}
	return out
}

func isAnonymous(accountID string) bool { return strings.HasPrefix(accountID, "acc_anon_") }

func (h *Hub) joinWriter(ctx context.Context, c *conv, conn *Conn, req JoinRequest) error {
	sid := h.deriver.StreamID(c.id, req.AccountID, req.StreamName)
	// Joins of one stream on this gateway run one at a time; across
	// gateways the record's compare-and-set orders them.
	defer h.joinLocks.lock(sid)()
	probe := c.newStream(sid)
	for attempt := 0; ; attempt++ {
		if attempt == maxJoinAttempts {
			return h.internal(c.id, "stream record kept changing", nil)
		}
		if attempt > 0 {
			// Concurrent connects of one stream on several gateways race
			// on its record; back off a little, with jitter, and retry.
			select {
			case <-time.After(time.Duration(attempt) * time.Duration(1+rand.IntN(5)) * time.Millisecond):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if err := c.admit(sid, req); err != nil {
			return err
		}
		rec, rev, exists, err := c.record(ctx, probe.key, attempt == 0)
		if err != nil {
			return h.internal(c.id, "read stream record", err)
		}
		if exists {
			c.waitRev(ctx, sid, rev)
		}
		resumed := exists && rec.State == presence.Live && h.withinGrace(rec.Gateway)
		if exists && !resumed {
			// A fresh join of a stream this gateway may still show live
			// (its Left record not seen yet): end that incarnation here
			// first, after its last events, so local readers get its
			// stream_left before the new stream_joined.
			var ended <-chan struct{}
			c.mu.Lock()
			if old := c.streams[sid]; old != nil && old.announced {
				c.beginLeave(old, rec.LastSeq)
				ended = old.left
			}
			c.mu.Unlock()
			if ended != nil {
				select {
				case <-ended:
				case <-time.After(leaveWait + time.Second):
				case <-ctx.Done():
					return ctx.Err()
				}
			}
		}
		if resumed && rec.Gateway == h.cfg.Gateway && h.resumeHeld(c, conn, sid, &rec, req) {
			return nil
		}
		// A stream this gateway holds (a resume within the grace) is at
		// the seq it assigned last; others are asked of JetStream.
		last, held := uint64(0), false
		if resumed && rec.Gateway == h.cfg.Gateway {
			last, held = c.heldLast(sid)
			last = max(last, rec.LastSeq)
		}
		if !held {
			last, err = h.lastSeq(ctx, c.id, sid, rec.LastSeq)
			if err != nil {
				return h.internal(c.id, "read stream history", err)
			}
		}
		next := presence.Record{
			StreamID: sid, Name: req.StreamName, Owner: req.AccountID,
			Metadata: req.Metadata, PeerIdentity: req.PeerIdentity,
			Gateway: h.cfg.Gateway, Epoch: rec.Epoch + 1, State: presence.Live,
			LastSeq: last, LinkID: req.LinkID,
		}
		if !req.MetadataSet {
			next.Metadata = "{}"
			if resumed {
				next.Metadata = rec.Metadata
			}
		}
		if resumed {
			next.Order = rec.Order
			if next.Order == 0 {
				next.Order = rev
			}
		}
		newRev, err := presence.Put(ctx, h.plane.Presence, probe.key, &next, rev)
		if err == presence.ErrConflict {
			continue
		}
		if err != nil {
			return h.internal(c.id, "write stream record", err)
		}
		if next.Order == 0 {
			next.Order = newRev
		}
		if resumed {
			last = max(last, h.takeOver(ctx, c, sid, rec.Gateway, next.Epoch))
		}
		c.mu.Lock()
		if c.recRev[sid] > newRev {
			// Another gateway wrote the record after this join did: it
			// took the stream over meanwhile. Join again, as a takeover.
			c.mu.Unlock()
			continue
		}
		c.noteRev(sid, newRev)
		s := c.streams[sid]
		if s == nil {
			s = probe
			c.streams[sid] = s
		}
		s.wmu.Lock()
		if !s.local {
			h.metrics.streams(1)
		}
		s.local, s.writer, s.myEpoch, s.nextSeq = true, conn, next.Epoch, last+1
		s.log.dropFrom(last + 1)
		if s.log.len() == 0 {
			// Nothing to send again; after a reconnect, nothing new either
			// until the data plane is checked (stream.send).
			s.pubGen = 0
			if gen := h.plane.ConnGen(); h.plane.Checked(gen) {
				s.pubGen = gen
			}
			s.unstall()
		}
		s.wire = frame.Stream{ID: sid, Name: req.StreamName, Owner: req.AccountID, PeerIdentity: req.PeerIdentity, Metadata: next.Metadata}
		s.wmu.Unlock()
		s.recMu.Lock()
		s.rec, s.recRev, s.checkpointed = next, newRev, last
		s.recMu.Unlock()
		s.gateway, s.epoch, s.linkID = h.cfg.Gateway, next.Epoch, req.LinkID
		conn.own = s
		if !s.announced {
			s.order = next.Order
			s.info = frame.Stream{ID: sid, Name: req.StreamName, Owner: req.AccountID,
				Metadata: next.Metadata, PeerIdentity: req.PeerIdentity, LastSeq: max(s.info.LastSeq, last)}
			c.announce(s)
		} else {
			s.info.PeerIdentity = req.PeerIdentity
		}
		own := frame.Stream{ID: sid, Name: req.StreamName, Owner: req.AccountID, Metadata: next.Metadata,
			PeerIdentity: req.PeerIdentity, LastSeq: last}
		c.attach(conn, &own, last, resumed, req.Cursor)
		c.mu.Unlock()
		if resumed && req.MetadataSet && req.Metadata != rec.Metadata {
			if _, _, err := s.setMetadata(ctx, conn, req.Metadata); err != nil {
				h.log.Warn("resume metadata not recorded", "stream_id", sid, "err", err)
			}
		}
		return nil
	}
}

// resumeHeld resumes a stream this gateway holds under the epoch of its
// record rec, read from the conversation's watch, when the join would
// write the record as it is but for the epoch and last seq (same peer
// identity, link and metadata): the connection becomes its writer
// (displacing one still attached) with no write of the record, which
// already names this gateway and epoch. When a reconnect storm
// brings thousands of a gateway's clients back at once, their joins then
// cost NATS nothing. It reports false, having changed nothing, when the
// stream is not held so here (a takeover came first, or the watch is
// behind); the caller then joins the long way, whose compare-and-set on
// the record settles any race. A takeover after it reaches this gateway
// as a handoff of a higher epoch, as it would after a write.
func (h *Hub) resumeHeld(c *conv, conn *Conn, sid string, rec *presence.Record, req JoinRequest) bool {
	c.mu.Lock()
	s := c.streams[sid]
	if s == nil || !s.announced {
		c.mu.Unlock()
		return false
	}
	s.wmu.Lock()
	same := s.wire.Owner == req.AccountID && s.wire.Name == req.StreamName && s.wire.PeerIdentity == req.PeerIdentity &&
		s.linkID == req.LinkID && s.wire.Metadata == rec.Metadata && (!req.MetadataSet || req.Metadata == rec.Metadata)
	if !same || !s.local || s.myEpoch != rec.Epoch || s.epoch != rec.Epoch {
		s.wmu.Unlock()
		c.mu.Unlock()
		return false
	}
	old := s.writer
	s.writer = conn
	released := s.stopGrace()
	last := s.nextSeq - 1
	s.wmu.Unlock()
	conn.own = s
	own := frame.Stream{ID: sid, Name: req.StreamName, Owner: req.AccountID, Metadata: rec.Metadata,
		PeerIdentity: req.PeerIdentity, LastSeq: last}
	c.attach(conn, &own, last, true, req.Cursor)
	c.mu.Unlock()
	if old != nil {
		old.displaced.Store(true)
		old.closeWith(wireerr.StreamDisplaced)
	}
	if released {
		h.release(c)
	}
	return true
}

// heldLast returns the last seq this gateway assigned to a stream it
// holds, and false if it does not hold it.
func (c *conv) heldLast(sid string) (uint64, bool) {
	c.mu.Lock()
	s := c.streams[sid]
	c.mu.Unlock()
	if s == nil {
		return 0, false
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if !s.local {
		return 0, false
	}
	return s.nextSeq - 1, true
}

// admit applies checks 8–10 of spec 4.2 against the streams live here.
func (c *conv) admit(sid string, req JoinRequest) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.streams[sid]; s != nil && s.announced {
		return nil // same account and name: a resume, not counted
	}
	var mine, all int
	for _, s := range c.streams {
		if !s.announced {
			continue
		}
		all++
		if s.info.Owner == req.AccountID {
			mine++
		}
		if s.info.Name == req.StreamName && s.info.Owner != req.AccountID {
			return wireerr.New(wireerr.StreamNameOwnerConflict, "another account streams under this name")
		}
	}
	if !isAnonymous(req.AccountID) && mine >= c.hub.cfg.MaxStreamsPerAccount {
		return wireerr.New(wireerr.StreamLimitExceeded, "this account has its maximum of live streams here")
	}
	if all >= c.hub.cfg.MaxStreamsPerConversation {
		return wireerr.New(wireerr.ConversationFull, "this conversation has its maximum of live streams")
	}
	return nil
}

// withinGrace reports whether a record held by gw is still live: its
// gateway is alive, or gone for less than the grace.
func (h *Hub) withinGrace(gw string) bool {
	since, gone := h.live.GoneSince(gw)
	return !gone || time.Since(since) < h.cfg.Grace
}

// takeOver makes the previous holder (this or another gateway) give the
// stream up and returns the last seq it published.
func (h *Hub) takeOver(ctx context.Context, c *conv, sid, gw string, epoch uint64) uint64 {
	if gw == h.cfg.Gateway {
		c.mu.Lock()
		s := c.streams[sid]
		c.mu.Unlock()
		if s == nil {
			return 0
		}
		old, last, _ := s.giveUp(epoch)
		if old != nil {
			old.displaced.Store(true)
			old.closeWith(wireerr.StreamDisplaced)
		}
		return last
	}
	if reply, ok := h.requestHandoff(ctx, gw, c.id, sid, epoch); ok && reply.Held {
		return reply.LastSeq
	}
	// No answer: what it published is in JetStream.
	last, _ := h.lastSeq(ctx, c.id, sid, 0)
	return last
}

// markLeft writes a gone gateway's stream as left, if its record still
// names that holder, and returns the final seq.
func (h *Hub) markLeft(ctx context.Context, s *stream, gw string, epoch, known uint64) uint64 {
	final := known
	if h.live.Alive(gw) {
		return final // heard from again: not gone after all
	}
	for attempt := 0; attempt < 3; attempt++ {
		rec, rev, ok, err := presence.Get(ctx, h.plane.Presence, s.key)
		if err != nil || !ok || rec.State != presence.Live || rec.Gateway != gw || rec.Epoch != epoch {
			return final
		}
		if js, err := h.lastSeq(ctx, s.conv.id, s.info.ID, rec.LastSeq); err == nil {
			final = max(final, js)
		}
		rec.State, rec.LastSeq = presence.Left, final
		if _, err := presence.Put(ctx, h.plane.Presence, s.key, &rec, rev); err != presence.ErrConflict {
			return final
		}
	}
	return final
}

// detach forgets a closed connection. A writer's stream leaves, unless the
// connection was displaced.
func (h *Hub) detach(conn *Conn, code wireerr.Code) {
	c := conn.conv
	s, ok := h.unlink(conn)
	if !ok {
		return
	}
	if s != nil && !conn.displaced.Load() && code.Name != wireerr.StreamDisplaced.Name {
		s.wmu.Lock()
		mine := s.writer == conn
		if mine {
			s.writer = nil
		}
		s.wmu.Unlock()
		if mine {
			h.leave(c, s)
		}
	}
	h.release(c)
}

// detachLost forgets a connection lost without a close handshake: its
// stream stays present for the grace period, so the same account and name
// can resume it on any replica.
func (h *Hub) detachLost(conn *Conn) {
	c := conn.conv
	s, ok := h.unlink(conn)
	if !ok {
		return
	}
	if s != nil && !conn.displaced.Load() {
		s.wmu.Lock()
		if s.writer == conn {
			// The connection's reference to the conversation passes to
			// the grace (released when it ends or the stream is taken
			// over), so no other lock is taken under wmu.
			s.writer = nil
			epoch := s.myEpoch
			s.graceTimer = time.AfterFunc(h.cfg.Grace, func() {
				s.wmu.Lock()
				expired := s.local && s.writer == nil && s.myEpoch == epoch && s.graceTimer != nil
				s.graceTimer = nil
				s.wmu.Unlock()
				if expired {
					h.leave(c, s)
				}
				h.release(c)
			})
			s.wmu.Unlock()
			return
		}
		s.wmu.Unlock()
	}
	h.release(c)
}

// unlink removes conn from its conversation; it returns its stream.
func (h *Hub) unlink(conn *Conn) (*stream, bool) {
	c := conn.conv
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.conns[conn]; !ok {
		return nil, false
	}
	delete(c.conns, conn)
	for s := range conn.reads {
		c.unregister(conn, s)
	}
	if conn.observer {
		c.observers--
		n := c.observers
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			h.publishObservers(ctx, c.id, n)
		}()
	}
	h.metrics.conn(conn.transport, -1)
	h.releaseQuota(conn.accountID)
	return conn.own, true
}

// releaseQuota gives back a connection Join counted.
func (h *Hub) releaseQuota(accountID string) {
	if q := h.cfg.Quota; q != nil {
		q.ReleaseConn(accountID)
	}
}

// leave ends a stream this gateway holds: its record says left with the
// final seq, and readers here get stream_left after its last event.
func (h *Hub) leave(c *conv, s *stream) {
	s.wmu.Lock()
	if !s.local || s.writer != nil {
		s.wmu.Unlock()
		return
	}
	s.local = false
	final := s.nextSeq - 1
	s.wmu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.updateRecord(ctx, func(r *presence.Record) { r.State, r.LastSeq = presence.Left, final }); err != nil {
		h.log.Warn("stream leave not recorded", "stream_id", s.info.ID, "err", err)
	}
	c.mu.Lock()
	c.beginLeave(s, final)
	c.mu.Unlock()
	h.metrics.streams(-1)
}

// Emit publishes a token on the connection's stream and returns its seq.
func (conn *Conn) Emit(data string) (uint64, time.Time, error) {
	if conn.own == nil {
		return 0, time.Time{}, wireerr.New(wireerr.ReadOnly, "observers cannot emit")
	}
	conn.conv.hub.metrics.frameIn("token")
	return conn.own.emit(conn, data)
}

// EmitTokens publishes tokens in order on the connection's stream: the
// tokens of one client message, which travel to NATS as one message when
// the publish mode allows (see stream.publishTokens).
func (conn *Conn) EmitTokens(tokens []string) error {
	if conn.own == nil {
		return wireerr.New(wireerr.ReadOnly, "observers cannot emit")
	}
	conn.conv.hub.metrics.framesIn("token", len(tokens))
	_, _, _, err := conn.own.emitTokens(context.Background(), conn, tokens, "")
	if errors.Is(err, errNotHeld) {
		err = errDisplaced
	}
	return err
}

// EmitTagged publishes a token with an idempotency tag: a retry with the
// same tag (after a reconnect, on any gateway) is stored and delivered
// once. It returns the token's seq (the original one for a retry).
func (conn *Conn) EmitTagged(ctx context.Context, data, tag string) (uint64, time.Time, error) {
	if conn.own == nil {
		return 0, time.Time{}, wireerr.New(wireerr.ReadOnly, "observers cannot emit")
	}
	conn.conv.hub.metrics.frameIn("token")
	first, _, ts, err := conn.own.emitTokens(ctx, conn, []string{data}, tag)
	if errors.Is(err, errNotHeld) {
		err = errDisplaced
	}
	return first, ts, err
}

// SetMetadata replaces the stream's metadata (spec 4.4).
func (conn *Conn) SetMetadata(ctx context.Context, metadata string) (uint64, time.Time, error) {
	if conn.own == nil {
		return 0, time.Time{}, wireerr.New(wireerr.ReadOnly, "observers cannot set metadata")
	}
	conn.conv.hub.metrics.frameIn("set_metadata")
	return conn.own.setMetadata(ctx, conn, metadata)
}

// Subscribe replaces the read filter (spec 5.2) and queues `subscribed`.
func (conn *Conn) Subscribe(all bool, items []string) {
	conn.conv.hub.metrics.frameIn("subscribe")
	c := conn.conv
	c.mu.Lock()
	defer c.mu.Unlock()
	if all {
		conn.filter = nil
	} else {
		conn.filter = newFilter(items)
	}
	for _, s := range c.streams {
		if !s.announced {
			continue
		}
		if conn.wantsRead(s) {
			c.register(conn, s)
		} else {
			c.unregister(conn, s)
		}
	}
	var sub []string
	if conn.filter != nil {
		sub = conn.filter.items
	}
	conn.enqueue(Item{Frame: frame.AppendSubscribed(nil, sub, c.subscribed(conn))})
}

// internal logs the cause of an internal error (a store or NATS failure;
// never a payload or a secret) and returns the close code for the client.
func (h *Hub) internal(conversationID, what string, err error) error {
	args := []any{"conversation_id", conversationID}
	if err != nil {
		args = append(args, "err", err)
	}
	h.log.Error("join failed: "+what, args...)
	return wireerr.New(wireerr.Internal, what)
}

// record returns a stream's record and its revision: the one the
// conversation's watch delivered when watched allows it, else the one NATS
// holds. The watch may lag behind NATS; a join writes from the record it
// read with compare-and-set, so a lagging one costs a conflict and a
// retry, which reads NATS.
func (c *conv) record(ctx context.Context, key string, watched bool) (rec presence.Record, rev uint64, exists bool, err error) {
	if watched {
		c.mu.Lock()
		w := c.records[key]
		c.mu.Unlock()
		if w != nil {
			return w.record(), w.rev, true, nil
		}
	}
	return presence.Get(ctx, c.hub.plane.Presence, key)
}
