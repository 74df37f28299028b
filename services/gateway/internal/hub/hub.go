// Package hub is the stream plane of one gateway: the conversations this
// replica serves, their streams, and the connections reading and writing
// them, kept consistent with every other replica through NATS.
//
// # Delivery
//
// A gateway holds one NATS subscription per conversation it serves
// (ams.tok.<C>.*) and fans each event out in-process to the local
// connections registered as readers of its stream. Registration is the
// exclusion: a connection is a reader of exactly the streams in its read
// set (spec 4.5), so no delivery is ever filtered. The event's payload is
// the frame readers receive, shared by all of them.
//
// Per stream, a gateway delivers seqs in order with no duplicate: an event
// at or below the stream's delivered seq is dropped, an event beyond the
// next one is held while the gap is read back from JetStream. A stream that
// goes quiet has its newest stored seq compared with what was delivered,
// so events lost at the tail (published while this gateway subscribed, or
// during a NATS reconnect) are read back too. Membership follows the
// presence records (package presence): a stream's events are
// held until its record announces it, and its stream_left waits for the
// final seq its record names.
//
// # Metrics and tracing
//
// The gateway that takes an event from its writer stamps its ingest time
// in the event's Ams-Ingest NATS header (package dataplane); every
// delivering gateway carries it in the queued Item, and Conn.Delivered,
// which each transport calls after a write, counts the frames out and
// observes the publish-to-deliver latency. With tracing on (Config.Tracing)
// each event is an "emit" span whose W3C trace context travels in the
// event's headers, and each gateway's fan-out of it a "deliver" span, its
// child; with tracing off none of that code runs.
//
// # Writers
//
// The gateway holding a stream assigns its seqs and publishes its events,
// and keeps each event until it comes back through its own subscription:
// after a NATS reconnect whatever did not come back is sent again, in
// order (unacked.go), so an event lost in flight leaves no hole in the seqs.
// Holding changes hands by compare-and-set on the record with a higher
// epoch; the new holder asks the old one (a NATS request to its handoff
// subject) to stop and report its last seq before continuing.
//
// # Locks and goroutines
//
// Lock order: Hub.mu, then conv.mu, then stream.wmu, then Conn.qmu. No
// lock is held across network I/O except stream.wmu around a publish,
// which only buffers. Each served conversation has a NATS subscription
// callback goroutine (events) and a watch goroutine (records), both
// stopped when its last local connection and held stream are gone.
// Transports own their connection goroutines; the hub never blocks them:
// enqueue is non-blocking and an overflowing connection is closed 4290.
package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/amsrouter/ams/services/gateway/internal/admission"
	"github.com/amsrouter/ams/services/gateway/internal/dataplane"
	"github.com/amsrouter/ams/services/gateway/internal/metrics"
	"github.com/amsrouter/ams/services/gateway/internal/presence"
	"github.com/amsrouter/ams/services/gateway/internal/subject"
	"github.com/amsrouter/ams/services/internal/ids"
	"github.com/amsrouter/ams/services/internal/telemetry"
	"github.com/amsrouter/ams/services/internal/wireerr"
)

