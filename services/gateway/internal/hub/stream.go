package hub

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/amsrouter/ams/services/gateway/internal/dataplane"
	"github.com/amsrouter/ams/services/gateway/internal/frame"
	"github.com/amsrouter/ams/services/gateway/internal/presence"
	"github.com/amsrouter/ams/services/gateway/internal/subject"
	"github.com/amsrouter/ams/services/internal/wireerr"
)

// stream is one stream of a served conversation, as this gateway knows it.
// A gateway keeps one per stream of every conversation it serves: at 760
// bytes (with the allocator's 8-byte header of a large object with
// pointers) it takes a 768-byte allocation; a few bytes more would take
// 896 (BenchmarkNewStream).
type stream struct {
	conv *conv
	subj string
	key  string

	// Reader side, guarded by conv.mu. info.LastSeq is the highest seq
	// delivered on this gateway.
	info      frame.Stream
	order     uint64
	gateway   string
	epoch     uint64
	linkID    string
	announced bool
	repairing bool
	readers   []*Conn // copy on write
	held      []heldEvent
	// tail holds the newest delivered events for resumes (Config.TailEvents).
	tail tail
	// repairFails counts the repairs in a row that JetStream did not
	// answer; each doubles the wait before the next (maxRepairBackoff).
	repairFails int
	leaveAt     uint64 // final seq of a leaving stream, 0 if not leaving
	leaveTimer  *time.Timer
	orphan      *time.Timer
	// Tail check: lastTick is the conversation tick of the last event (or
	// announcement), checkedTick the tick the tail was last compared with
	// JetStream, tailTarget a newer stored seq to read back.
	lastTick, checkedTick uint64
	tailTarget            uint64
	// left is closed when the stream leaves (finishLeave).
	left chan struct{}
	// echoed is info.LastSeq, readable without conv.mu: for a held stream,
	// every event up to it came back from NATS (see unacked).
	echoed atomic.Uint64

	// Writer side, guarded by wmu: set while this gateway holds the stream.
	wmu        sync.Mutex
	log        unacked // events published and not yet echoed
	pubGen     uint64  // the NATS connection the log was sent on (dataplane.Dialer); 0: resend it
	stalled    int     // bytes logged while NATS was away, counted in Hub.stalled
	lastStamp  int64   // Unix ns of the last event stamped with its ingest time
	local      bool
	writer     *Conn
	wire       frame.Stream // identity written into events
	nextSeq    uint64
	myEpoch    uint64
	graceTimer *time.Timer

	// Record writes, serialized by recMu.
	recMu        sync.Mutex
	rec          presence.Record
	recRev       uint64
	checkpointed uint64
}

type heldEvent struct {
	frame  []byte
	seq    uint64
	ingest int64
}

func (s *stream) isLocal() bool {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.local
}

var (
	errDisplaced = wireerr.New(wireerr.StreamDisplaced, "the stream moved to another connection")
	errNotHeld   = wireerr.New(wireerr.StreamNotLive, "the stream is not held here")
)

// emit publishes one token on the stream for connection c, which must be
// its writer.
func (s *stream) emit(c *Conn, data string) (uint64, time.Time, error) {
	ts := time.Now()
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.writer != c || !s.local {
		return 0, ts, errDisplaced
	}
	seq := s.nextSeq
	if err := s.publishToken(context.Background(), data, seq, ts); err != nil {
		return 0, ts, err
	}
	s.nextSeq++
	return seq, ts, nil
}

func (s *stream) publishToken(ctx context.Context, data string, seq uint64, ts time.Time) error {
	s.trimLog(ts)
	if s.conv.hub.plane.Config().Mode == dataplane.PublishCore {
		// The NATS client copies the frame on publish: it is built in the
		// log's buffer, with no allocation per token.
		s.log.commit(frame.AppendToken(s.log.begin(), &s.wire, ts, data, seq), seq, ts.UnixNano())
		return s.send(ctx, s.log.newest(), seq, 1, ts)
	}
	// A JetStream publish keeps its frame until acknowledged.
	f := frame.AppendToken(make([]byte, 0, 192+len(s.wire.PeerIdentity)+len(data)+len(data)/8), &s.wire, ts, data, seq)
	s.log.add(f, seq, ts.UnixNano())
	return s.send(ctx, f, seq, 1, ts)
}

