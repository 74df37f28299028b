package streame2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/amsrouter/ams/services/gateway/gatewayd"
	"github.com/amsrouter/ams/services/gateway/internal/dataplane"
	"github.com/amsrouter/ams/services/gateway/internal/gwtest"
	"github.com/amsrouter/ams/services/gateway/internal/limits"
)

// window bounds tokens in flight in a closed-loop benchmark, so a reader
// never overflows its queue and the figure is steady-state throughput.
const window = 512

const benchToken = "The quick brown fox jumps over the lazy dog."

// BenchmarkDeliver measures publish → deliver per token: a WebSocket
// writer and a WebSocket reader on one gateway, or on two gateways, in
// each publish mode; and raw NATS core pub/sub on the same embedded server
// with the same payload and window, as the baseline. One op is one token
// delivered to the reader.
func BenchmarkDeliver(b *testing.B) {
	b.Run("raw-nats", benchRawNATS)
	for _, mode := range []dataplane.PublishMode{dataplane.PublishCore, dataplane.PublishJetStream} {
		for _, gws := range []int{1, 2} {
			b.Run(fmt.Sprintf("gateways=%d/publish=%s", gws, mode), func(b *testing.B) { benchGateway(b, gws, mode) })
		}
	}
}

func benchRawNATS(b *testing.B) {
	gwtest.BenchRawNATS(b, []byte(`{"type":"token","stream_id":"str_0123456789abcdef0123456789","stream_name":"writer","owner_account_id":"acc_01J00000000000000000","ts":"2026-05-01T18:00:05.123Z","data":"`+benchToken+`","seq":1}`), window)
}