// Config configures the hub.
type Config struct {
	// Gateway is this replica's name (presence, handoff subject).
	Gateway string
	// QueueFrames and QueueBytes bound each connection's outbound queue
	// (spec 4.5: 1024 frames or 8 MiB).
	QueueFrames int
	QueueBytes  int
	// Grace is how long a stream whose connection was lost stays present
	// (spec 4.5: 10 s).
	Grace time.Duration
	// Heartbeat and DeadAfter time gateway liveness.
	Heartbeat time.Duration
	DeadAfter time.Duration
	// Checkpoint is how often held streams' last seqs are written to their
	// records.
	Checkpoint time.Duration
	// Caps of spec 4.2 and 4.7.
	MaxStreamsPerAccount      int
	MaxStreamsPerConversation int
	MaxObservers              int
	// Tracing traces emits and deliveries across gateways (the trace
	// context travels in the events' NATS headers); nil: off.
	Tracing *telemetry.Provider
	// Quota bounds the live connections of an account on this gateway
	// (abuse control, package limits); nil: no quota.
	Quota Quota
	// MaxJoining bounds the joins whose NATS work (stream records, last
	// seqs, the conversation's first load) runs at once; more wait their
	// turn. Without a bound a reconnect storm floods NATS with requests
	// until they, and the gateway's heartbeats, time out.
	MaxJoining int
	// MaxReplaying bounds the replays and gap repairs reading JetStream at
	// once; more wait their turn. One gateway's requests share its NATS
	// connection, which the server reads in order: thousands of resumes
	// at once queued every other request of the gateway (heartbeats,
	// records) behind their lookups, until they timed out.
	MaxReplaying int
	// TailEvents is how many of each stream's newest events the gateway
	// keeps in memory (sharing the frames its readers got), so that a
	// resume that missed only those is served without reading JetStream;
	// negative: none.
	TailEvents int
	// TailBytes bounds the frames a stream's tail keeps, in bytes: with
	// tokens of up to 1 MiB, 256 of them would hold 256 MiB per stream on
	// every gateway that serves its conversation.
	TailBytes int
	// TailTotalBytes bounds the frames of every tail of the gateway
	// together; a stream that finds it full keeps no tail until room is
	// freed (its resumes read JetStream).
	TailTotalBytes int64
	// TailQuiet is how long a stream may be quiet before its tail is
	// freed: resumes are mostly seconds behind, and a quiet stream's tail
	// would hold room of TailTotalBytes from streams that are busy.
	TailQuiet time.Duration
}

// Quota counts live connections per account. Join acquires before checks
// 8–10 and the connection's end releases; an error refuses the connect.
type Quota interface {
	AcquireConn(accountID string) error
	ReleaseConn(accountID string)
}

func (c *Config) defaults() {
	set := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	setD := func(p *time.Duration, v time.Duration) {
		if *p == 0 {
			*p = v
		}
	}
	set(&c.QueueFrames, 1024)
	set(&c.QueueBytes, 8<<20)
	set(&c.MaxStreamsPerAccount, 10)
	set(&c.MaxStreamsPerConversation, 100)
	set(&c.MaxObservers, 1000)
	set(&c.MaxJoining, 4096)
	set(&c.MaxReplaying, 64)
	set(&c.TailEvents, 256)
	set(&c.TailBytes, 256<<10)
	if c.TailTotalBytes == 0 {
		c.TailTotalBytes = 64 << 20
	}
	setD(&c.TailQuiet, time.Minute)
	setD(&c.Grace, 10*time.Second)
	setD(&c.Heartbeat, 2*time.Second)
	setD(&c.DeadAfter, 10*time.Second)
	setD(&c.Checkpoint, 2*time.Second)
}

// Hub is the stream plane of one gateway.
type Hub struct {
	cfg     Config
	log     *slog.Logger
	plane   *dataplane.Plane
	deriver *ids.Deriver
	metrics hubMetrics
	live    *presence.Liveness
	// tracer is nil when tracing is off: the hot path tests it and does
	// no tracing work.
	tracer trace.Tracer

	mu    sync.Mutex
	convs map[string]*conv

	nextConn  atomic.Uint64
	joinLocks keyLocks      // by stream id
	joining   chan struct{} // MaxJoining slots
	replaying chan struct{} // MaxReplaying slots
	// observersRefreshed is when observer counts were last rewritten;
	// guarded by mu.
	observersRefreshed time.Time
	handoff            *nats.Subscription
	emits              *nats.Subscription
	// watchJS is the JetStream context of the presence watch and of the
	// conversations' snapshots of their records (presence.Snapshot).
	watchJS nats.JetStreamContext
	// presence watches every change of the presence records, for every
	// conversation this gateway serves (onPresence). presenceRev is the
	// revision of the newest change handed on: a watch restarted after a
	// NATS reconnect (RestartPresence) starts at it, and the old one may
	// still deliver for a while, so each change goes on once. Each watch
	// has a generation, and one older than presenceGen hands nothing on.
	// presenceCreated is when the bucket's stream was created, as the
	// watch found it: another time means the server lost its store. All
	// are guarded by presenceMu, held while a change is handed on.
	presenceMu      sync.Mutex
	presence        *presence.Watcher
	presenceRev     uint64
	presenceGen     uint64
	presenceCreated time.Time
	presenceClosed  bool // Run returned: no restart
	// afterSnapshot, when set (by tests only), is called after a
	// conversation read the snapshot of its records, before it reads the
	// rest (conv.loadRecords).
	afterSnapshot func(conversationID string)
	draining      atomic.Bool
	wg            sync.WaitGroup
	// stalled is the bytes of events held for resend while NATS is away,
	// over every stream (bounded by maxStalled).
	stalled atomic.Int64
	// tails bounds the streams' in-memory tails (Config.TailEvents).
	tails tailBudget
	// tailQuietTicks is Config.TailQuiet in ticks of tailTick.
	tailQuietTicks uint64
}

