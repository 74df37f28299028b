package dataplane

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/amsrouter/ams/services/gateway/internal/frame"
	"github.com/amsrouter/ams/services/gateway/internal/subject"
	"github.com/amsrouter/ams/services/internal/natsserver/natstest"
)

func startPlane(t testing.TB, cfg Config) *Plane {
	t.Helper()
	nc := natstest.Connect(t)
	p, err := Open(context.Background(), nc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

const conv = "conv_01J0000000000000000A"

func streamIDs(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("str_%026x", i+1)
	}
	return out
}

// publish emits n events on each stream, interleaved, and waits until the
// events stream stored them all.
func publish(t *testing.T, p *Plane, streams []string, n int) {
	t.Helper()
	for seq := uint64(1); seq <= uint64(n); seq++ {
		for _, s := range streams {
			subj, _ := subject.Event(conv, s)
			f := frame.AppendToken(nil, &frame.Stream{ID: s, Name: "n", Owner: "acc_X"}, time.Now(), fmt.Sprintf("%s-%d", s, seq), seq)
			if err := p.Publish(subj, f, MsgID(s, seq)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := p.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitStored(t, p, streams, uint64(n))
}

// waitStored polls until the newest stored event of every stream is seq n.
func waitStored(t testing.TB, p *Plane, streams []string, n uint64) {
	deadline := time.Now().Add(10 * time.Second)
	for _, s := range streams {
		subj, _ := subject.Event(conv, s)
		for {
			last, err := p.LastSeq(context.Background(), subj)
			if err != nil {
				t.Fatal(err)
			}
			if last == n {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("stream %s stored up to %d, want %d", s, last, n)
			}
			time.Sleep(2 * time.Millisecond) // polling a visible condition with a deadline
		}
	}
}

func collect(t *testing.T, p *Plane, s string, from uint64) ([]uint64, uint64) {
	t.Helper()
	subj, _ := subject.Event(conv, s)
	var got []uint64
	first, err := p.Replay(t.Context(), subj, from, nil, func(f []byte, seq uint64) error {
		if want := fmt.Sprintf(`"data":"%s-%d"`, s, seq); !contains(f, want) {
			t.Fatalf("frame %s lacks %s", f, want)
		}
		got = append(got, seq)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got, first
}

func contains(b []byte, s string) bool {
	return len(s) <= len(b) && string(b) != "" && indexOf(b, s) >= 0
}

func indexOf(b []byte, s string) int {
	for i := 0; i+len(s) <= len(b); i++ {
		if string(b[i:i+len(s)]) == s {
			return i
		}
	}
	return -1
}

func checkRange(t *testing.T, got []uint64, from, to uint64) {
	t.Helper()
	if len(got) != int(to-from+1) {
		t.Fatalf("got %d events, want %d (%d..%d)", len(got), to-from+1, from, to)
	}
	for i, s := range got {
		if s != from+uint64(i) {
			t.Fatalf("event %d has seq %d, want %d", i, s, from+uint64(i))
		}
	}
}

func TestReplayInterleaved(t *testing.T) {
	for _, mode := range []PublishMode{PublishCore, PublishJetStream} {
		t.Run(string(mode), func(t *testing.T) {
			p := startPlane(t, Config{Mode: mode, Memory: true})
			ss := streamIDs(3)
			publish(t, p, ss, 700)
			for _, from := range []uint64{1, 2, 255, 256, 257, 513, 699, 700} {
				got, first := collect(t, p, ss[1], from)
				if first != 1 {
					t.Fatalf("first available %d", first)
				}
				checkRange(t, got, from, 700)
			}
			if got, _ := collect(t, p, ss[0], 701); len(got) != 0 {
				t.Fatalf("replay past the end returned %d", len(got))
			}
			subj, _ := subject.Event(conv, ss[2])
			if last, err := p.LastSeq(t.Context(), subj); err != nil || last != 700 {
				t.Fatalf("LastSeq = %d, %v", last, err)
			}
			unknown, _ := subject.Event(conv, "str_ffffffffffffffffffffffffff")
			if last, err := p.LastSeq(t.Context(), unknown); err != nil || last != 0 {
				t.Fatalf("LastSeq of unknown = %d, %v", last, err)
			}
		})
	}
}

// Retention by events per stream evicts the oldest; replay reports the
// first available seq.
func TestReplayAfterEviction(t *testing.T) {
	p := startPlane(t, Config{Memory: true, MaxEvents: 100})
	ss := streamIDs(2)
	publish(t, p, ss, 250)
	got, first := collect(t, p, ss[0], 1)
	if first != 151 {
		t.Fatalf("first available = %d, want 151", first)
	}
	checkRange(t, got, 151, 250)
	got, _ = collect(t, p, ss[1], 200)
	checkRange(t, got, 200, 250)
}

// A publish that straddles a NATS reconnect can be stored ahead of the
// events its gateway sends again after it (the hub's unacked log): replay
// still yields every seq once, in order, from any start. A seq that never
// comes is a real gap: the events after it still come, in order.
func TestReplayReordered(t *testing.T) {
	p := startPlane(t, Config{Memory: true})
	s := streamIDs(1)[0]
	subj, _ := subject.Event(conv, s)
	stored := []uint64{1, 2, 3, 6, 5, 4, 5, 6, 7, 8, 10, 11} // 9 never stored
	for _, seq := range stored {
		f := frame.AppendToken(nil, &frame.Stream{ID: s, Name: "n", Owner: "acc_X"}, time.Now(), fmt.Sprintf("%s-%d", s, seq), seq)
		if err := p.PublishEvent(subj, f, time.Time{}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitStored(t, p, []string{s}, 11)
	for from := uint64(1); from <= 11; from++ {
		got, _ := collect(t, p, s, from)
		var want []uint64
		for seq := max(from, 1); seq <= 11; seq++ {
			if seq != 9 {
				want = append(want, seq)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("replay from %d: %v, want %v", from, got, want)
		}
	}
}

func BenchmarkReplay1000(b *testing.B) {
	p := startPlane(b, Config{})
	ss := streamIDs(4)
	for seq := uint64(1); seq <= 5000; seq++ {
		for _, s := range ss {
			subj, _ := subject.Event(conv, s)
			_ = p.Publish(subj, frame.AppendToken(nil, &frame.Stream{ID: s}, time.Now(), "token text", seq), MsgID(s, seq))
		}
	}
	_ = p.Flush(context.Background())
	waitStored(b, p, ss, 5000)
	subj, _ := subject.Event(conv, ss[2])
	for b.Loop() {
		n := 0
		_, _ = p.Replay(context.Background(), subj, 4001, nil, func([]byte, uint64) error { n++; return nil })
		if n != 1000 {
			b.Fatalf("replayed %d", n)
		}
	}
}
