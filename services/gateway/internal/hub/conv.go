package hub

import (
	"context"
	"errors"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/amsrouter/ams/services/gateway/internal/admission"
	"github.com/amsrouter/ams/services/gateway/internal/dataplane"
	"github.com/amsrouter/ams/services/gateway/internal/frame"
	"github.com/amsrouter/ams/services/gateway/internal/presence"
	"github.com/amsrouter/ams/services/gateway/internal/subject"
)

// Bounds of what a conversation holds while waiting.
const (
	maxHeld    = 4096 // out-of-order events per stream
	maxPending = 1024 // events per stream not yet announced
	pendingTTL = 30 * time.Second
	// tailTick is the period of the tail check: a stream quiet for two
	// ticks has its newest stored seq compared with what was delivered
	// here, which recovers events lost at the tail (published while this
	// gateway subscribed, or during a NATS reconnect).
	tailTick = 250 * time.Millisecond
	// repairWait lets events that crossed on different routes arrive
	// before a gap is read back from JetStream.
	repairWait = 50 * time.Millisecond
	// maxRepairBackoff caps the doubling of repairWait after failed
	// repairs: at most 50 ms << 5 = 1.6 s between tries.
	maxRepairBackoff = 5
	// leaveWait bounds how long a stream_left waits for the final events.
	leaveWait = 3 * time.Second
)

// conv is a conversation this gateway serves.
type conv struct {
	hub  *Hub
	id   string
	info *admission.Conversation
	refs int // guarded by hub.mu

	ready    chan struct{}
	readyErr error
	cancel   context.CancelFunc
	sub      *nats.Subscription

	// ticks counts the hub's ticks while the conversation is served
	// (tick): the clock of its streams' tail checks. idle: at the last
	// tick no stream had a tail to let go of or a check due, and no event
	// came since; the ticks pass it by until one comes.
	ticks atomic.Uint64
	idle  atomic.Bool

	mu sync.Mutex
	// recRev is, per stream id, the newest presence record revision this
	// gateway has applied or written. It outlives the stream's entry, so
	// the watch's late echo of an older record (a join this gateway wrote
	// just before a leave) cannot announce the stream again.
	recRev map[string]uint64
	// revCh is closed and replaced whenever recRev moves (waitRev).
	revCh chan struct{}
	// records is, per presence key, the newest record the watch
	// delivered and its revision: a join writes its record from it with
	// compare-and-set instead of reading it from NATS first (joinWriter).
	records   map[string]*watchedRecord
	streams   map[string]*stream
	conns     map[*Conn]struct{}
	observers int
	pending   map[string][]pendingEvent
	stopped   bool
	// While the records load (start), the gateway's presence watch
	// (Hub.onPresence) keeps the conversation's changes in early; loading
	// is set before the watch can find the conversation (Hub.acquire).
	loading bool
	early   []*presence.Entry
	// reload: the NATS server lost its store while the records loaded
	// (presenceLost); the snapshot may be of the lost store.
	reload bool
}

// watchedRecord is what a join reads of a stream's record (joinWriter),
// as the watch delivered it, and its revision. A record that is not live
// keeps no metadata: a join does not resume it.
type watchedRecord struct {
	rev, epoch, lastSeq, order uint64
	state, gateway, metadata   string
}

// record is the part of the record that a join reads.
func (w *watchedRecord) record() presence.Record {
	return presence.Record{State: w.state, Gateway: w.gateway, Metadata: w.metadata, Epoch: w.epoch, LastSeq: w.lastSeq, Order: w.order}
}

// watched records what the watch delivered for key, after onRecord
// applied it; c.mu is held. Strings equal to the stream's own are shared
// with it.
func (c *conv) watched(key string, rec presence.Record, rev uint64) {
	if old := c.records[key]; old != nil && old.rev >= rev {
		return
	}
	w := &watchedRecord{rev: rev, epoch: rec.Epoch, lastSeq: rec.LastSeq, order: rec.Order,
		state: presence.Live, gateway: rec.Gateway}
	if rec.State != presence.Live {
		w.state = rec.State
	} else {
		w.metadata = rec.Metadata
	}
	if s := c.streams[rec.StreamID]; s != nil {
		if s.gateway == w.gateway {
			w.gateway = s.gateway
		}
		if s.info.Metadata == w.metadata {
			w.metadata = s.info.Metadata
		}
	}
	c.records[key] = w
}

