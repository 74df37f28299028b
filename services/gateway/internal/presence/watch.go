package presence

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Watcher delivers the entries of the keys of a bucket that match a
// filter: the newest of each key first, then a nil entry, then every
// change, as jetstream.KeyValue's watch does. It costs a gateway less for
// each conversation it serves: nats.go's watch keeps a 256-entry channel
// (4 KiB) and, given a context, a goroutine that waits for it, and its
// reader needs a goroutine of its own; this one hands each entry to a
// function on the subscription's goroutine, and keeps no other.
type Watcher struct {
	sub  *nats.Subscription
	fn   func(*Entry)
	done chan struct{} // closed by Stop
	stop sync.Once

	mu                    sync.Mutex
	initDone              bool
	received, initPending uint64
	last                  uint64 // revision of the newest entry delivered
}

// Entry is one entry of a watched bucket.
type Entry struct {
	key      string
	value    []byte
	revision uint64
	created  time.Time
	op       jetstream.KeyValueOp
}

// Key returns the entry's key, without the bucket's prefix.
func (e *Entry) Key() string { return e.key }

// Value returns the entry's value.
func (e *Entry) Value() []byte { return e.value }

// Revision returns the entry's revision (its sequence in the bucket's
// stream).
func (e *Entry) Revision() uint64 { return e.revision }

// Created returns when the entry was stored.
func (e *Entry) Created() time.Time { return e.created }

// Operation returns whether the entry is a put, a delete or a purge.
func (e *Entry) Operation() jetstream.KeyValueOp { return e.op }

// Watch watches the keys of bucket that match filter (a key or a pattern
// of keys) through js, an ordered consumer of the bucket's stream. fn gets
// the entries in order on the subscription's goroutine, one at a time:
// the newest of each key, nil, then each change. A slow fn holds up this
// watch's delivery only. After Stop returns fn is not called again, but
// for a call already under way.
func Watch(js nats.JetStreamContext, bucket, filter string, fn func(*Entry)) (*Watcher, error) {
	prefix := "$KV." + bucket + "."
	w := &Watcher{fn: fn, done: make(chan struct{})}
	// The lock orders the callback after the initial count below.
	w.mu.Lock()
	defer w.mu.Unlock()
	sub, err := js.Subscribe(prefix+filter, w.update(prefix), nats.BindStream("KV_"+bucket), nats.OrderedConsumer(),
		nats.DeliverLastPerSubject())
	if err != nil {
		return nil, err
	}
	w.sub = sub
	sub.SetClosedHandler(func(string) { w.Stop() })
	pending, err := sub.InitialConsumerPending()
	if err == nil {
		if pending == 0 {
			w.initDone = true
			w.send(nil)
		} else {
			w.initPending = pending
		}
	}
	return w, nil
}

// WatchChanges watches every key of bucket through js: fn gets the entries
// from revision from on (from 0: from the bucket's newest entry), then
// each change, in order, on the subscription's goroutine, one at a time,
// and no nil marker. It returns the revision it starts at: from, or the
// first when the bucket's stream ends before from (a NATS server that
// lost its store, whose revisions start again). It is one ordered
// consumer over the whole bucket, which the server feeds from its stream
// without searching it; a consumer per pattern of keys costs the server a
// scan of the entries stored since the consumer last delivered, each time
// an entry of its pattern comes.
//
// It starts at an entry that exists, not after it, so that once an entry
// is delivered the consumer knows where it is: if the server loses the
// consumer, nats.go recreates it after the last entry delivered; before
// any, it would start from the bucket's first entry.
func WatchChanges(js nats.JetStreamContext, bucket string, from uint64, fn func(*Entry)) (*Watcher, uint64, error) {
	stream := "KV_" + bucket
	info, err := js.StreamInfo(stream)
	if err != nil {
		return nil, 0, err
	}
	switch st := info.State; {
	case from == 0:
		from = st.LastSeq
	case from > st.LastSeq:
		from = st.FirstSeq
	}
	start := nats.DeliverAll()
	if from > 0 {
		start = nats.StartSequence(from)
	}
	w := &Watcher{fn: fn, done: make(chan struct{}), initDone: true}
	prefix := "$KV." + bucket + "."
	sub, err := js.Subscribe(prefix+">", w.update(prefix), nats.BindStream(stream), nats.OrderedConsumer(), start)
	if err != nil {
		return nil, 0, err
	}
	w.mu.Lock()
	w.sub = sub
	w.mu.Unlock()
	sub.SetClosedHandler(func(string) { w.Stop() })
	return w, from, nil
}

