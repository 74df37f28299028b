// Package dataplane is the gateway's view of NATS JetStream: the events
// stream that captures every stream event for resume, the presence and
// gateway buckets, publishing, and reading retained events back.
//
// The events of stream S in conversation C are messages on
// ams.tok.<C>.<S>. A message's payload is the exact server frame readers
// receive (so a replayed frame equals the live one), or a batch of such
// token frames with consecutive seqs (frame.EachEvent): the writer's
// gateway sends the tokens of one client message as one NATS message, so
// NATS routes and stores, and each delivering gateway parses, one message
// per burst instead of one per token. Its Ams-Ingest header, when set, is
// the time the emitting gateway took it from its writer, for the
// publish-to-deliver latency every delivering gateway measures.
package dataplane

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/amsrouter/ams/services/gateway/internal/frame"
)

// Names of the JetStream assets.
const (
	EventsStream    = "AMS_EVENTS"
	DedupeStream    = "AMS_DEDUPE"
	PresenceBucket  = "AMS_PRESENCE"
	GatewaysBucket  = "AMS_GATEWAYS"
	ObserversBucket = "AMS_OBSERVERS"
)

// PublishMode selects how events are published.
type PublishMode string

const (
	// PublishCore sends events with a core NATS publish. Subscribers get
	// them at core speed; the events stream captures them without the
	// publisher waiting for, or hearing of, the store.
	PublishCore PublishMode = "core"
	// PublishJetStream sends events with an asynchronous JetStream publish:
	// the same live path, plus a store acknowledgement per event that is
	// counted and whose failures are reported.
	PublishJetStream PublishMode = "jetstream"
)

// Config configures the data plane.
type Config struct {
	// Replicas of the stream and buckets (3 in production).
	Replicas int
	// MaxAge and MaxEvents bound retention per stream (spec 5.1).
	MaxAge    time.Duration
	MaxEvents int64
	// MaxBytes caps the events stream in total; -1 for no cap.
	MaxBytes int64
	// RecordMaxAge is how long a stream's presence record (owner, last
	// seq) outlives its last change; seq continuity across rejoins holds
	// within it.
	RecordMaxAge time.Duration
	// Mode is the publish mode.
	Mode PublishMode
	// Memory stores everything in memory instead of files (tests).
	Memory bool
	// DedupeWindow is how long an idempotent emit's tag is remembered.
	DedupeWindow time.Duration
	// Observer, if not nil, is told of publish outcomes (metrics).
	Observer PublishObserver
	// ReadConn, if not nil, carries the reads of retained events (replay
	// and gap repair) apart from the main connection: the server reads a
	// connection's requests in order, so a storm of resumes on the main
	// one held up the gateway's heartbeats and record writes behind it.
	ReadConn *nats.Conn
	// Dialer, if not nil, is the NATS connection's dialer: its count of
	// connections tells publishers when a reconnect replaced the
	// connection (ConnGen).
	Dialer *Dialer
}

// Dialer dials the NATS server (nats.SetCustomDialer) and counts the
// connections it made. nats.go dials under its connection lock, before
// anything is written on the new connection, so a publisher that reads
// the count before and after a publish knows whether the publish may
// have gone out on a newer connection than its previous ones: events
// published on the old one without acknowledgement may then be lost, and
// must be sent again, in order.
type Dialer struct {
	// Timeout bounds a dial (zero: 2 s, nats.go's default).
	Timeout time.Duration
	gen     atomic.Uint64
	dialed  atomic.Int64 // when the newest dial began (Unix ns)
}

// Dial dials address and counts the connection.
func (d *Dialer) Dial(network, address string) (net.Conn, error) {
	d.dialed.Store(time.Now().UnixNano())
	d.gen.Add(1)
	timeout := d.Timeout
	if timeout == 0 {
		timeout = nats.DefaultTimeout
	}
	nd := net.Dialer{Timeout: timeout}
	return nd.Dial(network, address)
}

// Gen returns the number of connections dialed.
func (d *Dialer) Gen() uint64 { return d.gen.Load() }

