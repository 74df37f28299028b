// Package presence keeps the shared record of every stream in JetStream KV
// and tells which gateways are alive.
//
// A stream's record lives at <conversation>.<stream> in the presence
// bucket. The gateway holding the stream writes it: at join, on takeover
// (compare-and-set on the KV revision, with a higher epoch), on metadata
// changes, at checkpoints of its last seq, and at leave (state "left",
// final seq). A left record stays, so a rejoin continues the seq. Every
// gateway serving the conversation watches <conversation>.* and derives
// stream_joined / stream_left from the records.
//
// Gateway liveness is a heartbeat key per gateway in a second bucket. A
// gateway whose heartbeat stops, or that deletes it while draining, is
// gone; its streams are left once their grace runs out.
package presence

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// States of a record.
const (
	Live = "live"
	Left = "left"
)

// Record is a stream's presence record. Metadata and PeerIdentity hold
// JSON text as strings, so their bytes survive encoding unchanged.
type Record struct {
	StreamID     string `json:"id"`
	Name         string `json:"name"`
	Owner        string `json:"owner"`
	Metadata     string `json:"meta"`
	PeerIdentity string `json:"pi,omitempty"`
	Gateway      string `json:"gw"`
	Epoch        uint64 `json:"epoch"`
	State        string `json:"state"`
	LastSeq      uint64 `json:"seq"`
	// Order is the join position: the KV revision of the join write. A
	// join writes 0 and readers use that entry's revision; later writes by
	// the holder carry it explicitly, so a resumed stream keeps its place.
	Order  uint64 `json:"order"`
	LinkID string `json:"link,omitempty"`
}

// Encode returns the record's JSON.
func (r *Record) Encode() []byte {
	b, _ := json.Marshal(r)
	return b
}

// Decode parses a record.
func Decode(b []byte) (Record, error) {
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("decode presence record: %w", err)
	}
	return r, nil
}

// Get reads a record; ok is false when there is none.
func Get(ctx context.Context, kv jetstream.KeyValue, key string) (rec Record, rev uint64, ok bool, err error) {
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Record{}, 0, false, nil
	}
	if err != nil {
		return Record{}, 0, false, err
	}
	rec, err = Decode(e.Value())
	if err != nil {
		return Record{}, 0, false, err
	}
	return rec, e.Revision(), true, nil
}

// Put writes rec with compare-and-set: create when rev is 0, else update
// from rev. It returns the new revision; ErrConflict when someone else
// wrote first.
func Put(ctx context.Context, kv jetstream.KeyValue, key string, rec *Record, rev uint64) (uint64, error) {
	var (
		n   uint64
		err error
	)
	if rev == 0 {
		n, err = kv.Create(ctx, key, rec.Encode())
	} else {
		n, err = kv.Update(ctx, key, rec.Encode(), rev)
	}
	if errors.Is(err, jetstream.ErrKeyExists) || isWrongLastSeq(err) {
		return 0, ErrConflict
	}
	return n, err
}

// ErrConflict: the record changed since it was read.
var ErrConflict = errors.New("presence record changed concurrently")

func isWrongLastSeq(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}

// Liveness publishes this gateway's heartbeat and tracks the others'.
type Liveness struct {
	kv        jetstream.KeyValue
	self      string
	interval  time.Duration
	deadAfter time.Duration
	log       *slog.Logger

	mu   sync.Mutex
	seen map[string]time.Time // gateway -> last heartbeat seen
	// selfSeen is when this gateway's own newest heartbeat was stored, as
	// its watch last showed it: the clock other gateways' silence is
	// measured on (silence).
	selfSeen time.Time
	gone     map[string]time.Time // gateway -> when it was found gone
	loaded   chan struct{}
	onGone   []func(gateway string, since time.Time)
}

// NewLiveness returns a tracker for gateway self.
func NewLiveness(kv jetstream.KeyValue, self string, interval, deadAfter time.Duration, log *slog.Logger) *Liveness {
	return &Liveness{
		kv: kv, self: self, interval: interval, deadAfter: deadAfter, log: log,
		seen: map[string]time.Time{}, gone: map[string]time.Time{}, loaded: make(chan struct{}),
	}
}

// OnGone registers fn to run once for each gateway found gone; since is
// when its last heartbeat was seen (or when it signed off).
func (l *Liveness) OnGone(fn func(gateway string, since time.Time)) {
	l.mu.Lock()
	l.onGone = append(l.onGone, fn)
	l.mu.Unlock()
}

// Loaded is closed once the heartbeats present at start have been read.
func (l *Liveness) Loaded() <-chan struct{} { return l.loaded }