// maxBatchBytes is the size at which a batch of tokens stops taking more:
// a batch is at most this plus one frame, well within NATS's max_payload
// for frames that fit it alone.
const maxBatchBytes = 64 << 10

// publishTokens publishes tokens in order from seq s.nextSeq on, all taken
// at ts, and advances nextSeq past those taken; wmu is held. In core mode
// without tracing a run of tokens travels as one message (a batch, see
// frame.EachEvent) built in the log's buffer; otherwise each token is a
// message of its own (a JetStream acknowledgement, or a trace, per token).
func (s *stream) publishTokens(ctx context.Context, tokens []string, ts time.Time) error {
	h := s.conv.hub
	if len(tokens) == 1 || h.plane.Config().Mode != dataplane.PublishCore || h.tracer != nil || !frame.Batchable(s.wire.PeerIdentity) {
		for _, d := range tokens {
			if err := s.publishToken(ctx, d, s.nextSeq, ts); err != nil {
				return err
			}
			s.nextSeq++
		}
		return nil
	}
	s.trimLog(ts)
	for len(tokens) > 0 {
		n, err := s.publishBatch(ctx, tokens, ts)
		if err != nil {
			return err
		}
		s.nextSeq += uint64(n)
		tokens = tokens[n:]
	}
	return nil
}

// publishBatch publishes the first of tokens, as many as maxBatchBytes
// takes (at least one), as one message, and returns how many; wmu is
// held. The frames are logged where the message is built, so the batch
// costs no copy: the log's entries are the frames, the delimiters between
// them belong to none.
func (s *stream) publishBatch(ctx context.Context, tokens []string, ts time.Time) (int, error) {
	at := ts.UnixNano()
	seq := s.nextSeq
	buf := s.log.begin()
	start := len(buf)
	buf = append(buf, frame.BatchOpen)
	n := 0
	for n < len(tokens) && len(buf)-start < maxBatchBytes {
		if n > 0 {
			buf = append(buf, frame.BatchSep...)
		}
		off := len(buf)
		buf = frame.AppendToken(buf, &s.wire, ts, tokens[n], seq+uint64(n))
		s.log.commitAt(buf, off, seq+uint64(n), at)
		n++
	}
	var m []byte
	if n == 1 {
		m = s.log.newest()
	} else {
		s.log.pad(append(buf, frame.BatchClose))
		m = s.log.buf[start:]
	}
	return n, s.send(ctx, m, seq, n, ts)
}

// send publishes f, the message of the newest n events of the log (from
// seq, taken at ts); wmu is held. When NATS reconnected since the stream
// last published, what it published on the old connection may be lost, so
// every event of the log goes again first, in order, one message each;
// readers and replay drop the duplicates. While NATS is away, and after a
// reconnect until the data plane is checked (dataplane.Plane.Checked), the
// events stay in the log (nil error) to be sent then, within bounds; an
// error means they were not taken.
func (s *stream) send(ctx context.Context, f []byte, seq uint64, n int, ts time.Time) error {
	p := s.conv.hub.plane
	gen := p.ConnGen()
	var err error
	if gen != s.pubGen {
		err = s.resendChecked(gen, n)
	} else {
		err = s.publish(ctx, f, seq, ts)
		if now := p.ConnGen(); now != gen {
			// It reconnected during the publish, which may have overtaken
			// lost events: send them all again after it.
			err = s.resendChecked(now, n)
		}
	}
	if err != nil {
		return s.failed(err, len(f), n)
	}
	return nil
}