func benchGateway(b *testing.B, gateways int, mode dataplane.PublishMode) {
	sys := gwtest.Start(b, gwtest.Options{Gateways: gateways, Gateway: func(_ int, cfg *gatewayd.Config) {
		cfg.Data.Mode = mode
		// The writer goes as fast as the window lets it, far over the
		// default abuse limits (5,000 frames/s per connection).
		cfg.Limits = limits.Unlimited
	}})
	_, credW := sys.CreateAccount(b, 0, "writer")
	_, credR := sys.CreateAccount(b, 0, "reader")
	conv := sys.Mint(b, 0, credW, "writer", `{"alias":"bench"}`)
	link := conv["magic_link"].(string)
	readerLink := onGateway(link, sys.URL(gateways-1))

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	w := benchDial(b, ctx, link, credW, "writer")
	defer w.CloseNow()
	readFrame(b, ctx, w) // joined
	r := benchDial(b, ctx, readerLink, credR, "reader")
	defer r.CloseNow()
	readFrame(b, ctx, r) // joined
	readFrame(b, ctx, w) // stream_joined of the reader

	var received atomic.Int64
	errc := make(chan error, 1)
	target := int64(b.N)
	go func() {
		buf := make([]byte, 0, 4096)
		for received.Load() < target {
			typ, rd, err := r.Reader(ctx)
			if err != nil {
				errc <- err
				return
			}
			buf = buf[:0]
			for {
				if len(buf) == cap(buf) {
					buf = append(buf, 0)[:len(buf)]
				}
				n, err := rd.Read(buf[len(buf):cap(buf)])
				buf = buf[:len(buf)+n]
				if err != nil {
					break
				}
			}
			if typ == websocket.MessageText && strings.HasPrefix(string(buf[:16]), `{"type":"token",`) {
				received.Add(1)
			}
		}
		errc <- nil
	}()

	// The writer's connection is read too, so that a close from the
	// gateway (a limit, a failure) ends the benchmark with its reason.
	werr := make(chan error, 1)
	go func() {
		for {
			if _, _, err := w.Read(ctx); err != nil {
				werr <- err
				return
			}
		}
	}()

	frame := []byte(`{"type":"token","data":"` + benchToken + `"}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for int64(i)-received.Load() >= window {
			select {
			case err := <-errc:
				b.Fatalf("reader: %v after %d of %d", err, received.Load(), b.N)
			case err := <-werr:
				b.Fatalf("writer: %v after %d of %d", err, received.Load(), b.N)
			default:
			}
			time.Sleep(10 * time.Microsecond)
		}
		if err := w.Write(ctx, websocket.MessageText, frame); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-errc; err != nil {
		b.Fatalf("reader: %v after %d of %d", err, received.Load(), b.N)
	}
}

func benchDial(b *testing.B, ctx context.Context, link, cred, name string) *websocket.Conn {
	b.Helper()
	h := http.Header{}
	h.Set("Authorization", "Bearer "+cred)
	h.Set("X-AMS-Stream-Name", name)
	c, _, err := websocket.Dial(ctx, connectURL(link), &websocket.DialOptions{HTTPHeader: h})
	if err != nil {
		b.Fatal(err)
	}
	c.SetReadLimit(1 << 20)
	return c
}

func readFrame(b *testing.B, ctx context.Context, c *websocket.Conn) []byte {
	b.Helper()
	_, m, err := c.Read(ctx)
	if err != nil {
		b.Fatal(err)
	}
	return m
}

// BenchmarkResume1000 measures the time from a reconnect with a cursor to
// caught up, when 1,000 tokens were missed: dial, joined, the replay from
// JetStream and the hand-over to live. It reports p50 and p99 over the
// iterations (one iteration = one resume).
func BenchmarkResume1000(b *testing.B) {
	sys := gwtest.Start(b, gwtest.Options{Gateways: 2})
	_, credW := sys.CreateAccount(b, 0, "writer")
	_, credR := sys.CreateAccount(b, 0, "reader")
	conv := sys.Mint(b, 0, credW, "writer", `{"alias":"resume"}`)
	link := conv["magic_link"].(string)
	readerLink := onGateway(link, sys.URL(1))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	w := benchDial(b, ctx, link, credW, "writer")
	defer w.CloseNow()
	joined := readFrame(b, ctx, w)
	sid := jsonMember(b, joined, "stream_id")
	frame := []byte(`{"type":"token","data":"` + benchToken + `"}`)
	var last int
	durations := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		// 1,000 tokens the reader misses.
		for j := 0; j < 1000; j++ {
			if err := w.Write(ctx, websocket.MessageText, frame); err != nil {
				b.Fatal(err)
			}
		}
		target := last + 1000
		waitStoredSeq(b, sys, readerLink, credR, sid, target)
		b.StartTimer()

		start := time.Now()
		h := http.Header{}
		h.Set("Authorization", "Bearer "+credR)
		h.Set("X-AMS-Stream-Name", "reader")
		h.Set("X-AMS-Resume", fmt.Sprintf("%s:%d", sid, last))
		r, _, err := websocket.Dial(ctx, connectURL(readerLink), &websocket.DialOptions{HTTPHeader: h})
		if err != nil {
			b.Fatal(err)
		}
		r.SetReadLimit(1 << 20)
		got := 0
		for got < 1000 {
			_, m, err := r.Read(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if strings.HasPrefix(string(m), `{"type":"token",`) {
				got++
			}
		}
		durations = append(durations, time.Since(start))
		b.StopTimer()
		_ = r.Close(websocket.StatusNormalClosure, "")
		last = target
		b.StartTimer()
	}
	b.StopTimer()
	sort.Slice(durations, func(i, j int) bool { return durations[i] < durations[j] })
	pct := func(p float64) float64 {
		return float64(durations[int(p*float64(len(durations)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}

// waitStoredSeq polls inspect until the stream's last_seq reaches seq, so
// a resume measures reading back, not waiting for the writer.
func waitStoredSeq(b *testing.B, sys *gwtest.System, link, cred, sid string, seq int) {
	b.Helper()
	i := strings.Index(link, "/")
	_ = i
	deadline := time.Now().Add(30 * time.Second)
	u := strings.Replace(link, "/writer/conversations/", "/v1/writer/conversations/", 1)
	for time.Now().Before(deadline) {
		r := gwtest.DoResponse(b, http.MethodGet, u, nil, "")
		if strings.Contains(string(r.Body), fmt.Sprintf(`"stream_id":"%s"`, sid)) &&
			strings.Contains(string(r.Body), fmt.Sprintf(`"last_seq":%d}`, seq)) {
			return
		}
		time.Sleep(5 * time.Millisecond) // polling a visible condition with a deadline
	}
	b.Fatalf("stream never reached seq %d", seq)
}

func jsonMember(b *testing.B, frame []byte, name string) string {
	var m map[string]any
	if err := json.Unmarshal(frame, &m); err != nil {
		b.Fatal(err)
	}
	s, _ := m[name].(string)
	return s
}