// Alive reports whether a gateway is alive. Unknown gateways are not.
func (l *Liveness) Alive(gateway string) bool {
	if gateway == l.self {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, gone := l.gone[gateway]; gone {
		return false
	}
	t, ok := l.seen[gateway]
	return ok && l.silence(t, time.Now()) < l.deadAfter
}

// silence is how long a gateway last heard at t has been silent; l.mu is
// held. It is measured up to this gateway's own newest heartbeat seen in
// the watch, not up to now: when NATS is overloaded or this gateway's
// watch lags, its own heartbeats fall behind as much as the others', and
// nobody is declared gone for a delay that is this gateway's own. (Left
// to the wall clock, an overloaded NATS had every gateway declare the
// others gone, which ended their streams and lost events.) Before its
// first own heartbeat comes back, it is measured up to now.
func (l *Liveness) silence(t, now time.Time) time.Duration {
	ref := now
	if !l.selfSeen.IsZero() {
		ref = l.selfSeen
	}
	return ref.Sub(t)
}

// GoneSince reports whether a gateway is gone and since when: its sign-off,
// or its last heartbeat when it fell silent. The grace of its streams runs
// from that time. A gateway named before it was ever heard from gets the
// dead-after time from that first mention.
func (l *Liveness) GoneSince(gateway string) (time.Time, bool) {
	if gateway == l.self {
		return time.Time{}, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if t, ok := l.gone[gateway]; ok {
		return t, true
	}
	t, ok := l.seen[gateway]
	if !ok {
		// Named by a record before its first heartbeat reached this
		// gateway (a gateway that just started, or a watch that runs
		// ahead of the heartbeats): it gets the dead-after time from now
		// to be heard, like any silent gateway.
		l.seen[gateway] = time.Now()
		return time.Time{}, false
	}
	if l.silence(t, time.Now()) >= l.deadAfter {
		return t, true
	}
	return time.Time{}, false
}

// Beat writes this gateway's heartbeat once.
func (l *Liveness) Beat(ctx context.Context) error {
	_, err := l.kv.Put(ctx, l.self, []byte(time.Now().UTC().Format(time.RFC3339Nano)))
	return err
}

// SignOff deletes this gateway's heartbeat: the others treat it as gone
// at once, and the grace of its streams starts now.
func (l *Liveness) SignOff(ctx context.Context) error {
	return l.kv.Delete(ctx, l.self)
}

// Run heartbeats and watches until ctx is done.
func (l *Liveness) Run(ctx context.Context) error {
	w, err := l.kv.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("watch gateways: %w", err)
	}
	defer func() { _ = w.Stop() }()
	_ = l.Beat(ctx)
	beat := time.NewTicker(l.interval)
	defer beat.Stop()
	check := time.NewTicker(l.interval / 2)
	defer check.Stop()
	loaded := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-beat.C:
			bctx, cancel := context.WithTimeout(ctx, l.interval)
			if err := l.Beat(bctx); err != nil {
				l.log.Warn("gateway heartbeat failed", "err", err)
			}
			cancel()
		case <-check.C:
			l.sweep()
		case e, ok := <-w.Updates():
			if !ok {
				return nil
			}
			if e == nil {
				if !loaded {
					loaded = true
					close(l.loaded)
					l.sweep()
				}
				continue
			}
			l.observe(e)
		}
	}
}

func (l *Liveness) observe(e jetstream.KeyValueEntry) {
	name := e.Key()
	if name == l.self {
		if e.Operation() == jetstream.KeyValuePut {
			l.mu.Lock()
			l.selfSeen = storedAt(e)
			l.mu.Unlock()
		}
		return
	}
	l.mu.Lock()
	switch e.Operation() {
	case jetstream.KeyValuePut:
		l.seen[name] = storedAt(e)
		delete(l.gone, name)
		l.mu.Unlock()
	default:
		// Signed off: gone from now; its streams get their full grace.
		l.markGone(name, time.Now())
	}
}

// storedAt is when the server stored a heartbeat, no later than now (a
// clock ahead of this gateway's would otherwise keep it alive longer).
func storedAt(e jetstream.KeyValueEntry) time.Time {
	at, now := e.Created(), time.Now()
	if at.After(now) {
		return now
	}
	return at
}

// markGone runs the callbacks for a newly gone gateway; l.mu is held and
// released here.
func (l *Liveness) markGone(name string, since time.Time) {
	if _, done := l.gone[name]; done {
		l.mu.Unlock()
		return
	}
	l.gone[name] = since
	fns := l.onGone
	l.mu.Unlock()
	for _, fn := range fns {
		fn(name, since)
	}
}

func (l *Liveness) sweep() {
	now := time.Now()
	l.mu.Lock()
	var dead []string
	for name, t := range l.seen {
		if _, done := l.gone[name]; !done && l.silence(t, now) >= l.deadAfter {
			// Falls silent: gone since its last heartbeat.
			dead = append(dead, name)
		}
	}
	l.mu.Unlock()
	for _, name := range dead {
		l.mu.Lock()
		l.markGone(name, l.seen[name])
	}
}