// New returns a hub over the data plane. Run must be called to serve.
func New(cfg Config, plane *dataplane.Plane, deriver *ids.Deriver, m *metrics.Metrics, log *slog.Logger) (*Hub, error) {
	cfg.defaults()
	if !subject.ValidGatewayName(cfg.Gateway) {
		return nil, fmt.Errorf("gateway name %q: letters, digits, - and _ only", cfg.Gateway)
	}
	h := &Hub{
		cfg: cfg, log: log, plane: plane, deriver: deriver, metrics: hubMetrics{m},
		convs: map[string]*conv{}, tracer: cfg.Tracing.Tracer("github.com/amsrouter/ams/services/gateway/internal/hub"),
		joining: make(chan struct{}, cfg.MaxJoining), replaying: make(chan struct{}, cfg.MaxReplaying),
	}
	h.tails.events, h.tails.bytes, h.tails.total = cfg.TailEvents, cfg.TailBytes, cfg.TailTotalBytes
	h.tailQuietTicks = uint64(max(cfg.TailQuiet/tailTick, 1))
	if m != nil {
		m.SetQueuedBytes(h.QueuedBytes)
		m.SetTailBytes(h.tails.used.Load)
	}
	h.live = presence.NewLiveness(plane.Gateways, cfg.Gateway, cfg.Heartbeat, cfg.DeadAfter, log)
	var err error
	if h.watchJS, err = plane.Conn().JetStream(); err != nil {
		return nil, err
	}
	h.live.OnGone(h.gatewayGone)
	origin, err := presence.OriginOf(h.watchJS, dataplane.PresenceBucket)
	if err != nil {
		return nil, fmt.Errorf("watch presence records: %w", err)
	}
	h.presenceCreated = origin.Created
	if h.presence, _, err = presence.WatchChanges(h.watchJS, dataplane.PresenceBucket, 0, h.handOn(0)); err != nil {
		return nil, fmt.Errorf("watch presence records: %w", err)
	}
	subj, err := subject.Handoff(cfg.Gateway)
	if err != nil {
		return nil, err
	}
	h.handoff, err = plane.Conn().Subscribe(subj, h.onHandoff)
	if err != nil {
		return nil, fmt.Errorf("subscribe handoff: %w", err)
	}
	subj, err = subject.Emit(cfg.Gateway)
	if err != nil {
		return nil, err
	}
	h.emits, err = plane.Conn().Subscribe(subj, h.onEmit)
	if err != nil {
		return nil, fmt.Errorf("subscribe emits: %w", err)
	}
	return h, nil
}

// Retention returns the effective retention bounds for `joined`.
func (h *Hub) Retention() (maxAgeMs, maxEvents int64) {
	c := h.plane.Config()
	return c.MaxAge.Milliseconds(), c.MaxEvents
}

// Run heartbeats, watches gateway liveness and checkpoints held streams
// until ctx is done.
func (h *Hub) Run(ctx context.Context) error {
	h.wg.Go(func() { h.checkpointLoop(ctx) })
	h.wg.Go(func() { h.tickLoop(ctx) })
	err := h.live.Run(ctx)
	h.stopAll()
	h.presenceMu.Lock()
	w := h.presence
	h.presenceClosed = true
	h.presenceMu.Unlock()
	w.Stop()
	h.wg.Wait()
	return err
}