type pendingEvent struct {
	heldEvent
	at time.Time
}

func newConv(h *Hub, info *admission.Conversation) *conv {
	c := &conv{
		hub: h, id: info.ID, info: info, ready: make(chan struct{}), cancel: func() {},
		streams: map[string]*stream{}, conns: map[*Conn]struct{}{}, pending: map[string][]pendingEvent{},
		recRev: map[string]uint64{}, revCh: make(chan struct{}), records: map[string]*watchedRecord{},
	}
	// From 1, so that every stream's lastTick is above the checkedTick
	// (0) of a stream never checked.
	c.ticks.Store(1)
	return c
}

func (c *conv) newStream(streamID string) *stream {
	subj, _ := subject.Event(c.id, streamID)
	key, _ := subject.PresenceKey(c.id, streamID)
	return &stream{conv: c, subj: subj, key: key, info: frame.Stream{ID: streamID}, left: make(chan struct{})}
}

// start subscribes to the conversation's events, loads its records and
// watches them. It closes c.ready when the conversation can be joined.
func (c *conv) start(ctx context.Context) {
	h := c.hub
	fail := func(err error) {
		c.readyErr = err
		close(c.ready)
	}
	select {
	case <-h.live.Loaded():
	case <-ctx.Done():
		fail(ctx.Err())
		return
	case <-time.After(5 * time.Second):
		fail(errors.New("gateway liveness not loaded"))
		return
	}
	subj, err := subject.Conversation(c.id)
	if err != nil {
		fail(err)
		return
	}
	c.sub, err = h.plane.Conn().Subscribe(subj, c.onEvent)
	if err != nil {
		fail(err)
		return
	}
	_ = c.sub.SetPendingLimits(-1, 256<<20)
	// The newest record of each key. The gateway's watch started before
	// this conversation was served, so every change after the snapshot
	// comes to early, and an older one that comes too is passed over by
	// its revision (noteRev, watched, applyEntry). A snapshot taken while
	// the NATS server lost its store may be of the lost one, whose
	// revisions say nothing of the new one's: it is taken again.
	var recs, ended []initialRecord
	for {
		recs, ended, err = c.loadRecords(ctx)
		if err != nil {
			fail(err)
			return
		}
		c.mu.Lock()
		if !c.reload {
			break // c.mu stays held: the records are applied under it
		}
		c.reload = false
		c.mu.Unlock()
	}
	for _, r := range ended {
		c.noteRev(r.rec.StreamID, r.rev)
	}
	for _, r := range recs {
		live := r.rec
		live.LastSeq = r.last
		c.onRecord(live, r.rev)
	}
	for _, r := range slices.Concat(ended, recs) {
		c.watched(r.key, r.rec, r.rev)
	}
	// Then the changes that came while loading, in order; later ones
	// are applied as they come.
	for _, e := range c.early {
		c.applyEntry(e)
	}
	c.loading, c.early = false, nil
	c.mu.Unlock()
	close(c.ready)
}

// initialRecord is a record of a conversation's snapshot (loadRecords).
type initialRecord struct {
	key  string
	rec  presence.Record
	rev  uint64
	last uint64 // a live stream's newest retained seq
}

// loadRecords reads the newest record of each of the conversation's keys:
// the live streams' (with their newest retained seq) and the others'.
func (c *conv) loadRecords(ctx context.Context) (recs, ended []initialRecord, err error) {
	h := c.hub
	filter, _ := subject.PresenceFilter(c.id)
	sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
	first, err := presence.Snapshot(sctx, h.watchJS, dataplane.PresenceBucket, filter)
	scancel()
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			err = errors.New("presence records not loaded within 10s")
		}
		return nil, nil, err
	}
	if h.afterSnapshot != nil {
		h.afterSnapshot(c.id)
	}
	for _, e := range first {
		if e.Operation() != jetstream.KeyValuePut {
			continue
		}
		rec, err := presence.Decode(e.Value())
		if err != nil {
			continue
		}
		if rec.State != presence.Live {
			// Not applied, but its revision is known: a join that read
			// this record (a rejoin of a stream that left) need not wait
			// for it (waitRev).
			ended = append(ended, initialRecord{key: e.Key(), rec: rec, rev: e.Revision()})
			continue
		}
		recs = append(recs, initialRecord{key: e.Key(), rec: rec, rev: e.Revision()})
	}
	// The newest retained event of each live stream: events published
	// before the subscription existed are history, not live.
	lctx, lcancel := context.WithTimeout(ctx, 10*time.Second)
	defer lcancel()
	for i := range recs {
		last, err := h.lastSeq(lctx, c.id, recs[i].rec.StreamID, recs[i].rec.LastSeq)
		if err != nil {
			return nil, nil, err
		}
		recs[i].last = last
	}
	return recs, ended, nil
}