// failed handles a publish error of the newest n events of the log (size
// bytes); wmu is held. NATS being away keeps the events for resend,
// within the stream's and the gateway's bounds; any other error drops
// them.
func (s *stream) failed(err error, size, n int) error {
	h := s.conv.hub
	if transient(err) && s.log.size() <= maxUnacked {
		s.pubGen = 0
		if h.stalled.Add(int64(size)) <= maxStalled {
			s.stalled += size
			return nil
		}
		h.stalled.Add(int64(-size))
	}
	for range n {
		s.log.dropNewest()
	}
	return err
}

// transient reports whether a publish error is NATS being away (the event
// can be sent on reconnect) rather than the connection closing for good
// or the event being refused.
func transient(err error) bool {
	return !errors.Is(err, nats.ErrConnectionClosed) && !errors.Is(err, nats.ErrConnectionDraining) &&
		!errors.Is(err, nats.ErrMaxPayload) && !errors.Is(err, nats.ErrBadSubject)
}

// trimLog drops the logged events that came back keepEchoed before now;
// wmu is held. While the log is sent on a live connection it is also kept
// within maxUnacked.
func (s *stream) trimLog(now time.Time) {
	s.log.trim(s.echoed.Load(), now.Add(-keepEchoed).UnixNano(), s.pubGen != 0)
}

// resend publishes every event of the log, oldest first, and marks the
// log as sent on connection gen; wmu is held. The fresh newest events are
// counted as sent, not resent.
func (s *stream) resend(gen uint64, fresh int) error {
	h := s.conv.hub
	n := s.log.len() - fresh
	core := h.plane.Config().Mode == dataplane.PublishCore
	err := s.log.each(func(f []byte, _ uint64) error {
		if !core {
			f = bytes.Clone(f)
		}
		return h.plane.PublishEvent(s.subj, f, time.Time{}, nil)
	})
	if err != nil {
		s.pubGen = 0
		return err
	}
	s.pubGen = gen
	s.unstall()
	if n > 0 {
		h.metrics.resent(n)
	}
	return nil
}

// errUnchecked keeps events in the log after a reconnect until the data
// plane is checked; it is transient.
var errUnchecked = errors.New("the data plane is not checked since NATS reconnected")

// resendChecked is resend once connection gen is checked; before, it
// fails with errUnchecked and the log waits.
func (s *stream) resendChecked(gen uint64, fresh int) error {
	if !s.conv.hub.plane.Checked(gen) {
		s.pubGen = 0
		return errUnchecked
	}
	return s.resend(gen, fresh)
}

// unstall takes the stream's held bytes off the gateway's count (they
// were sent, or are given up); wmu is held.
func (s *stream) unstall() {
	s.conv.hub.stalled.Add(int64(-s.stalled))
	s.stalled = 0
}

// maxStalled bounds the events a gateway keeps for resend while NATS is
// away, over all its streams.
const maxStalled = 64 << 20

// resendLog sends the log again if the connection changed since it was
// sent (after a reconnect, for a stream with nothing new to publish) and
// the data plane is checked on the new one.
func (s *stream) resendLog() (int, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.log.trim(s.echoed.Load(), time.Now().Add(-keepEchoed).UnixNano(), false)
	p := s.conv.hub.plane
	gen := p.ConnGen()
	if gen == s.pubGen && gen != 0 || !p.Checked(gen) {
		return 0, nil // sent on this connection already, or not yet to be
	}
	n := s.log.len()
	return n, s.resend(gen, 0)
}

// ingestStamp returns ts when the event should carry its ingest time for
// the latency histograms, else the zero time: every event in JetStream
// mode (which times each acknowledgement and builds a message anyway), at
// most one per stream per millisecond in core mode, whose events
// otherwise travel without headers. wmu is held.
func (s *stream) ingestStamp(ts time.Time) time.Time {
	if s.conv.hub.plane.Config().Mode == dataplane.PublishJetStream {
		return ts
	}
	now := ts.UnixNano()
	if d := now - s.lastStamp; d >= 0 && d < int64(time.Millisecond) {
		return time.Time{}
	}
	s.lastStamp = now
	return ts
}

