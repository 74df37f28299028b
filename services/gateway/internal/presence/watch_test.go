package presence

import (
	"fmt"
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
	w, err := Watch(legacy, "W", "c1.*")
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
		case e := <-w.Updates():
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

// Stop lets go of a watch whose reader stopped reading, with its channel
// full and the subscription's callback waiting to deliver.
func TestWatchStopsWithAFullChannel(t *testing.T) {
	ctx := t.Context()
	nc := natstest.Connect(t)
	js, _ := jetstream.New(nc)
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "W"})
	if err != nil {
		t.Fatal(err)
	}
	legacy, _ := nc.JetStream()
	w, err := Watch(legacy, "W", "c.*")
	if err != nil {
		t.Fatal(err)
	}
	if e := <-w.Updates(); e != nil {
		t.Fatalf("first entry of an empty bucket %v, want the nil marker", e.Key())
	}
	for i := range 3 * updatesCap {
		if _, err := kv.PutString(ctx, fmt.Sprintf("c.k%d", i), "v"); err != nil {
			t.Fatal(err)
		}
	}
	// Wait until the channel is full: the callback is then blocked.
	for deadline := time.Now().Add(10 * time.Second); len(w.Updates()) < updatesCap; {
		if time.Now().After(deadline) {
			t.Fatalf("%d entries queued after 10s, want %d", len(w.Updates()), updatesCap)
		}
		time.Sleep(time.Millisecond)
	}
	stopped := make(chan struct{})
	go func() { w.Stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("Stop did not return within 10s")
	}
	select {
	case <-w.Done():
	default:
		t.Fatal("Done not closed after Stop")
	}
	if w.sub.IsValid() {
		t.Fatal("the subscription is still valid after Stop")
	}
}

func deref(w *watched) any {
	if w == nil {
		return "nil"
	}
	return *w
}