// watchEntry takes one change of the conversation's records, on the
// gateway's presence watch's goroutine: kept while the records load,
// applied after.
func (c *conv) watchEntry(e *presence.Entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.stopped:
	case c.loading:
		c.early = append(c.early, e)
	default:
		c.applyEntry(e)
	}
}

// applyEntry applies a change of a record; c.mu is held.
func (c *conv) applyEntry(e *presence.Entry) {
	c.hub.metrics.presenceLag(e.Created())
	if e.Operation() == jetstream.KeyValuePut {
		if rec, err := presence.Decode(e.Value()); err == nil {
			c.onRecord(rec, e.Revision())
			c.watched(e.Key(), rec, e.Revision())
		} else {
			// A join reads it from NATS, and fails as it would have.
			delete(c.records, e.Key())
		}
		return
	}
	// A delete or purge: one older than a record already applied is
	// passed over, as an older put is.
	if r := c.records[e.Key()]; r != nil && r.rev >= e.Revision() {
		return
	}
	delete(c.records, e.Key())
	if s := c.streamOfKey(e.Key()); s != nil && s.announced {
		c.beginLeave(s, s.info.LastSeq)
	}
}

func (c *conv) streamOfKey(key string) *stream {
	for _, s := range c.streams {
		if s.key == key {
			return s
		}
	}
	return nil
}

// stop ends serving the conversation; it does not wait for start.
func (c *conv) stop() {
	c.cancel()
	<-c.ready
	if c.sub != nil {
		_ = c.sub.Unsubscribe()
	}
	c.mu.Lock()
	c.stopped = true
	for _, s := range c.streams {
		s.tail.close(&c.hub.tails)
		if s.leaveTimer != nil {
			s.leaveTimer.Stop()
		}
		if s.orphan != nil {
			s.orphan.Stop()
		}
	}
	c.mu.Unlock()
}