// spanParent is the parent context of an emit span: the request's for an
// emit without a connection (HTTP emit), none for a connection's input,
// whose request lives as long as the connection (each of its events is a
// trace of its own).
func spanParent(ctx context.Context, c *Conn) context.Context {
	if c != nil {
		return context.Background()
	}
	return ctx
}

// publish sends an event stamped with its ingest time ts. With tracing on
// it is an "emit" span (a child of ctx's span, if any) whose context the
// event carries to the delivering gateways; off, nothing of it runs.
func (s *stream) publish(ctx context.Context, f []byte, seq uint64, ts time.Time) error {
	h := s.conv.hub
	if h.tracer == nil {
		return h.plane.PublishEvent(s.subj, f, s.ingestStamp(ts), nil)
	}
	ctx, span := h.tracer.Start(ctx, "emit", trace.WithSpanKind(trace.SpanKindProducer), trace.WithTimestamp(ts),
		trace.WithAttributes(attribute.String("ams.gateway", h.cfg.Gateway),
			attribute.String("ams.stream_id", s.info.ID), attribute.Int64("ams.seq", int64(seq))))
	defer span.End()
	var hdr nats.Header
	if span.SpanContext().IsSampled() {
		hdr = make(nats.Header, 3)
		h.cfg.Tracing.Inject(ctx, hdr)
	}
	err := h.plane.PublishEvent(s.subj, f, s.ingestStamp(ts), hdr)
	if err != nil {
		span.SetStatus(codes.Error, "publish failed")
	}
	return err
}

// emitTokens publishes tokens in order on a stream this gateway holds:
// for connection c (which must be its writer), or for c == nil on behalf of
// its owner from another transport (HTTP emit). A tagged emit is recorded
// under its tag first; a retry with the same tag publishes nothing and
// returns the seqs of the original.
func (s *stream) emitTokens(ctx context.Context, c *Conn, tokens []string, tag string) (first, last uint64, ts time.Time, err error) {
	ts = time.Now()
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if !s.local || (c != nil && s.writer != c) {
		return 0, 0, ts, errNotHeld
	}
	first, last = s.nextSeq, s.nextSeq+uint64(len(tokens))-1
	if tag != "" {
		subj, err := subject.Dedupe(s.conv.id, s.info.ID, tag)
		if err != nil {
			return 0, 0, ts, err
		}
		of, ol, claimed, err := s.conv.hub.plane.ClaimTag(ctx, subj, tag, first, last)
		if err != nil {
			return 0, 0, ts, err
		}
		if !claimed {
			return of, ol, ts, nil
		}
	}
	if err := s.publishTokens(spanParent(ctx, c), tokens, ts); err != nil {
		return 0, 0, ts, err
	}
	return first, last, ts, nil
}

// setMetadata publishes a stream_metadata event and records the new
// metadata for later joiners; c as for emitTokens.
func (s *stream) setMetadata(ctx context.Context, c *Conn, metadata string) (uint64, time.Time, error) {
	ts := time.Now()
	s.wmu.Lock()
	if !s.local || (c != nil && s.writer != c) {
		s.wmu.Unlock()
		if c != nil {
			return 0, ts, errDisplaced
		}
		return 0, ts, errNotHeld
	}
	seq := s.nextSeq
	f := frame.AppendStreamMetadata(nil, &s.wire, metadata, ts, seq)
	s.trimLog(ts)
	s.log.add(f, seq, ts.UnixNano())
	if err := s.send(spanParent(ctx, c), f, seq, 1, ts); err != nil {
		s.wmu.Unlock()
		return 0, ts, err
	}
	s.nextSeq++
	s.wire.Metadata = metadata
	s.wmu.Unlock()
	err := s.updateRecord(ctx, func(r *presence.Record) { r.Metadata = metadata; r.LastSeq = max(r.LastSeq, seq) })
	return seq, ts, err
}