// onPresence takes one change of a presence record, on the watch's
// goroutine, to the conversation it belongs to if this gateway serves it.
// A gateway sees the changes of every conversation, not only its own: one
// consumer for the whole bucket, where one for each conversation cost the
// server a scan of the records stored since it last delivered, each time
// a record of its conversation came (docs/benchmarks.md).
func (h *Hub) onPresence(gen uint64, e *presence.Entry) {
	h.presenceMu.Lock()
	defer h.presenceMu.Unlock()
	if gen < h.presenceGen || e.Revision() <= h.presenceRev {
		return // a watch replaced, or handed on already by the one before
	}
	h.presenceRev = e.Revision()
	id, _, ok := strings.Cut(e.Key(), ".")
	if !ok {
		return
	}
	h.mu.Lock()
	c := h.convs[id]
	h.mu.Unlock()
	if c != nil {
		c.watchEntry(e)
	}
}

// handOn is the function of the presence watch of generation gen.
func (h *Hub) handOn(gen uint64) func(*presence.Entry) {
	return func(e *presence.Entry) { h.onPresence(gen, e) }
}

// RestartPresence replaces the presence watch with one that starts at the
// newest change handed on, after a NATS reconnect. A server that restarted
// has lost the watch's consumer, and nats.go would recreate it only after
// two missed heartbeats (10 s, and up to 20 s) during which no conversation
// here hears of a stream that joins or leaves. The old watch is stopped
// once the new one runs; until then both may deliver, and onPresence
// hands each change on once.
//
// A server that lost its store (its bucket's stream created again) starts
// revisions again from 1: the old watch is silenced at once, the new one
// starts at the first entry, every conversation here forgets the
// revisions it applied, and this gateway writes the records of the
// streams it holds again (presenceLost).
func (h *Hub) RestartPresence(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	origin, err := presence.OriginOf(h.watchJS, dataplane.PresenceBucket)
	if err != nil {
		return fmt.Errorf("restart presence watch: %w", err)
	}
	h.presenceMu.Lock()
	gen := h.presenceGen + 1
	lost := !origin.Created.Equal(h.presenceCreated) || origin.Last < h.presenceRev
	var held []*stream
	if lost {
		h.presenceGen, h.presenceRev, h.presenceCreated = gen, 0, origin.Created
		held = h.presenceLost()
	}
	// From the change handed on last (it comes again, and is passed
	// over); with none handed on yet, from the first: the old watch may
	// have missed any of them.
	from := max(h.presenceRev, 1)
	h.presenceMu.Unlock()
	if lost {
		h.metrics.storeLost("presence")
		h.log.Warn("NATS lost the presence records; writing those of the streams held here again",
			"streams", len(held))
		for _, s := range held {
			s.recordLost()
		}
	}
	w, _, err := presence.WatchChanges(h.watchJS, dataplane.PresenceBucket, from, h.handOn(gen))
	if err != nil {
		return fmt.Errorf("restart presence watch: %w", err)
	}
	h.presenceMu.Lock()
	if h.presenceClosed || gen < h.presenceGen {
		h.presenceMu.Unlock()
		w.Stop()
		return errors.New("restart presence watch: the hub stopped, or another restart came first")
	}
	old := h.presence
	h.presence, h.presenceGen = w, gen
	h.presenceMu.Unlock()
	old.Stop()
	if lost {
		// The checkpoint loop writes them too, until it succeeds; this
		// is sooner.
		_ = h.checkpointAll(ctx)
	}
	return nil
}

// presenceLost has every served conversation forget the presence
// revisions it applied, after the server lost its store, and returns the
// streams this gateway holds. presenceMu is held.
func (h *Hub) presenceLost() []*stream {
	var held []*stream
	for _, c := range h.served() {
		held = c.presenceLost(held)
	}
	return held
}