// onEvent receives one event message of the conversation (NATS
// callback): one event, or a batch of a stream's consecutive tokens,
// delivered under one hold of the conversation's lock.
func (c *conv) onEvent(m *nats.Msg) {
	sid, ok := subject.StreamOf(m.Subject)
	if !ok {
		return
	}
	first, _, ok := frame.SeqRange(m.Data)
	if !ok {
		return
	}
	ingest := dataplane.IngestOf(m.Header)
	if c.hub.tracer != nil {
		if span := c.traceDeliver(m.Header, sid, first); span != nil {
			defer span.End()
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.streams[sid]
	if !frame.IsBatch(m.Data) {
		c.event(s, sid, m.Data, first, ingest)
		return
	}
	frame.EachEvent(m.Data, func(f []byte) bool {
		if seq, ok := frame.SeqOf(f); ok {
			// The latency histogram samples messages, as it did when each
			// token was one: a batch's ingest time goes with its first event.
			c.event(s, sid, f, seq, ingest)
			ingest = 0
		}
		return true
	})
}

// event takes one received event of stream s (nil if unknown here) of id
// sid; c.mu is held.
func (c *conv) event(s *stream, sid string, f []byte, seq uint64, ingest int64) {
	if s == nil || !s.announced {
		p := c.pending[sid]
		if len(p) < maxPending {
			c.pending[sid] = append(p, pendingEvent{heldEvent{f, seq, ingest}, time.Now()})
		}
		return
	}
	c.deliver(s, f, seq, ingest)
}

// traceDeliver starts the span of an event's fan-out on this gateway, a
// child of the emit span whose context the event's headers carry; nil when
// they carry none.
func (c *conv) traceDeliver(h nats.Header, streamID string, seq uint64) trace.Span {
	ctx, ok := c.hub.cfg.Tracing.Extract(context.Background(), h)
	if !ok {
		return nil
	}
	_, span := c.hub.tracer.Start(ctx, "deliver", trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(attribute.String("ams.gateway", c.hub.cfg.Gateway),
			attribute.String("ams.stream_id", streamID), attribute.Int64("ams.seq", int64(seq))))
	return span
}

// deliver applies an event in seq order; c.mu is held. ingest is the
// event's ingest time (Unix ns, 0 if unknown).
func (c *conv) deliver(s *stream, f []byte, seq uint64, ingest int64) {
	if seq <= s.info.LastSeq {
		return // already delivered
	}
	if seq != s.info.LastSeq+1 {
		c.hold(s, f, seq, ingest)
		return
	}
	c.apply(s, f, seq, ingest)
	for len(s.held) > 0 && s.held[0].seq <= s.info.LastSeq+1 {
		e := s.held[0]
		s.held = s.held[1:]
		if e.seq == s.info.LastSeq+1 {
			c.apply(s, e.frame, e.seq, e.ingest)
		}
	}
	if len(s.held) == 0 {
		s.held = nil
	}
	if s.leaveAt != 0 && s.info.LastSeq >= s.leaveAt {
		c.finishLeave(s)
	}
}

func (c *conv) hold(s *stream, f []byte, seq uint64, ingest int64) {
	i := sort.Search(len(s.held), func(i int) bool { return s.held[i].seq >= seq })
	if i < len(s.held) && s.held[i].seq == seq {
		return
	}
	if len(s.held) >= maxHeld {
		return
	}
	s.held = append(s.held, heldEvent{})
	copy(s.held[i+1:], s.held[i:])
	s.held[i] = heldEvent{f, seq, ingest}
	c.startRepair(s)
}

// apply delivers an in-order event to the stream's readers; c.mu is held.
func (c *conv) apply(s *stream, f []byte, seq uint64, ingest int64) {
	s.info.LastSeq = seq
	if c.hub.tails.events > 0 {
		s.tail.add(f, seq, time.Now().UnixNano(), &c.hub.tails)
	}
	s.echoed.Store(seq)
	c.stir(s)
	if frame.KindOf(f) == frame.KindMetadata {
		if md, ok := frame.Member(f, "metadata"); ok {
			s.info.Metadata = string(md)
		}
	}
	for _, r := range s.readers {
		if r.own == s && seq <= r.ownFrom {
			continue
		}
		if r.replaying != nil {
			if rb := r.replaying[s]; rb != nil {
				rb.buffer(Item{Frame: f, Stream: s, Seq: seq, Ingest: ingest})
				continue
			}
		}
		r.enqueue(Item{Frame: f, Stream: s, Seq: seq, Ingest: ingest})
	}
}

// startRepair reads a gap back from JetStream once it has lasted
// repairWait; c.mu is held.
func (c *conv) startRepair(s *stream) {
	if s.repairing || c.stopped {
		return
	}
	s.repairing = true
	c.hub.wg.Add(1)
	go func() {
		defer c.hub.wg.Done()
		c.repair(s)
	}()
}

func (c *conv) repair(s *stream) {
	c.mu.Lock()
	wait := repairWait << min(s.repairFails, maxRepairBackoff)
	c.mu.Unlock()
	time.Sleep(wait) // a grace for reordered events (and a backoff), not synchronisation
	c.mu.Lock()
	from := s.info.LastSeq + 1
	var to uint64
	switch {
	case len(s.held) > 0:
		to = s.held[0].seq - 1
	case s.leaveAt != 0:
		to = s.leaveAt
	case s.tailTarget > s.info.LastSeq:
		to = s.tailTarget
	}
	if to < from || !s.announced {
		s.repairing = false
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()

	type ev struct {
		f   []byte
		seq uint64
	}
	var got []ev
	err := c.hub.readBack(context.Background(), func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := c.hub.plane.Replay(ctx, s.subj, from, nil, func(f []byte, seq uint64) error {
			if seq > to {
				return errStop
			}
			got = append(got, ev{f, seq})
			return nil
		})
		return err
	})
	failed := err != nil && !errors.Is(err, errStop)

	c.mu.Lock()
	defer c.mu.Unlock()
	s.repairing = false
	if !s.announced {
		return
	}
	for _, e := range got {
		c.deliver(s, e.f, e.seq, 0)
	}
	if failed {
		// JetStream did not answer (overload, a NATS reconnect): what it
		// holds is not lost. Try again, backing off; readers wait at the
		// gap meanwhile (a leaving stream waits at most leaveWait).
		s.repairFails++
		c.hub.log.Warn("stream gap repair failed; retrying", "conversation_id", c.id, "stream_id", s.info.ID,
			"attempt", s.repairFails, "err", err)
		if len(s.held) > 0 || s.leaveAt != 0 || s.tailTarget > s.info.LastSeq {
			c.startRepair(s)
		}
		return
	}
	s.repairFails = 0
	// What JetStream no longer has is lost to live readers (live delivery
	// is at most once; a cursor resume reports the gap). Skip over it.
	if len(s.held) > 0 && s.held[0].seq > s.info.LastSeq+1 {
		c.hub.log.Warn("stream gap skipped", "conversation_id", c.id, "stream_id", s.info.ID,
			"from", s.info.LastSeq+1, "to", s.held[0].seq-1)
		s.info.LastSeq = s.held[0].seq - 1
		e := s.held[0]
		s.held = s.held[1:]
		c.deliver(s, e.frame, e.seq, e.ingest)
	}
	if len(s.held) > 0 && s.held[0].seq > s.info.LastSeq+1 {
		c.startRepair(s)
	}
}

// noteRev records a presence revision written for a stream; c.mu is held.
// It reports whether rev is newer than any seen.
func (c *conv) noteRev(streamID string, rev uint64) bool {
	if rev <= c.recRev[streamID] {
		return false
	}
	c.recRev[streamID] = rev
	close(c.revCh)
	c.revCh = make(chan struct{})
	return true
}

// presenceLost forgets the presence revisions the conversation applied,
// after the NATS server lost its store: revisions start again from 1, and
// the records the watch delivers next are newer than any seen, whatever
// their numbers. A waitRev under way is woken; its revision is of the
// lost store. A conversation still loading reads its records again
// (start). It appends the streams this gateway holds to held.
func (c *conv) presenceLost(held []*stream) []*stream {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.recRev)
	clear(c.records)
	c.early = nil
	c.reload = c.loading
	close(c.revCh)
	c.revCh = make(chan struct{})
	for _, s := range c.streams {
		if s.isLocal() {
			held = append(held, s)
		}
	}
	return held
}

// waitRev waits until this gateway has applied the stream's record up to
// revision rev, so that what it writes next cannot hide an earlier
// incarnation of the stream from its local readers. It gives up after a
// bound (the watch may lag under load); callers proceed either way.
func (c *conv) waitRev(ctx context.Context, streamID string, rev uint64) {
	deadline := time.NewTimer(2 * time.Second)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		done := c.recRev[streamID] >= rev
		ch := c.revCh
		c.mu.Unlock()
		if done {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			c.hub.log.Warn("presence watch behind; joining anyway", "conversation_id", c.id, "stream_id", streamID)
			return
		case <-ctx.Done():
			return
		}
	}
}