// PublishObserver is told of event publish outcomes. Its methods are
// called from publishing goroutines and NATS callbacks: they must be quick
// and safe for concurrent use.
type PublishObserver interface {
	// PublishError counts a failed publish: stage "publish" when it was
	// refused at once, "ack" when JetStream did not store it.
	PublishError(stage string)
	// PublishAcked observes the time from an event's ingest to its store
	// acknowledgement (PublishJetStream mode).
	PublishAcked(time.Duration)
}

// IngestHeader carries an event's ingest time, in Unix nanoseconds, set
// by the gateway that took it from its writer: readers' gateways measure
// publish-to-deliver latency from it.
const IngestHeader = "Ams-Ingest"

// IngestOf returns the ingest time of an event's headers in Unix
// nanoseconds, 0 if it has none.
func IngestOf(h nats.Header) int64 {
	v := h[IngestHeader]
	if len(v) == 0 {
		return 0
	}
	n, err := strconv.ParseInt(v[0], 10, 64)
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// Defaults of spec 5.1 and of this deployment.
const (
	DefaultMaxAge       = 15 * time.Minute
	DefaultMaxEvents    = 10_000
	DefaultMaxBytes     = 1 << 30
	DefaultRecordMaxAge = 30 * 24 * time.Hour
	DefaultDedupeWindow = 10 * time.Minute
	duplicatesWindow    = 2 * time.Minute
)

func (c *Config) defaults() {
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.MaxAge == 0 {
		c.MaxAge = DefaultMaxAge
	}
	if c.MaxEvents == 0 {
		c.MaxEvents = DefaultMaxEvents
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = DefaultMaxBytes
	}
	if c.RecordMaxAge == 0 {
		c.RecordMaxAge = DefaultRecordMaxAge
	}
	if c.Mode == "" {
		c.Mode = PublishCore
	}
	if c.DedupeWindow == 0 {
		c.DedupeWindow = DefaultDedupeWindow
	}
}

// Plane holds the JetStream handles.
type Plane struct {
	cfg    Config
	nc     *nats.Conn
	js     jetstream.JetStream
	events jetstream.Stream
	// eventsCreated is when the events stream was created, as Open or
	// the last Recreate found it; guarded by recreateMu.
	recreateMu    sync.Mutex
	eventsCreated time.Time
	// checked is the connection (ConnGen) on which the streams and
	// buckets were last found or created (Open, Recreate): see Checked.
	checked atomic.Uint64
	// reads is the events stream on rnc, the connection of replays (the
	// main one unless Config.ReadConn).
	reads    jetstream.Stream
	rnc      *nats.Conn
	dedupe   jetstream.Stream
	Presence jetstream.KeyValue
	Gateways jetstream.KeyValue
	// Observers holds, per conversation and gateway, how many observers
	// the gateway serves (the observer cap is per conversation).
	Observers jetstream.KeyValue

	// OnPublishError is called for a failed JetStream publish
	// acknowledgement (PublishJetStream mode).
	OnPublishError func(error)

	// lookups counts the probes of Replay's search for its start.
	lookups atomic.Int64
}

// Open creates or updates the events stream and the buckets.
func Open(ctx context.Context, nc *nats.Conn, cfg Config) (*Plane, error) {
	cfg.defaults()
	p := &Plane{cfg: cfg, nc: nc}
	var err error
	p.js, err = jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(4096),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, _ *nats.Msg, err error) {
			if cfg.Observer != nil {
				cfg.Observer.PublishError("ack")
			}
			if p.OnPublishError != nil {
				p.OnPublishError(err)
			}
		}),
		jetstream.WithPublishAsyncAckHandler(func(_ jetstream.JetStream, m *nats.Msg, _ *jetstream.PubAck) {
			if cfg.Observer == nil {
				return
			}
			if at := IngestOf(m.Header); at != 0 {
				cfg.Observer.PublishAcked(time.Duration(time.Now().UnixNano() - at))
			}
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	h, err := p.create(ctx)
	if err != nil {
		return nil, err
	}
	p.events, p.dedupe = h.events, h.dedupe
	p.eventsCreated = h.events.CachedInfo().Created
	p.checked.Store(p.ConnGen())
	p.rnc, p.reads = nc, h.events
	if cfg.ReadConn != nil {
		rjs, err := jetstream.New(cfg.ReadConn)
		if err != nil {
			return nil, fmt.Errorf("jetstream (reads): %w", err)
		}
		if p.reads, err = rjs.Stream(ctx, EventsStream); err != nil {
			return nil, fmt.Errorf("events stream (reads): %w", err)
		}
		p.rnc = cfg.ReadConn
	}
	p.Presence, p.Gateways, p.Observers = h.presence, h.gateways, h.observers
	return p, nil
}

// handles are the streams and buckets of the data plane.
type handles struct {
	events, dedupe                jetstream.Stream
	presence, gateways, observers jetstream.KeyValue
}

// Recreate makes sure the events stream and the buckets exist with their
// configuration, as Open does. A NATS server that restarted has lost the
// memory-backed buckets (gateway heartbeats, observer counts), and every
// stream if it ran without persistence or lost its store; the gateway
// calls Recreate after each reconnect. The Plane's handles stay valid
// (they name the streams). It reports whether the events stream is not
// the one found before (created again, by this gateway or another): the
// events published before it are gone, and those published between the
// server's start and its creation were stored nowhere.
func (p *Plane) Recreate(ctx context.Context) (lost bool, err error) {
	gen := p.ConnGen()
	h, err := p.create(ctx)
	if err != nil {
		return false, err
	}
	created := h.events.CachedInfo().Created
	p.recreateMu.Lock()
	defer p.recreateMu.Unlock()
	lost = !created.Equal(p.eventsCreated)
	p.eventsCreated = created
	if gen > p.checked.Load() {
		p.checked.Store(gen)
	}
	return lost, nil
}

// CheckWait bounds how long after a reconnect Checked waits for Recreate.
const CheckWait = 2 * time.Second

// Checked reports whether events may be published on connection gen: the
// streams and buckets were found or created on it (Recreate), or it was
// dialed more than CheckWait ago. A server that lost its store has no
// events stream until a gateway creates it again; events published
// before that are routed but stored nowhere, and a held stream that sent
// its older events again once it exists would store them after newer
// ones, where replay, which finds a seq by bisecting the stream, cannot
// find them. The bound keeps live delivery going, unstored, when
// JetStream stays unavailable while core NATS works. Without a Dialer it
// is always true.
func (p *Plane) Checked(gen uint64) bool {
	d := p.cfg.Dialer
	return d == nil || p.checked.Load() >= gen || time.Now().UnixNano()-d.dialed.Load() > int64(CheckWait)
}

// create creates or updates the events stream and the buckets.
func (p *Plane) create(ctx context.Context) (handles, error) {
	var h handles
	var err error
	storage := jetstream.FileStorage
	if p.cfg.Memory {
		storage = jetstream.MemoryStorage
	}
	h.events, err = p.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:              EventsStream,
		Description:       "AMS stream events, retained for resume",
		Subjects:          []string{"ams.tok.>"},
		Storage:           storage,
		Replicas:          p.cfg.Replicas,
		Retention:         jetstream.LimitsPolicy,
		Discard:           jetstream.DiscardOld,
		MaxAge:            p.cfg.MaxAge,
		MaxMsgsPerSubject: p.cfg.MaxEvents,
		MaxBytes:          p.cfg.MaxBytes,
		Duplicates:        duplicatesWindow,
		AllowDirect:       true,
		MaxConsumers:      MaxConsumers,
	})
	if err != nil {
		return h, fmt.Errorf("create events stream: %w", err)
	}
	h.dedupe, err = p.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:              DedupeStream,
		Description:       "AMS idempotent emit tags",
		Subjects:          []string{"ams.dedupe.>"},
		Storage:           storage,
		Replicas:          p.cfg.Replicas,
		Discard:           jetstream.DiscardOld,
		MaxAge:            p.cfg.DedupeWindow,
		MaxMsgsPerSubject: 1,
		Duplicates:        p.cfg.DedupeWindow,
		AllowDirect:       true,
	})
	if err != nil {
		return h, fmt.Errorf("create dedupe stream: %w", err)
	}
	h.presence, err = p.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      PresenceBucket,
		Description: "AMS live streams and their records",
		// Several revisions per key, so a watcher that lags still sees a
		// stream's Live record when its Left record follows quickly.
		History:  8,
		TTL:      p.cfg.RecordMaxAge,
		Storage:  storage,
		Replicas: p.cfg.Replicas,
	})
	if err != nil {
		return h, fmt.Errorf("create presence bucket: %w", err)
	}
	if err := p.raiseMaxConsumers(ctx, "KV_"+PresenceBucket); err != nil {
		return h, fmt.Errorf("configure presence bucket: %w", err)
	}
	h.gateways, err = p.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      GatewaysBucket,
		Description: "AMS gateway heartbeats",
		History:     1,
		TTL:         time.Minute,
		Storage:     jetstream.MemoryStorage,
		Replicas:    p.cfg.Replicas,
	})
	if err != nil {
		return h, fmt.Errorf("create gateways bucket: %w", err)
	}
	h.observers, err = p.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      ObserversBucket,
		Description: "AMS observer counts per conversation and gateway",
		History:     1,
		TTL:         time.Minute,
		Storage:     jetstream.MemoryStorage,
		Replicas:    p.cfg.Replicas,
	})
	if err != nil {
		return h, fmt.Errorf("create observers bucket: %w", err)
	}
	return h, nil
}