// stopAll stops serving every conversation, grace periods included: the
// gateway is going away and the others take over its streams.
func (h *Hub) stopAll() {
	h.mu.Lock()
	convs := h.convs
	h.convs = map[string]*conv{}
	h.mu.Unlock()
	for _, c := range convs {
		c.mu.Lock()
		for _, s := range c.streams {
			s.wmu.Lock()
			if s.graceTimer != nil {
				s.graceTimer.Stop()
				s.graceTimer = nil
			}
			s.wmu.Unlock()
		}
		c.mu.Unlock()
		c.stop()
	}
}

// Drain closes every local connection with 1001 going_away, so clients
// reconnect to another replica, and signs this gateway off so the others
// start the grace of its streams at once. New joins are refused.
func (h *Hub) Drain(ctx context.Context) {
	h.draining.Store(true)
	var conns []*Conn
	for _, c := range h.served() {
		c.mu.Lock()
		for conn := range c.conns {
			conns = append(conns, conn)
		}
		c.mu.Unlock()
	}
	for _, conn := range conns {
		conn.closeWith(wireerr.GoingAway)
	}
	_ = h.checkpointAll(ctx)
	_ = h.plane.Flush(ctx)
	if err := h.live.SignOff(ctx); err != nil {
		h.log.Warn("gateway sign-off failed", "err", err)
	}
	if h.handoff != nil {
		_ = h.handoff.Unsubscribe()
	}
	if h.emits != nil {
		_ = h.emits.Unsubscribe()
	}
}

// Reconnected sends again, after NATS reconnected and the data plane was
// checked on the new connection, the events each stream published that did
// not come back through this gateway's subscription: they may have been
// lost with the old connection. A stream that publishes anything first
// does the same itself (stream.send); this covers the streams that went
// quiet.
func (h *Hub) Reconnected() {
	var streams []*stream
	for _, c := range h.served() {
		c.mu.Lock()
		for _, s := range c.streams {
			streams = append(streams, s)
		}
		c.mu.Unlock()
	}
	total := 0
	for _, s := range streams {
		n, err := s.resendLog()
		if err != nil {
			h.log.Warn("events not resent after a NATS reconnect", "subject", s.subj, "err", err)
			continue
		}
		total += n
	}
	if total > 0 {
		h.log.Info("events resent after a NATS reconnect", "events", total)
	}
}

// CloseLink closes every local connection admitted by a revoked link with
// 4001 link_revoked.
func (h *Hub) CloseLink(linkID string) {
	var conns []*Conn
	for _, c := range h.served() {
		c.mu.Lock()
		for conn := range c.conns {
			if conn.linkID == linkID {
				conns = append(conns, conn)
			}
		}
		c.mu.Unlock()
	}
	for _, conn := range conns {
		go conn.closeWith(wireerr.LinkRevoked)
	}
}

// LiveStreams lists a conversation's live streams in join order, for
// inspect. It reads the presence records, so it answers for conversations
// this gateway does not serve.
func (h *Hub) LiveStreams(ctx context.Context, conversationID string) ([]StreamInfo, error) {
	h.mu.Lock()
	c := h.convs[conversationID]
	h.mu.Unlock()
	if c != nil {
		select {
		case <-c.ready:
			if c.readyErr == nil {
				c.mu.Lock()
				defer c.mu.Unlock()
				return c.peers(nil), nil
			}
		default:
		}
	}
	filter, err := subject.PresenceFilter(conversationID)
	if err != nil {
		return nil, err
	}
	lister, err := h.plane.Presence.ListKeysFiltered(ctx, filter)
	if err != nil {
		return nil, err
	}
	type entry struct {
		rec   presence.Record
		order uint64
	}
	var out []entry
	for key := range lister.Keys() {
		rec, rev, ok, err := presence.Get(ctx, h.plane.Presence, key)
		if err != nil || !ok || rec.State != presence.Live {
			continue
		}
		if gone, isGone := h.live.GoneSince(rec.Gateway); isGone && time.Since(gone) > h.cfg.Grace {
			continue
		}
		if rec.LastSeq, err = h.lastSeq(ctx, conversationID, rec.StreamID, rec.LastSeq); err != nil {
			return nil, err
		}
		o := rec.Order
		if o == 0 {
			o = rev
		}
		out = append(out, entry{rec, o})
	}
	sortBy(out, func(e entry) uint64 { return e.order })
	infos := make([]StreamInfo, len(out))
	for i, e := range out {
		infos[i] = StreamInfo{ID: e.rec.StreamID, Name: e.rec.Name, Owner: e.rec.Owner,
			Metadata: e.rec.Metadata, PeerIdentity: e.rec.PeerIdentity, LastSeq: e.rec.LastSeq}
	}
	return infos, nil
}

