package grpce2e

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amsv1 "github.com/amsrouter/ams/proto/gen/go/ams/v1"
	"github.com/amsrouter/ams/services/gateway/gatewayd"
	"github.com/amsrouter/ams/services/gateway/internal/gwtest"
	"github.com/amsrouter/ams/services/gateway/internal/limits"
)

// benchWindow bounds tokens in flight in the closed loop, so that the
// reader never overflows its queue and the figure is steady-state.
const benchWindow = 512

const benchToken = "The quick brown fox jumps over the lazy dog."

// BenchmarkGRPCDeliver measures publish → deliver per token from a gRPC
// Connect writer to a gRPC Connect reader, on one gateway or across two;
// raw NATS core pub/sub of a token frame with the same window is the
// baseline of the same run. One op is one token delivered. With a window
// of 512 tokens in flight it is throughput; with a window of 1 (each
// token sent once the one before arrived) it is the latency of one token
// through the whole path.
func BenchmarkGRPCDeliver(b *testing.B) {
	payload := []byte(`{"type":"token","stream_id":"str_0123456789abcdef0123456789","stream_name":"writer","owner_account_id":"acc_01J00000000000000000","ts":"2026-05-01T18:00:05.123Z","data":"` + benchToken + `","seq":1}`)
	for _, window := range []int{benchWindow, 1} {
		b.Run(fmt.Sprintf("window=%d/raw-nats", window), func(b *testing.B) { gwtest.BenchRawNATS(b, payload, window) })
		for _, gws := range []int{1, 2} {
			b.Run(fmt.Sprintf("window=%d/gateways=%d", window, gws), func(b *testing.B) { benchGRPC(b, gws, window) })
		}
	}
}

func benchGRPC(b *testing.B, gateways, window int) {
	sys := gwtest.Start(b, gwtest.Options{Gateways: gateways, Gateway: func(_ int, cfg *gatewayd.Config) {
		cfg.Limits = limits.Unlimited // the writer goes as fast as the window lets it
	}})
	_, credW := sys.CreateAccount(b, 0, "writer")
	_, credR := sys.CreateAccount(b, 0, "reader")
	link := sys.Mint(b, 0, credW, "writer", `{"alias":"bench"}`)["magic_link"].(string)
	w := connect(b, gw(b, sys, 0), connectOpts{credential: credW, link: link, streamName: "writer"})
	w.joined()
	r := connect(b, gw(b, sys, gateways-1), connectOpts{credential: credR, link: link, streamName: "reader", noRead: true})
	// Tokens count from the reader's joined on: one sent before it may be
	// history that joined lists as the writer's last_seq (spec 4.5).
	if f, err := r.stream.Recv(); err != nil || kind(f) != "joined" {
		b.Fatalf("reader: %v, %v, want joined", f, err)
	}
	w.expect("stream_joined") // the reader

	var received atomic.Int64
	// others counts the reader's frames that are not tokens, by kind, for
	// a run that fails (a replay_gap would say tokens were lost).
	var othersMu sync.Mutex
	others := map[string]int{}
	errc := make(chan error, 1)
	progress := make(chan struct{}, 1)
	target := int64(b.N)
	go func() {
		for received.Load() < target {
			f, err := r.stream.Recv()
			if err != nil {
				errc <- err
				return
			}
			if _, ok := f.GetFrame().(*amsv1.ServerFrame_Token); ok {
				received.Add(1)
				gwtest.Progress(progress)
				continue
			}
			othersMu.Lock()
			others[kind(f)]++
			othersMu.Unlock()
		}
		errc <- nil
	}()
	// A run that stops delivering fails with what it got rather than
	// waiting for the test binary's timeout.
	stalled := make(chan int64, 1)
	watchDone := make(chan struct{})
	defer close(watchDone)
	go func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		last, still := received.Load(), 0
		for {
			select {
			case <-watchDone:
				return
			case <-tick.C:
			}
			if now := received.Load(); now != last || now >= target {
				last, still = now, 0
				continue
			}
			if still++; still == 30 {
				stalled <- last
				return
			}
		}
	}()
	frame := &amsv1.ClientFrame{Frame: &amsv1.ClientFrame_Token{Token: &amsv1.Token{Data: benchToken}}}
	b.ReportAllocs()
	b.SetBytes(int64(len(benchToken)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for int64(i)-received.Load() >= int64(window) {
			select {
			case err := <-errc:
				b.Fatalf("reader: %v after %d of %d", err, received.Load(), b.N)
			case n := <-stalled:
				othersMu.Lock()
				b.Fatalf("no token delivered for 30 s, after %d of %d sent; the reader's other frames: %v", n, i, others)
			case <-progress:
			}
		}
		if err := w.stream.Send(frame); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case err := <-errc:
		if err != nil {
			b.Fatalf("reader: %v after %d of %d", err, received.Load(), b.N)
		}
	case n := <-stalled:
		othersMu.Lock()
		b.Fatalf("no token delivered for 30 s, after %d of %d; the reader's other frames: %v", n, b.N, others)
	}
	b.StopTimer()
	// The reader's Recv loop is done: the cleanup's reader may take over.
	r.startReading()
}