// MaxConsumers bounds the consumers of the events stream and of the
// presence bucket. Every conversation a gateway starts to serve reads a
// snapshot of its presence records (a consumer for a moment; each gateway
// also keeps one that watches every record) and every resume in progress
// reads the events stream: the server's default of 1,000 consumers per
// stream would cap how many of those a deployment runs at once.
const MaxConsumers = 1_000_000

// raiseMaxConsumers sets MaxConsumers on a bucket's stream, which the
// bucket's own configuration cannot express; creating or updating the
// bucket resets it.
func (p *Plane) raiseMaxConsumers(ctx context.Context, stream string) error {
	st, err := p.js.Stream(ctx, stream)
	if err != nil {
		return err
	}
	cfg := st.CachedInfo().Config
	if cfg.MaxConsumers == MaxConsumers {
		return nil
	}
	cfg.MaxConsumers = MaxConsumers
	_, err = p.js.UpdateStream(ctx, cfg)
	return err
}

// Config returns the effective configuration.
func (p *Plane) Config() Config { return p.cfg }

// ConnGen identifies the NATS connection in use: it changes with each
// reconnect. Without a Dialer it is always 0.
func (p *Plane) ConnGen() uint64 {
	if p.cfg.Dialer == nil {
		return 0
	}
	return p.cfg.Dialer.Gen()
}