// StreamInfo describes a live stream.
type StreamInfo struct {
	ID, Name, Owner, Metadata, PeerIdentity string
	LastSeq                                 uint64
}

// lastSeq is the larger of a known seq and the newest retained event's.
func (h *Hub) lastSeq(ctx context.Context, conversationID, streamID string, known uint64) (uint64, error) {
	subj, err := subject.Event(conversationID, streamID)
	if err != nil {
		return 0, err
	}
	js, err := h.plane.LastSeq(ctx, subj)
	if err != nil {
		return 0, fmt.Errorf("read last event: %w", err)
	}
	return max(js, known), nil
}

// acquire returns the served state of a conversation, loading it first.
// Every acquire is paired with a release.
func (h *Hub) acquire(ctx context.Context, info *admission.Conversation) (*conv, error) {
	h.mu.Lock()
	c := h.convs[info.ID]
	if c == nil {
		c = newConv(h, info)
		c.loading = true // before the presence watch can find it
		ctx, cancel := context.WithCancel(context.Background())
		c.cancel = cancel
		h.convs[info.ID] = c
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			c.start(ctx)
		}()
	}
	c.refs++
	h.mu.Unlock()
	select {
	case <-c.ready:
	case <-ctx.Done():
		h.release(c)
		return nil, ctx.Err()
	}
	if c.readyErr != nil {
		h.release(c)
		return nil, c.readyErr
	}
	return c, nil
}

// release drops a reference; the last one stops serving the conversation.
func (h *Hub) release(c *conv) {
	h.mu.Lock()
	c.refs--
	last := c.refs == 0
	if last && h.convs[c.id] == c {
		delete(h.convs, c.id)
	}
	h.mu.Unlock()
	if last {
		c.stop()
	}
}

// handoffRequest asks a holder to give a stream up.
type handoffRequest struct {
	Conversation string `json:"conv"`
	Stream       string `json:"stream"`
	Epoch        uint64 `json:"epoch"`
}

type handoffReply struct {
	LastSeq uint64 `json:"last_seq"`
	Held    bool   `json:"held"`
}