// Origin tells one store of a bucket's stream from another: when the
// stream was created, and its newest revision. A NATS server that lost its
// store (memory storage, or a lost volume) has the stream created again,
// and its revisions start again from 1.
type Origin struct {
	Created time.Time
	Last    uint64
}

// OriginOf returns the origin of bucket's stream.
func OriginOf(js nats.JetStreamContext, bucket string) (Origin, error) {
	info, err := js.StreamInfo("KV_" + bucket)
	if err != nil {
		return Origin{}, err
	}
	return Origin{Created: info.Created, Last: info.State.LastSeq}, nil
}

// Last returns the revision of the newest entry delivered, 0 before any.
func (w *Watcher) Last() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last
}

// Snapshot returns the newest entry of each key of bucket that matches
// filter, through a watch that it stops once they are delivered.
func Snapshot(ctx context.Context, js nats.JetStreamContext, bucket, filter string) ([]*Entry, error) {
	// fn's calls are one at a time, on one goroutine: entries and marked
	// are read by the caller only after loaded is closed, and not written
	// after.
	var entries []*Entry
	marked := false
	loaded := make(chan struct{})
	w, err := Watch(js, bucket, filter, func(e *Entry) {
		switch {
		case marked:
		case e == nil:
			marked = true
			close(loaded)
		default:
			entries = append(entries, e)
		}
	})
	if err != nil {
		return nil, err
	}
	defer w.Stop()
	select {
	case <-loaded:
		return entries, nil
	case <-w.Done():
		return nil, errors.New("presence watch ended while loading")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// update is the subscription's handler: each message, an entry of a key
// after prefix, goes to fn, then, once the initial entries are all
// delivered, the nil marker.
func (w *Watcher) update(prefix string) nats.MsgHandler {
	return func(m *nats.Msg) {
		meta, err := m.Metadata()
		if err != nil || len(m.Subject) <= len(prefix) {
			return
		}
		e := &Entry{key: m.Subject[len(prefix):], value: m.Data, revision: meta.Sequence.Stream,
			created: meta.Timestamp, op: opOf(m.Header)}
		w.mu.Lock()
		defer w.mu.Unlock()
		if !w.send(e) {
			return
		}
		w.last = e.revision
		if !w.initDone {
			w.received++
			if w.received >= w.initPending || meta.NumPending == 0 {
				w.initDone = true
				w.send(nil)
			}
		}
	}
}

// send hands e to fn, or reports false once the watcher stopped; w.mu is
// held, which keeps the calls one at a time.
func (w *Watcher) send(e *Entry) bool {
	select {
	case <-w.done:
		return false
	default:
	}
	w.fn(e)
	return true
}

// Done is closed when the watcher stopped (Stop, or its subscription
// closed with the connection).
func (w *Watcher) Done() <-chan struct{} { return w.done }

// Stop ends the watch.
func (w *Watcher) Stop() {
	w.stop.Do(func() {
		close(w.done)
		if w.sub != nil {
			_ = w.sub.Unsubscribe()
		}
	})
}

// opOf is the operation an entry's headers name (a put has none).
func opOf(h nats.Header) jetstream.KeyValueOp {
	if len(h) == 0 {
		return jetstream.KeyValuePut
	}
	switch h.Get("KV-Operation") {
	case "DEL":
		return jetstream.KeyValueDelete
	case "PURGE":
		return jetstream.KeyValuePurge
	}
	switch h.Get(jetstream.MarkerReasonHeader) {
	case "MaxAge", "Purge":
		return jetstream.KeyValuePurge
	case "Remove":
		return jetstream.KeyValueDelete
	}
	return jetstream.KeyValuePut
}