// Conn is the NATS connection.
func (p *Plane) Conn() *nats.Conn { return p.nc }

// MsgID is the de-duplication id of an event.
func MsgID(streamID string, seq uint64) string {
	return streamID + ":" + strconv.FormatUint(seq, 10)
}

// Publish sends one event frame on its subject with its de-duplication
// id, without an ingest time.
func (p *Plane) Publish(subj string, f []byte, msgID string) error {
	return p.publish(subj, f, nats.Header{jetstream.MsgIDHeader: []string{msgID}})
}

// PublishEvent sends one event frame on its subject. The live path
// carries no headers: a receiving gateway then parses none, which is most
// of a header's cost. hdr (trace context, or nil) is sent when given, and
// a non-zero ingest time is stamped into an IngestHeader for the delivery
// latency histogram; the hub stamps a sample of events, not all. Events
// carry no Nats-Msg-Id: readers and replay drop a seq they already have,
// so a stale writer's duplicate is harmless without it. In core mode f may
// be reused once this returns (the client copies it); in JetStream mode it
// must not be.
func (p *Plane) PublishEvent(subj string, f []byte, ingest time.Time, hdr nats.Header) error {
	if ingest.IsZero() && hdr == nil && p.cfg.Mode != PublishJetStream {
		if err := p.nc.Publish(subj, f); err != nil {
			if p.cfg.Observer != nil {
				p.cfg.Observer.PublishError("publish")
			}
			return err
		}
		return nil
	}
	if !ingest.IsZero() {
		if hdr == nil {
			hdr = make(nats.Header, 1)
		}
		hdr[IngestHeader] = []string{strconv.FormatInt(ingest.UnixNano(), 10)}
	}
	return p.publish(subj, f, hdr)
}