// onHandoff gives up a stream another gateway took over: the local
// connection is closed 4001 stream_displaced, its later input discarded,
// what it published flushed, and the last seq reported.
func (h *Hub) onHandoff(m *nats.Msg) {
	var req handoffRequest
	if err := json.Unmarshal(m.Data, &req); err != nil {
		return
	}
	h.mu.Lock()
	c := h.convs[req.Conversation]
	h.mu.Unlock()
	var reply handoffReply
	if c != nil {
		c.mu.Lock()
		s := c.streams[req.Stream]
		c.mu.Unlock()
		if s != nil {
			old, last, held := s.giveUp(req.Epoch)
			reply = handoffReply{LastSeq: last, Held: held}
			if old != nil {
				old.displaced.Store(true)
				go old.closeWith(wireerr.StreamDisplaced)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	_ = h.plane.Flush(ctx)
	cancel()
	b, _ := json.Marshal(reply)
	_ = m.Respond(b)
}

// requestHandoff asks gateway gw to give the stream up; ok is false when it
// did not answer (it may be dead).
func (h *Hub) requestHandoff(ctx context.Context, gw, conversationID, streamID string, epoch uint64) (handoffReply, bool) {
	subj, err := subject.Handoff(gw)
	if err != nil {
		return handoffReply{}, false
	}
	b, _ := json.Marshal(handoffRequest{Conversation: conversationID, Stream: streamID, Epoch: epoch})
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	m, err := h.plane.Conn().RequestWithContext(ctx, subj, b)
	if err != nil {
		return handoffReply{}, false
	}
	var r handoffReply
	if json.Unmarshal(m.Data, &r) != nil {
		return handoffReply{}, false
	}
	return r, true
}

// gatewayGone starts the grace of every stream the gone gateway held in
// the conversations served here.
func (h *Hub) gatewayGone(gw string, since time.Time) {
	h.log.Info("gateway gone", "gateway", gw)
	for _, c := range h.served() {
		c.mu.Lock()
		for _, s := range c.streams {
			if s.gateway == gw && s.announced {
				c.scheduleOrphan(s, since)
			}
		}
		c.mu.Unlock()
	}
}

// served lists the conversations served here. A walk over them takes each
// conversation's lock after hub.mu is let go: a walk that held hub.mu
// while it waited for a busy conversation (a reconnect storm keeps
// hundreds busy) would stop every join of every conversation meanwhile.
func (h *Hub) served() []*conv {
	return h.appendServed(nil)
}

// appendServed appends the conversations served to dst.
func (h *Hub) appendServed(dst []*conv) []*conv {
	h.mu.Lock()
	defer h.mu.Unlock()
	dst = slices.Grow(dst, len(h.convs))
	for _, c := range h.convs {
		dst = append(dst, c)
	}
	return dst
}

// tailCheckers bounds the tail checks of one tick that wait on JetStream
// at once.
const tailCheckers = 8

// tickLoop does the conversations' periodic work on one goroutine for the
// gateway, not one each: every tailTick it ticks each conversation (tail
// checks, and every pendingTTL/2 the sweep of held events), then checks
// the quiet streams' tails, up to tailCheckers at once, while NATS is
// connected.
func (h *Hub) tickLoop(ctx context.Context) {
	t := time.NewTicker(tailTick)
	defer t.Stop()
	sweepEvery := uint64(max(pendingTTL/2/tailTick, 1))
	var (
		n     uint64
		convs []*conv
		quiet []quietStream
	)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n++
		convs = h.appendServed(convs[:0])
		quiet = quiet[:0]
		// While NATS is away a check would wait out its timeout; the
		// streams are checked once it is back.
		check := h.plane.Conn().IsConnected()
		for _, c := range convs {
			quiet = c.tick(quiet, check, n%sweepEvery == 0)
		}
		clear(convs) // no conversation is kept alive until the next tick
		h.checkTails(ctx, quiet)
		clear(quiet)
	}
}

// checkTails checks the tails of quiet streams, up to tailCheckers at
// once, and returns when all are done.
func (h *Hub) checkTails(ctx context.Context, quiet []quietStream) {
	var (
		next atomic.Int64
		wg   sync.WaitGroup
	)
	for range min(len(quiet), tailCheckers) {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(len(quiet)); i = next.Add(1) - 1 {
				quiet[i].s.conv.checkTail(ctx, quiet[i])
			}
		})
	}
	wg.Wait()
}

// checkpointLoop writes held streams' last seqs to their records.
func (h *Hub) checkpointLoop(ctx context.Context) {
	t := time.NewTicker(h.cfg.Checkpoint)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			cctx, cancel := context.WithTimeout(ctx, h.cfg.Checkpoint)
			_ = h.checkpointAll(cctx)
			cancel()
		}
	}
}

