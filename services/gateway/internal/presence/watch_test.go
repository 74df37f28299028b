package presence

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/amsrouter/ams/services/internal/natsserver/natstest"
)

// watched is what a test compares of an entry.
type watched struct {
	key, value string
	rev        uint64
	op         jetstream.KeyValueOp
}

// Watch delivers what jetstream's own watch of the same keys delivers, in
// the same order: the newest entry of each matching key, the nil marker,
// then puts and deletes, and nothing of other keys.
func TestWatchDeliversWhatKVWatchDoes(t *testing.T) {
	ctx := t.Context()
	nc := natstest.Connect(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "W", History: 1})
	if err != nil {
		t.Fatal(err)
	}
	put := func(key, value string) {
		t.Helper()
		if _, err := kv.PutString(ctx, key, value); err != nil {
			t.Fatal(err)
		}
	}
	put("c1.a", "1")
	put("c1.a", "2")
	put("c1.b", "x")
	put("c2.a", "other conversation")

	legacy, err := nc.JetStream()
	if err != nil {
		t.Fatal(err)
	}
	ours := make(chan *Entry, 64)
	w, err := Watch(legacy, "W", "c1.*", func(e *Entry) { ours <- e })
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	theirs, err := kv.Watch(ctx, "c1.*")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = theirs.Stop() }()

	next := func() (got, want *watched) {
		t.Helper()
		deadline := time.After(10 * time.Second)
		select {
		case e := <-ours:
			if e != nil {
				got = &watched{e.Key(), string(e.Value()), e.Revision(), e.Operation()}
			}
		case <-deadline:
			t.Fatal("no entry from Watch within 10s")
		}
		select {
		case e := <-theirs.Updates():
			if e != nil {
				want = &watched{e.Key(), string(e.Value()), e.Revision(), e.Operation()}
			}
		case <-deadline:
			t.Fatal("no entry from the KV watch within 10s")
		}
		return got, want
	}
	same := func(step string, n int) {
		t.Helper()
		for range n {
			got, want := next()
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("%s: got %v, the KV watch %v", step, deref(got), deref(want))
			}
		}
	}
	same("initial entries and the marker", 3) // c1.a=2, c1.b=x, nil
	put("c2.a", "still the other conversation")
	put("c1.b", "y")
	if err := kv.Delete(ctx, "c1.a"); err != nil {
		t.Fatal(err)
	}
	if err := kv.Purge(ctx, "c1.b"); err != nil {
		t.Fatal(err)
	}
	same("changes", 3) // c1.b=y, c1.a deleted, c1.b purged
}

// Stop returns while the function is busy with an entry, and the entries
// queued behind it are not delivered.
func TestWatchStopsWithEntriesQueued(t *testing.T) {
	ctx := t.Context()
	nc := natstest.Connect(t)
	js, _ := jetstream.New(nc)
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "W"})
	if err != nil {
		t.Fatal(err)
	}
	legacy, _ := nc.JetStream()
	var (
		mu   sync.Mutex
		keys []string
	)
	marker, busy, release := make(chan struct{}), make(chan struct{}), make(chan struct{})
	w, err := Watch(legacy, "W", "c.*", func(e *Entry) {
		if e == nil {
			close(marker)
			return
		}
		mu.Lock()
		keys = append(keys, e.Key())
		first := len(keys) == 1
		mu.Unlock()
		if first {
			close(busy)
			<-release
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	w.sub.SetClosedHandler(func(string) { w.Stop(); close(exited) })
	<-marker
	for i := range 3 {
		if _, err := kv.PutString(ctx, fmt.Sprintf("c.k%d", i), "v"); err != nil {
			t.Fatal(err)
		}
	}
	<-busy
	// Wait until messages are queued behind the busy call: the other two
	// entries, or the consumer's own.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		if n, _, _ := w.sub.Pending(); n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("two entries not queued within 10s")
		}
	}
	stopped := make(chan struct{})
	go func() { w.Stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("Stop did not return within 10s while the function was busy")
	}
	select {
	case <-w.Done():
	default:
		t.Fatal("Done not closed after Stop")
	}
	close(release)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatal("the subscription's delivery did not end within 10s of Stop")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(keys) != 1 {
		t.Fatalf("entries delivered %v, want only the one under way at Stop", keys)
	}
}

func deref(w *watched) any {
	if w == nil {
		return "nil"
	}
	return *w
}