func (p *Plane) publish(subj string, f []byte, hdr nats.Header) error {
	m := &nats.Msg{Subject: subj, Data: f, Header: hdr}
	var err error
	if p.cfg.Mode == PublishJetStream {
		_, err = p.js.PublishMsgAsync(m)
	} else {
		err = p.nc.PublishMsg(m)
	}
	if err != nil && p.cfg.Observer != nil {
		p.cfg.Observer.PublishError("publish")
	}
	return err
}

// Flush waits until everything published so far reached the server.
func (p *Plane) Flush(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	return p.nc.FlushWithContext(ctx)
}

// LastSeq returns the seq of the newest retained event on subj, 0 if none.
func (p *Plane) LastSeq(ctx context.Context, subj string) (uint64, error) {
	m, err := p.reads.GetLastMsgForSubject(ctx, subj)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	_, last, ok := frame.SeqRange(m.Data)
	if !ok {
		return 0, fmt.Errorf("event without seq on %s", subj)
	}
	return last, nil
}

// stored is one retained message: the events of seqs first to last.
type stored struct {
	jsSeq       uint64
	first, last uint64
	data        []byte
}

// event is one event of a stored message.
type event struct {
	seq  uint64
	data []byte
}

// nextFrom returns the first retained event of subj at stream sequence
// ≥ from, or ok=false if there is none.
func (p *Plane) nextFrom(ctx context.Context, subj string, from uint64) (stored, bool, error) {
	m, err := p.reads.GetMsg(ctx, from, jetstream.WithGetMsgSubject(subj))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return stored{}, false, nil
	}
	if err != nil {
		return stored{}, false, err
	}
	first, last, ok := frame.SeqRange(m.Data)
	if !ok {
		return stored{}, false, fmt.Errorf("event without seq on %s", subj)
	}
	return stored{jsSeq: m.Sequence, first: first, last: last, data: m.Data}, true, nil
}