func (h *Hub) checkpointAll(ctx context.Context) error {
	var held []*stream
	observed := map[string]int{}
	for _, c := range h.served() {
		c.mu.Lock()
		for _, s := range c.streams {
			if s.isLocal() {
				held = append(held, s)
			}
		}
		if c.observers > 0 {
			observed[c.id] = c.observers
		}
		c.mu.Unlock()
	}
	// Keep observer counts alive within the bucket's TTL.
	h.mu.Lock()
	refresh := time.Since(h.observersRefreshed) > 20*time.Second
	if refresh {
		h.observersRefreshed = time.Now()
	}
	h.mu.Unlock()
	if refresh {
		for id, n := range observed {
			h.publishObservers(ctx, id, n)
		}
	}
	var errs []error
	for _, s := range held {
		if err := s.checkpoint(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// QueuedBytes sums the outbound queues of every local connection: the
// bytes of frames queued for readers and not yet taken by their writers.
// It takes each lock briefly in turn (for a metrics scrape).
func (h *Hub) QueuedBytes() int64 {
	var n int64
	var conns []*Conn
	for _, c := range h.served() {
		c.mu.Lock()
		conns = conns[:0]
		for conn := range c.conns {
			conns = append(conns, conn)
		}
		c.mu.Unlock()
		for _, conn := range conns {
			conn.qmu.Lock()
			n += int64(conn.qBytes)
			conn.qmu.Unlock()
		}
	}
	return n
}

// hubMetrics wraps the gateway metrics; nil-safe for tests.
type hubMetrics struct{ m *metrics.Metrics }

// resent counts events published again after a reconnect.
func (m hubMetrics) resent(n int) {
	if m.m != nil {
		m.m.EventsResent.Add(float64(n))
	}
}

// storeLost counts a NATS reconnect that found a part of the data plane
// created again (events, presence).
func (m hubMetrics) storeLost(part string) {
	if m.m != nil {
		m.m.NATSStoreLost.WithLabelValues(part).Inc()
	}
}

// slowConsumer counts an outbound queue overflow by the bound it hit.
func (m hubMetrics) slowConsumer(bound string) {
	if m.m != nil {
		m.m.QueueOverflows.WithLabelValues(bound).Inc()
	}
}

// latency is the delivery latency histogram of a transport, nil without
// metrics.
func (m hubMetrics) latency(transport string) prometheus.Observer {
	if m.m == nil {
		return nil
	}
	return m.m.DeliveryLatency.WithLabelValues(transport)
}

// delivered counts frames written to a client at now (Unix ns) and
// observes the publish-to-deliver latency of its events.
func (m hubMetrics) delivered(latency prometheus.Observer, items []Item, now int64) {
	if m.m == nil {
		return
	}
	var counts metrics.FrameCounts
	for i := range items {
		counts.Count(items[i].Frame)
		if at := items[i].Ingest; at != 0 && latency != nil {
			latency.Observe(float64(max(now-at, 0)) / 1e9)
		}
	}
	m.m.AddFramesOut(&counts)
}

func (m hubMetrics) resumeStarted() {
	if m.m != nil {
		m.m.ResumesStarted.Inc()
	}
}

func (m hubMetrics) resumeEnded(completed bool) {
	if m.m == nil {
		return
	}
	if completed {
		m.m.ResumesEnded.WithLabelValues("completed").Inc()
	} else {
		m.m.ResumesEnded.WithLabelValues("aborted").Inc()
	}
}

// presenceLag observes how long a record write took to reach this
// gateway's watch.
func (m hubMetrics) presenceLag(written time.Time) {
	if m.m != nil && !written.IsZero() {
		m.m.PresenceLag.Observe(max(time.Since(written), 0).Seconds())
	}
}

func (m hubMetrics) closed(code int) {
	if m.m != nil && code != 0 {
		m.m.Closes.WithLabelValues(strconv.Itoa(code)).Inc()
	}
}

func (m hubMetrics) conn(transport string, delta float64) {
	if m.m != nil {
		m.m.Connections.WithLabelValues(transport).Add(delta)
	}
}

func (m hubMetrics) streams(delta float64) {
	if m.m != nil {
		m.m.StreamsLive.Add(delta)
	}
}

func (m hubMetrics) frameIn(t string) { m.framesIn(t, 1) }

func (m hubMetrics) framesIn(t string, n int) {
	if m.m != nil {
		m.m.FrameInN(t, n)
	}
}

func (m hubMetrics) replay(n int) {
	if m.m != nil {
		m.m.ReplayFrames.Add(float64(n))
	}
}

func sortBy[T any](s []T, key func(T) uint64) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && key(s[j]) < key(s[j-1]); j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}