// onRecord applies a presence record; c.mu is held.
func (c *conv) onRecord(rec presence.Record, rev uint64) {
	h := c.hub
	if !c.noteRev(rec.StreamID, rev) {
		return // older than what this gateway wrote or applied
	}
	s := c.streams[rec.StreamID]
	order := rec.Order
	if order == 0 {
		order = rev
	}
	switch rec.State {
	case presence.Live:
		if s != nil && s.leaveAt != 0 {
			c.finishLeave(s) // a rejoin overtook the leave's last events
			s = nil
		}
		if s == nil {
			s = c.newStream(rec.StreamID)
			c.streams[rec.StreamID] = s
		}
		s.gateway, s.epoch, s.linkID = rec.Gateway, rec.Epoch, rec.LinkID
		if s.orphan != nil && h.live.Alive(rec.Gateway) {
			s.orphan.Stop()
			s.orphan = nil
		}
		if !s.announced {
			s.order = order
			s.info.Name, s.info.Owner = rec.Name, rec.Owner
			s.info.Metadata, s.info.PeerIdentity = rec.Metadata, rec.PeerIdentity
			s.info.LastSeq = max(s.info.LastSeq, rec.LastSeq)
			c.announce(s)
		} else {
			s.order = order
			s.info.PeerIdentity = rec.PeerIdentity
			if rec.LastSeq >= s.info.LastSeq {
				s.info.Metadata = rec.Metadata
			}
		}
		if gone, isGone := h.live.GoneSince(rec.Gateway); isGone {
			c.scheduleOrphan(s, gone)
		}
		// Taken over elsewhere while we still hold it: let go.
		if rec.Gateway != h.cfg.Gateway {
			if old, _, held := s.giveUp(rec.Epoch); held && old != nil {
				old.displaced.Store(true)
				go old.closeWith(errDisplaced.Code)
			}
		}
	case presence.Left:
		if s == nil || !s.announced {
			return
		}
		if s.isLocal() && rec.Gateway != h.cfg.Gateway {
			// Another gateway declared this one gone: the client should
			// reconnect and resume.
			s.wmu.Lock()
			old := s.writer
			if s.local {
				c.hub.metrics.streams(-1)
			}
			s.writer, s.local = nil, false
			s.wmu.Unlock()
			if old != nil {
				go old.closeWith(goingAway)
			}
		}
		c.beginLeave(s, rec.LastSeq)
	}
}

