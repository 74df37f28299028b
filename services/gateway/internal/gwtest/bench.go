package gwtest

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// BenchRawNATS is the baseline of the closed-loop delivery benchmarks:
// core NATS pub/sub of payload on an embedded server, one publisher and
// one subscriber connection, with at most window messages in flight. One
// op is one message received.
func BenchRawNATS(b *testing.B, payload []byte, window int) {
	sys := Start(b, Options{Gateways: -1})
	pub, err := nats.Connect(sys.NATSURL)
	if err != nil {
		b.Fatal(err)
	}
	defer pub.Close()
	sub, err := nats.Connect(sys.NATSURL)
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Close()
	var received atomic.Int64
	done := make(chan struct{})
	progress := make(chan struct{}, 1)
	target := int64(b.N)
	s, err := sub.Subscribe("bench.raw", func(*nats.Msg) {
		if received.Add(1) == target {
			close(done)
		}
		Progress(progress)
	})
	if err != nil {
		b.Fatal(err)
	}
	_ = s.SetPendingLimits(-1, -1)
	_ = sub.Flush()
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for int64(i)-received.Load() >= int64(window) {
			<-progress
		}
		if err := pub.Publish("bench.raw", payload); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		b.Fatalf("received %d of %d", received.Load(), b.N)
	}
}

// Progress tells a closed-loop benchmark's writer, waiting on ch (of
// capacity 1) for its window to open, that a message arrived.
func Progress(ch chan<- struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
