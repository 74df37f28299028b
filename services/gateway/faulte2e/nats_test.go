package faulte2e

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// NATS restarted mid-stream: two gateways on one NATS server; a writer on
// one, readers on both. The server stops while tokens flow and a new one
// starts on the same port and JetStream directory; one reader loses its
// connection meanwhile. The gateways reconnect, the readers resume with
// their cursors, and both readers get every token written, in order,
// once. The writer sends one token per message, or arrays of four (which
// travel between the gateways as batches).
func TestNATSRestartMidStream(t *testing.T) {
	t.Parallel()
	for _, batch := range []int{1, 4} {
		t.Run(fmt.Sprintf("%d-per-message", batch), func(t *testing.T) {
			t.Parallel()
			natsRestartMidStream(t, batch, false)
		})
	}
	// The new server has an empty JetStream directory: the gateways send
	// the events of the outage and of the second before it again into the
	// new events stream, where the reader that resumes finds them.
	t.Run("store-lost", func(t *testing.T) {
		t.Parallel()
		natsRestartMidStream(t, 1, true)
	})
}

func natsRestartMidStream(t *testing.T, batch int, loseStore bool) {
	sys, credW, credR, link0, link1 := twoGateways(t)

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	f0 := newFollower(t, []string{link0, link1}, credR, "r0", "w")
	f1 := newFollower(t, []string{link1, link0}, credR, "r1", "w")
	wg.Go(func() { f0.run(ctx) })
	wg.Go(func() { f1.run(ctx) })
	const n = 300
	w := &writer{t: t, links: []string{link0, link1}, cred: credW, name: "w", batch: batch}
	written := make(chan struct{})
	wg.Go(func() { defer close(written); w.run(ctx, n, time.Duration(batch)*5*time.Millisecond) })

	f0.waitFor(t, 50, wait)
	start := time.Now()
	sys.StopNATS()
	f1.kick()
	// The outage lasts while the writer writes 50 more tokens.
	for target := w.written() + 50; w.written() < target; {
		if time.Since(start) > wait {
			t.Fatal("the writer stalled during the outage")
		}
		time.Sleep(5 * time.Millisecond) // poll interval
	}
	if loseStore {
		sys.LoseNATSStore(t)
	}
	sys.StartNATS(t)
	t.Logf("NATS down for %s", time.Since(start).Round(time.Millisecond))
	select {
	case <-written:
	case <-time.After(recovery):
		t.Fatalf("the writer did not finish within %s", recovery)
	}
	last := fmt.Sprintf("token-%05d", n-1)
	total := f0.waitLast(t, last, recovery)
	f1.waitFor(t, total, recovery)
	t.Logf("readers caught up %s after the outage began", time.Since(start).Round(time.Millisecond))
	f0.mu.Lock()
	got := append([]string(nil), f0.data...)
	f0.mu.Unlock()
	w.checkTruth(t, got, false)
	f0.check(t, got)
	f1.check(t, got)
	f1.mu.Lock()
	resumed := f1.reconnects > 0
	f1.mu.Unlock()
	if !resumed {
		t.Error("the reader that lost its connection did not resume")
	}
}