// quietStream is a stream whose tail a tick found due for a check, and
// that tick.
type quietStream struct {
	s    *stream
	tick uint64
}

// tick is the conversation's share of a tick of the hub (tickLoop): tails
// of streams quiet long enough let go of their events, streams quiet for
// two ticks are appended to quiet for a check of their newest stored seq
// (when check is set: NATS is connected), and, when sweep is set, events
// held for streams never announced expire. A conversation still loading
// or stopped is left alone, and an idle one is passed by without its lock
// but for the sweep.
func (c *conv) tick(quiet []quietStream, check, sweep bool) []quietStream {
	now := c.ticks.Add(1)
	if c.idle.Load() && !sweep {
		return quiet
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.loading || c.stopped {
		return quiet
	}
	busy := false
	for _, s := range c.streams {
		if s.tail.ev != nil && now-s.lastTick >= c.hub.tailQuietTicks {
			s.tail.free(&c.hub.tails)
		}
		if check && s.announced && s.checkedTick < s.lastTick && now-s.lastTick >= 2 {
			s.checkedTick = now
			quiet = append(quiet, quietStream{s, now})
		}
		if s.tail.ev != nil || s.announced && s.checkedTick < s.lastTick {
			busy = true
		}
	}
	if sweep {
		c.sweepPending()
	}
	c.idle.Store(!busy)
	return quiet
}

// stir marks a stream's tick and ends the conversation's idleness: an
// event came, or the stream was announced; c.mu is held.
func (c *conv) stir(s *stream) {
	s.lastTick = c.ticks.Load()
	if c.idle.Load() {
		c.idle.Store(false)
	}
}

// checkTail compares the newest stored seq of a quiet stream with what
// was delivered here, and reads back what is missing.
func (c *conv) checkTail(ctx context.Context, q quietStream) {
	s := q.s
	qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	last, err := c.hub.plane.LastSeq(qctx, s.subj)
	cancel()
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		// Not checked after all: the next tick tries again.
		if s.checkedTick == q.tick {
			s.checkedTick = 0
			c.idle.Store(false)
		}
		return
	}
	if !c.stopped && s.announced && last > s.info.LastSeq {
		s.tailTarget = max(s.tailTarget, last)
		c.startRepair(s)
	}
}

// announce makes a stream live here: every other local connection gets
// stream_joined and, if its read set includes the stream, becomes a reader.
// Events that arrived first are delivered after. c.mu is held.
func (c *conv) announce(s *stream) {
	s.announced = true
	c.stir(s)
	f := frame.AppendStreamJoined(nil, &s.info)
	for conn := range c.conns {
		if conn.own != s {
			conn.enqueue(Item{Frame: f})
		}
		if conn.wantsRead(s) {
			c.register(conn, s)
			c.resumeLate(conn, s)
		}
	}
	if p := c.pending[s.info.ID]; len(p) > 0 {
		delete(c.pending, s.info.ID)
		sort.Slice(p, func(i, j int) bool { return p[i].seq < p[j].seq })
		for _, e := range p {
			c.deliver(s, e.frame, e.seq, e.ingest)
		}
	}
}