// giveUp releases the stream to a takeover with the given epoch: it
// returns the attached connection (to be closed as displaced), the last
// seq published here, and whether this gateway held it.
func (s *stream) giveUp(epoch uint64) (old *Conn, last uint64, held bool) {
	s.wmu.Lock()
	if !s.local || epoch <= s.myEpoch {
		s.wmu.Unlock()
		return nil, 0, false
	}
	old, last = s.writer, s.nextSeq-1
	s.writer, s.local = nil, false
	// The new holder continues from last; what did not reach NATS from
	// here is lost with this holder, as if it had died.
	s.log.reset()
	s.unstall()
	s.conv.hub.metrics.streams(-1)
	inGrace := s.stopGrace()
	s.wmu.Unlock()
	if inGrace {
		go s.conv.hub.release(s.conv)
	}
	return old, last, true
}

// stopGrace ends the stream's grace, if one runs, and reports whether the
// caller now has the conversation reference the grace held: false when
// there was none, or when the grace's timer already fired (its function,
// waiting for wmu, releases the reference itself); wmu is held.
func (s *stream) stopGrace() bool {
	if s.graceTimer == nil {
		return false
	}
	stopped := s.graceTimer.Stop()
	s.graceTimer = nil
	return stopped
}

// updateRecord rewrites this gateway's record of the stream with fn,
// retrying on a concurrent write by this gateway. A record taken over by
// another gateway is left alone.
func (s *stream) updateRecord(ctx context.Context, fn func(*presence.Record)) error {
	rev, err := s.writeRecord(ctx, fn)
	if rev != 0 {
		s.conv.mu.Lock()
		s.conv.noteRev(s.info.ID, rev)
		s.conv.mu.Unlock()
	}
	return err
}

// writeRecord does updateRecord's write under recMu and returns the new
// revision (0 if nothing was written).
func (s *stream) writeRecord(ctx context.Context, fn func(*presence.Record)) (uint64, error) {
	s.recMu.Lock()
	defer s.recMu.Unlock()
	kv := s.conv.hub.plane.Presence
	for attempt := 0; attempt < 5; attempt++ {
		rec := s.rec
		fn(&rec)
		rev, err := presence.Put(ctx, kv, s.key, &rec, s.recRev)
		if err == nil {
			s.rec, s.recRev = rec, rev
			return rev, nil
		}
		if err != presence.ErrConflict {
			return 0, err
		}
		cur, curRev, ok, gerr := presence.Get(ctx, kv, s.key)
		if gerr != nil {
			return 0, gerr
		}
		if !ok || cur.Gateway != s.conv.hub.cfg.Gateway || cur.Epoch != s.rec.Epoch {
			return 0, nil // taken over: not ours to write
		}
		s.rec, s.recRev = cur, curRev
	}
	return 0, presence.ErrConflict
}

// recordLost marks the stream's record as lost with the NATS server's
// store: the next write (checkpoint) creates it again. A held stream's
// recRev is otherwise never 0: its join wrote the record.
func (s *stream) recordLost() {
	s.recMu.Lock()
	s.recRev = 0
	s.recMu.Unlock()
}

// checkpoint writes the last published seq to the record if it moved, or
// the whole record if it was lost (recordLost).
func (s *stream) checkpoint(ctx context.Context) error {
	s.wmu.Lock()
	s.trimLog(time.Now())
	s.log.shrink()
	if !s.local {
		s.wmu.Unlock()
		return nil
	}
	last := s.nextSeq - 1
	s.wmu.Unlock()
	s.recMu.Lock()
	done := last <= s.checkpointed && s.recRev != 0
	s.recMu.Unlock()
	if done {
		return nil
	}
	err := s.updateRecord(ctx, func(r *presence.Record) { r.LastSeq = max(r.LastSeq, last) })
	if err == nil {
		s.recMu.Lock()
		s.checkpointed = max(s.checkpointed, last)
		s.recMu.Unlock()
	}
	return err
}