// Replay calls fn with every retained event of subj whose seq is ≥ from,
// in order, up to the newest event retained when the call began. Before
// the first event it calls onStart (if not nil) with the first available
// seq: the oldest retained seq, or 0 when nothing is retained, so the
// caller can announce a gap when from is below it. A message may hold a
// batch of events; JetStream bounds the messages of a subject, the spec
// bounds its events (max_events), so only the newest MaxEvents seqs count
// as retained. Messages of one subject carry increasing seqs in stream
// order, which lets a search over stream sequences find the start in a
// few lookups instead of scanning the subject (interpolate).
func (p *Plane) Replay(ctx context.Context, subj string, from uint64, onStart func(firstAvailable uint64) error, fn func(f []byte, seq uint64) error) (firstAvailable uint64, err error) {
	last, err := p.reads.GetLastMsgForSubject(ctx, subj)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		if onStart != nil {
			return 0, onStart(0)
		}
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	lastFirst, lastSeq, ok := frame.SeqRange(last.Data)
	if !ok {
		return 0, fmt.Errorf("event without seq on %s", subj)
	}
	first, ok, err := p.nextFrom(ctx, subj, 1)
	if err != nil {
		return 0, err
	}
	if !ok {
		if onStart != nil {
			return 0, onStart(0)
		}
		return 0, nil
	}
	avail := first.first
	if n := p.cfg.MaxEvents; n > 0 && lastSeq >= uint64(n) {
		avail = max(avail, lastSeq-uint64(n)+1)
	}
	if onStart != nil {
		if err := onStart(avail); err != nil {
			return avail, err
		}
	}
	if from > lastSeq {
		return avail, nil
	}
	from = max(from, avail)
	start := first
	if from > first.last {
		// f(x) = last seq of the first message at stream sequence ≥ x is
		// non-decreasing; find the least x with f(x) ≥ from, stopping early
		// at a message that holds from. Invariant: f(lo) < from ≤ f(hi).
		lo, hi := first.jsSeq, last.Sequence
		loLast := first.last // last seq of the message at lo
		start = stored{jsSeq: last.Sequence, first: lastFirst, last: lastSeq, data: last.Data}
		bisect := false
		for hi-lo > 1 && start.first > from {
			var mid uint64
			if bisect {
				mid = lo + (hi-lo)/2
			} else {
				mid = interpolate(lo, loLast, start.jsSeq, start.first, from)
				mid = min(max(mid, lo+1), hi-1)
			}
			width := hi - lo
			p.lookups.Add(1)
			m, ok, err := p.nextFrom(ctx, subj, mid)
			if err != nil {
				return 0, err
			}
			if !ok || m.last >= from {
				hi = mid
				if ok && m.jsSeq < start.jsSeq {
					start = m
				}
			} else {
				lo, loLast = max(mid, m.jsSeq), m.last
			}
			// A guess that did not halve the range is followed by a
			// halving step: never worse than twice the bisection's probes.
			bisect = !bisect && hi-lo > width/2
		}
		if start.first > from {
			m, ok, err := p.nextFrom(ctx, subj, hi)
			if err != nil {
				return 0, err
			}
			if ok && m.last >= from && m.jsSeq < start.jsSeq {
				start = m
			}
		}
	}
	prev := from - 1
	// An event published as NATS reconnected can be stored ahead of
	// earlier ones the writer's gateway sent again after it (hub: the
	// unacked log). Such events are held, a few, until the seqs before
	// them come; what does not come is a real gap.
	var held []event
	release := func(all bool) error {
		for len(held) > 0 && (all || held[0].seq <= prev+1 || len(held) > maxReorder) {
			e := held[0]
			held = held[1:]
			if e.seq <= prev {
				continue
			}
			prev = e.seq
			if err := fn(e.data, e.seq); err != nil {
				return err
			}
		}
		return nil
	}
	one := func(e event) error {
		if e.seq <= prev {
			return nil // before the start, or a duplicate
		}
		if e.seq == prev+1 {
			prev = e.seq
			if err := fn(e.data, e.seq); err != nil {
				return err
			}
		} else {
			i, found := slices.BinarySearchFunc(held, e.seq, func(h event, seq uint64) int { return cmp.Compare(h.seq, seq) })
			if !found {
				held = slices.Insert(held, i, e)
			}
		}
		return release(false)
	}
	err = p.batch(ctx, subj, start.jsSeq, last.Sequence, func(s stored) error {
		if s.last <= prev {
			return nil
		}
		if !frame.IsBatch(s.data) {
			return one(event{s.first, s.data})
		}
		var ferr error
		ok := frame.EachEvent(s.data, func(f []byte) bool {
			seq, ok := frame.SeqOf(f)
			if !ok {
				ferr = fmt.Errorf("event without seq on %s", subj)
				return false
			}
			ferr = one(event{seq, f})
			return ferr == nil
		})
		if !ok {
			return fmt.Errorf("malformed batch on %s", subj)
		}
		return ferr
	})
	if err == nil {
		err = release(true)
	}
	return avail, err
}

// interpolate guesses the stream sequence of the message holding event
// seq from, between the message at stream sequence lo (events up to
// loLast) and the one at hi (events from hiFirst), assuming the subject's
// events are spread evenly over the stream between them; loLast < from <
// hiFirst. It aims one event early, so that the next message of the
// subject at or after the guess is the one wanted: a resume a few events
// behind the newest finds its start in one or two lookups where halving
// takes log2 of the whole stream's length (every subject shares it).
func interpolate(lo, loLast, hi, hiFirst, from uint64) uint64 {
	span := float64(hi-lo) / float64(hiFirst-loLast) // stream sequences per event
	guess := float64(lo) + float64(from-loLast-1)*span
	if guess <= float64(lo) {
		return lo
	}
	return uint64(guess)
}

// maxReorder bounds the out-of-order events Replay holds.
const maxReorder = 64

// batchSize is the number of events one direct get returns.
const batchSize = 256