// beginLeave ends a stream once its final seq is delivered (or after
// leaveWait); c.mu is held.
func (c *conv) beginLeave(s *stream, final uint64) {
	if s.info.LastSeq >= final {
		c.finishLeave(s)
		return
	}
	if s.leaveAt != 0 {
		return
	}
	s.leaveAt = final
	c.startRepair(s)
	s.leaveTimer = time.AfterFunc(leaveWait, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if s.leaveAt != 0 {
			c.finishLeave(s)
		}
	})
}

// finishLeave announces stream_left to every other local connection and
// forgets the stream; c.mu is held.
func (c *conv) finishLeave(s *stream) {
	if !s.announced {
		return
	}
	s.announced = false
	close(s.left)
	s.leaveAt = 0
	if s.leaveTimer != nil {
		s.leaveTimer.Stop()
		s.leaveTimer = nil
	}
	if s.orphan != nil {
		s.orphan.Stop()
		s.orphan = nil
	}
	s.held = nil
	s.tail.close(&c.hub.tails)
	f := frame.AppendStreamLeft(nil, &s.info)
	for conn := range c.conns {
		if conn.own == s {
			continue
		}
		if rb := conn.replaying[s]; rb != nil {
			rb.buffer(Item{Frame: f}) // after the replayed events
			continue
		}
		conn.enqueue(Item{Frame: f})
	}
	for _, r := range s.readers {
		delete(r.reads, s)
	}
	s.readers = nil
	if c.streams[s.info.ID] == s {
		delete(c.streams, s.info.ID)
	}
	delete(c.pending, s.info.ID)
}

// scheduleOrphan leaves a stream whose gateway is gone once the grace since
// its last sign of life runs out, unless another gateway takes it over
// first. c.mu is held.
func (c *conv) scheduleOrphan(s *stream, since time.Time) {
	if s.orphan != nil || c.stopped {
		return
	}
	gw, epoch := s.gateway, s.epoch
	wait := time.Until(since.Add(c.hub.cfg.Grace))
	s.orphan = time.AfterFunc(max(wait, 0), func() {
		c.mu.Lock()
		still := s.announced && s.gateway == gw && s.epoch == epoch
		last := s.info.LastSeq
		c.mu.Unlock()
		if !still {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		final := c.hub.markLeft(ctx, s, gw, epoch, last)
		c.mu.Lock()
		defer c.mu.Unlock()
		if s.announced && s.gateway == gw && s.epoch == epoch {
			c.beginLeave(s, final)
		}
	})
}

// peers lists the announced streams in join order, except one; c.mu is
// held.
func (c *conv) peers(except *stream) []StreamInfo {
	list := make([]*stream, 0, len(c.streams))
	for _, s := range c.streams {
		if s.announced && s != except {
			list = append(list, s)
		}
	}
	sort.Slice(list, func(i, j int) bool { return list[i].order < list[j].order })
	out := make([]StreamInfo, len(list))
	for i, s := range list {
		out[i] = StreamInfo{ID: s.info.ID, Name: s.info.Name, Owner: s.info.Owner,
			Metadata: s.info.Metadata, PeerIdentity: s.info.PeerIdentity, LastSeq: s.info.LastSeq}
	}
	return out
}

func (c *conv) sweepPending() {
	now := time.Now()
	for id, p := range c.pending {
		if len(p) > 0 && now.Sub(p[len(p)-1].at) > pendingTTL {
			delete(c.pending, id)
		}
	}
}

// register makes conn a reader of s; c.mu is held.
func (c *conv) register(conn *Conn, s *stream) {
	if _, ok := conn.reads[s]; ok {
		return
	}
	conn.reads[s] = struct{}{}
	conn.setBase(s.info.ID, s.info.LastSeq)
	readers := make([]*Conn, len(s.readers), len(s.readers)+1)
	copy(readers, s.readers)
	s.readers = append(readers, conn)
}

// unregister removes conn from the readers of s; c.mu is held.
func (c *conv) unregister(conn *Conn, s *stream) {
	if _, ok := conn.reads[s]; !ok {
		return
	}
	delete(conn.reads, s)
	readers := make([]*Conn, 0, len(s.readers))
	for _, r := range s.readers {
		if r != conn {
			readers = append(readers, r)
		}
	}
	s.readers = readers
}

// wantsRead is the read-set rule of spec 4.5 and 5.2; c.mu is held.
func (conn *Conn) wantsRead(s *stream) bool {
	if s == conn.own && !conn.selfSub {
		return false
	}
	return conn.filter.match(s)
}
