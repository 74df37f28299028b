package dataplane

import (
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/amsrouter/ams/services/gateway/internal/frame"
	"github.com/amsrouter/ams/services/gateway/internal/subject"
)

type recordingObserver struct {
	mu     sync.Mutex
	acks   []time.Duration
	errors []string
}

func (o *recordingObserver) PublishError(stage string) {
	o.mu.Lock()
	o.errors = append(o.errors, stage)
	o.mu.Unlock()
}

func (o *recordingObserver) PublishAcked(d time.Duration) {
	o.mu.Lock()
	o.acks = append(o.acks, d)
	o.mu.Unlock()
}

// An event published with PublishEvent carries its message id and its
// ingest time to subscribers; a second publish of the same seq is still a
// duplicate to JetStream; in JetStream mode each store acknowledgement is
// observed with the time since ingest.
func TestPublishEventCarriesIngestAndReplayDedupes(t *testing.T) {
	t.Parallel()
	obs := &recordingObserver{}
	p := startPlane(t, Config{Memory: true, Mode: PublishJetStream, Observer: obs})
	s := streamIDs(1)[0]
	subj, _ := subject.Event(conv, s)
	got := make(chan *nats.Msg, 4)
	sub, err := p.Conn().Subscribe(subj, func(m *nats.Msg) { got <- m })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	ingest := time.Now().Add(-time.Millisecond)
	f := frame.AppendToken(nil, &frame.Stream{ID: s}, ingest, "t", 1)
	for i := 0; i < 2; i++ { // the second is a stale writer's duplicate
		if err := p.PublishEvent(subj, f, ingest, nats.Header{"Traceparent": {"x"}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if id := m.Header.Get(jetstream.MsgIDHeader); id != "" {
			t.Errorf("live event carries Nats-Msg-Id %q", id)
		}
		if at := IngestOf(m.Header); at != ingest.UnixNano() {
			t.Errorf("ingest = %d, want %d", at, ingest.UnixNano())
		}
		if m.Header.Get("Traceparent") != "x" {
			t.Errorf("extra header lost: %v", m.Header)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no event")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, err := p.events.Info(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		obs.mu.Lock()
		acks := len(obs.acks)
		obs.mu.Unlock()
		if info.State.Msgs == 2 && acks == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stored %d events (want 2), %d acks observed (want 2)", info.State.Msgs, acks)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The stale writer's duplicate is stored, and replay drops it.
	n := 0
	if _, err := p.Replay(t.Context(), subj, 1, nil, func([]byte, uint64) error { n++; return nil }); err != nil || n != 1 {
		t.Fatalf("replayed %d events (%v), want the duplicate dropped", n, err)
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	for _, d := range obs.acks {
		if d < time.Millisecond || d > 10*time.Second {
			t.Errorf("ack latency %v, want at least the 1ms since ingest", d)
		}
	}
	if len(obs.errors) != 0 {
		t.Errorf("publish errors %v", obs.errors)
	}
}

func TestIngestOfIgnoresMissingOrBadHeaders(t *testing.T) {
	t.Parallel()
	for _, h := range []nats.Header{nil, {}, {IngestHeader: {""}}, {IngestHeader: {"abc"}}, {IngestHeader: {"-5"}}} {
		if got := IngestOf(h); got != 0 {
			t.Errorf("IngestOf(%v) = %d, want 0", h, got)
		}
	}
	if got := IngestOf(nats.Header{IngestHeader: {"1764100000000000000"}}); got != 1764100000000000000 {
		t.Errorf("IngestOf = %d", got)
	}
}