type directGetRequest struct {
	Seq      uint64 `json:"seq"`
	NextFor  string `json:"next_by_subj"`
	Batch    int    `json:"batch"`
	MaxBytes int    `json:"max_bytes,omitempty"`
}

// batch reads the events of subj from stream sequence from to to
// (inclusive) with batched direct gets.
func (p *Plane) batch(ctx context.Context, subj string, from, to uint64, fn func(stored) error) error {
	api := "$JS.API.DIRECT.GET." + EventsStream
	for from <= to {
		req, _ := json.Marshal(directGetRequest{Seq: from, NextFor: subj, Batch: batchSize, MaxBytes: 8 << 20})
		inbox := p.rnc.NewRespInbox()
		// A channel the size of one batch and its end marker: a sync
		// subscription would allocate nats.go's default of 65,536 slots
		// (512 KiB) per batch, which an avalanche of resumes pays in GC.
		ch := make(chan *nats.Msg, batchSize+2)
		sub, err := p.rnc.ChanSubscribe(inbox, ch)
		if err != nil {
			return err
		}
		if err := p.rnc.PublishRequest(api, inbox, req); err != nil {
			_ = sub.Unsubscribe()
			return err
		}
		bctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		n, next, done, err := p.readBatch(bctx, ch, to, fn)
		cancel()
		_ = sub.Unsubscribe()
		if err != nil {
			return err
		}
		if done || n == 0 {
			return nil
		}
		from = next
	}
	return nil
}

func (p *Plane) readBatch(ctx context.Context, ch <-chan *nats.Msg, to uint64, fn func(stored) error) (n int, next uint64, done bool, err error) {
	for {
		var m *nats.Msg
		select {
		case m = <-ch:
		case <-ctx.Done():
			return n, next, false, fmt.Errorf("direct get: %w", ctx.Err())
		}
		if st := m.Header.Get("Status"); st != "" {
			// 204: end of batch; 404: nothing at or after the sequence.
			if st == "404" {
				return n, next, true, nil
			}
			return n, next, false, nil
		}
		js, err := strconv.ParseUint(m.Header.Get(jetstream.SequenceHeader), 10, 64)
		if err != nil {
			return n, next, false, fmt.Errorf("direct get: bad sequence header")
		}
		if js > to {
			done = true
			continue // drain to the end-of-batch marker
		}
		first, last, ok := frame.SeqRange(m.Data)
		if !ok {
			return n, next, false, fmt.Errorf("event without seq")
		}
		if done {
			continue
		}
		if err := fn(stored{jsSeq: js, first: first, last: last, data: m.Data}); err != nil {
			return n, next, false, err
		}
		n++
		next = js + 1
		if js == to {
			done = true
		}
	}
}

// ClaimTag records an idempotency tag of a stream with the seqs it was
// given. It returns the seqs of the first claim and whether this call made
// it: a retry of a tagged emit within the window finds the original seqs.
// JetStream's message de-duplication (Nats-Msg-Id) decides the race.
func (p *Plane) ClaimTag(ctx context.Context, subj, tag string, first, last uint64) (origFirst, origLast uint64, claimed bool, err error) {
	body := strconv.FormatUint(first, 10) + "-" + strconv.FormatUint(last, 10)
	m := &nats.Msg{Subject: subj, Data: []byte(body), Header: nats.Header{jetstream.MsgIDHeader: []string{tag}}}
	ack, err := p.js.PublishMsg(ctx, m)
	if err != nil {
		return 0, 0, false, fmt.Errorf("claim tag: %w", err)
	}
	if !ack.Duplicate {
		return first, last, true, nil
	}
	orig, err := p.dedupe.GetLastMsgForSubject(ctx, subj)
	if err != nil {
		return 0, 0, false, fmt.Errorf("read claimed tag: %w", err)
	}
	a, b, ok := strings.Cut(string(orig.Data), "-")
	if !ok {
		return 0, 0, false, errors.New("malformed tag record")
	}
	origFirst, _ = strconv.ParseUint(a, 10, 64)
	origLast, _ = strconv.ParseUint(b, 10, 64)
	return origFirst, origLast, false, nil
}