// WatchChanges delivers the bucket's newest entry (or the one it is told),
// then every change of every key in order, with no marker; Snapshot
// returns the newest entry of each key of its pattern. Neither leaves a
// consumer behind once stopped.
func TestWatchChangesAndSnapshot(t *testing.T) {
	ctx := t.Context()
	nc := natstest.Connect(t)
	js, _ := jetstream.New(nc)
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "W", History: 8})
	if err != nil {
		t.Fatal(err)
	}
	put := func(key, value string) uint64 {
		t.Helper()
		rev, err := kv.PutString(ctx, key, value)
		if err != nil {
			t.Fatal(err)
		}
		return rev
	}
	put("c1.a", "old")
	newest := put("c2.a", "newest before the watch")
	legacy, _ := nc.JetStream()
	changes := make(chan *Entry, 64)
	w, start, err := WatchChanges(legacy, "W", 0, func(e *Entry) { changes <- e })
	if err != nil || start != newest {
		t.Fatalf("WatchChanges from the newest entry: starts at %d, %v; want %d", start, err, newest)
	}
	defer w.Stop()
	want := []watched{{"c2.a", "newest before the watch", newest, jetstream.KeyValuePut}}
	want = append(want, watched{"c1.a", "1", put("c1.a", "1"), jetstream.KeyValuePut})
	want = append(want, watched{"c3.b", "x", put("c3.b", "x"), jetstream.KeyValuePut})
	want = append(want, watched{"c1.b", "y", put("c1.b", "y"), jetstream.KeyValuePut})
	if err := kv.Delete(ctx, "c3.b"); err != nil {
		t.Fatal(err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, watched{"c3.b", "", st.(*jetstream.KeyValueBucketStatus).StreamInfo().State.LastSeq, jetstream.KeyValueDelete})
	for i, w := range want {
		select {
		case e := <-changes:
			if e == nil {
				t.Fatalf("change %d: a nil entry", i)
			}
			got := watched{e.Key(), string(e.Value()), e.Revision(), e.Operation()}
			if got != w {
				t.Fatalf("change %d: got %v, want %v", i, got, w)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("change %d (%v) not delivered within 10s", i, w)
		}
	}
	if last := want[len(want)-1].rev; w.Last() != last {
		t.Fatalf("Last() = %d, want %d", w.Last(), last)
	}
	w.Stop()
	// From a revision: that entry and each after it. From beyond the
	// stream's end (a server that lost its store): from the first.
	again := make(chan *Entry, 64)
	w2, start, err := WatchChanges(legacy, "W", want[3].rev, func(e *Entry) { again <- e })
	if err != nil || start != want[3].rev {
		t.Fatalf("WatchChanges from %d: starts at %d, %v", want[3].rev, start, err)
	}
	defer w2.Stop()
	for _, w := range want[3:] {
		select {
		case e := <-again:
			if got := (watched{e.Key(), string(e.Value()), e.Revision(), e.Operation()}); got != w {
				t.Fatalf("watch from %d: got %v, want %v", want[3].rev, got, w)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("watch from %d: %v not delivered within 10s", want[3].rev, w)
		}
	}
	w3, start, err := WatchChanges(legacy, "W", want[4].rev+100, func(*Entry) {})
	if err != nil || start != 1 {
		t.Fatalf("WatchChanges from beyond the end: starts at %d, %v; want the first, 1", start, err)
	}
	w3.Stop()
	w2.Stop()

	snap, err := Snapshot(ctx, legacy, "W", "c1.*")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range snap {
		got = append(got, fmt.Sprintf("%s=%s@%d", e.Key(), e.Value(), e.Revision()))
	}
	if fmt.Sprint(got) != fmt.Sprintf("[c1.a=1@%d c1.b=y@%d]", want[1].rev, want[3].rev) {
		t.Fatalf("snapshot of c1.*: %v", got)
	}
	if snap, err := Snapshot(ctx, legacy, "W", "c9.*"); err != nil || len(snap) != 0 {
		t.Fatalf("snapshot of keys never written: %v, %v", snap, err)
	}
	// The stopped watches and the snapshots left no consumer behind.
	info, err := legacy.StreamInfo("KV_W")
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Consumers != 0 {
		t.Fatalf("%d consumers on the bucket after the watches stopped and two snapshots, want 0", info.State.Consumers)
	}
}
