package dataplane

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/amsrouter/ams/services/gateway/internal/frame"
	"github.com/amsrouter/ams/services/gateway/internal/subject"
	"github.com/amsrouter/ams/services/internal/natsserver/natstest"
)

// publishBatch publishes the events of seqs from..to of stream s as one
// message, a batch when it holds more than one.
func publishBatch(t *testing.T, p *Plane, s string, from, to uint64) {
	t.Helper()
	subj, _ := subject.Event(conv, s)
	var m []byte
	if from < to {
		m = append(m, frame.BatchOpen)
	}
	for seq := from; seq <= to; seq++ {
		if seq > from {
			m = append(m, frame.BatchSep...)
		}
		m = frame.AppendToken(m, &frame.Stream{ID: s, Name: "n", Owner: "acc_X"}, time.Now(), fmt.Sprintf("%s-%d", s, seq), seq)
	}
	if from < to {
		m = append(m, frame.BatchClose)
	}
	if err := p.PublishEvent(subj, m, time.Time{}, nil); err != nil {
		t.Fatal(err)
	}
}

// Events stored in batches of any size replay one by one from any start,
// including one inside a batch, interleaved with another stream's
// messages; the last seq is the last event of the newest batch.
func TestReplayBatches(t *testing.T) {
	p := startPlane(t, Config{Memory: true})
	ss := streamIDs(2)
	r := rand.New(rand.NewPCG(3, 4))
	const n = 300
	for next := uint64(1); next <= n; {
		to := min(next+uint64(r.IntN(9)), n)
		publishBatch(t, p, ss[0], next, to)
		publishBatch(t, p, ss[1], next, next) // a single event in between
		next = to + 1
	}
	if err := p.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitStored(t, p, ss[:1], n)
	for from := uint64(1); from <= n+1; from++ {
		got, first := collect(t, p, ss[0], from)
		if first != 1 {
			t.Fatalf("from %d: first available %d, want 1", from, first)
		}
		if from <= n {
			checkRange(t, got, from, n)
		} else if len(got) != 0 {
			t.Fatalf("from %d: replayed %v", from, got)
		}
	}
}

// max_events bounds the events of a stream, not its messages: batches
// keep more events in JetStream than the bound, and replay serves only
// the newest max_events of them, reporting the first of those.
func TestReplayBatchesWithinMaxEvents(t *testing.T) {
	p := startPlane(t, Config{Memory: true, MaxEvents: 100})
	s := streamIDs(1)[0]
	for from := uint64(1); from <= 250; from += 10 {
		publishBatch(t, p, s, from, from+9)
	}
	if err := p.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitStored(t, p, []string{s}, 250)
	got, first := collect(t, p, s, 1)
	if first != 151 {
		t.Fatalf("first available = %d, want 151", first)
	}
	checkRange(t, got, 151, 250)
	got, _ = collect(t, p, s, 205)
	checkRange(t, got, 205, 250)
}

// Batches that overlap, come out of order or miss a seq (a writer's
// gateway that sent its log again after a reconnect) replay every seq
// once, in order; the missing seq is a gap the rest continues after.
func TestReplayBatchesReordered(t *testing.T) {
	p := startPlane(t, Config{Memory: true})
	s := streamIDs(1)[0]
	for _, b := range [][2]uint64{{1, 3}, {6, 7}, {4, 5}, {4, 8}, {10, 12}, {12, 14}} { // 9 never stored
		publishBatch(t, p, s, b[0], b[1])
	}
	if err := p.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitStored(t, p, []string{s}, 14)
	for from := uint64(1); from <= 14; from++ {
		got, _ := collect(t, p, s, from)
		var want []uint64
		for seq := from; seq <= 14; seq++ {
			if seq != 9 {
				want = append(want, seq)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("replay from %d: %v, want %v", from, got, want)
		}
	}
}

// A resume a few events behind the newest finds its start in a lookup or
// two, not in log2 of the whole events stream that every stream shares
// (an avalanche of resumes made thousands of such searches at once).
// Uneven streams still replay right, within twice the halving's lookups.
func TestReplaySearchLookups(t *testing.T) {
	p := startPlane(t, Config{Memory: true})
	ss := streamIDs(40)
	const n = 200
	// ss[0] writes in two bursts, at the start and at the end; the others
	// evenly throughout.
	burst := ss[0]
	for seq := uint64(1); seq <= n/2; seq++ {
		publishBatch(t, p, burst, seq, seq)
	}
	for seq := uint64(1); seq <= n; seq++ {
		for _, s := range ss[1:] {
			publishBatch(t, p, s, seq, seq)
		}
	}
	for seq := uint64(n/2 + 1); seq <= n; seq++ {
		publishBatch(t, p, burst, seq, seq)
	}
	if err := p.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitStored(t, p, ss, n)
	lookups := func(s string, from uint64) int64 {
		t.Helper()
		before := p.lookups.Load()
		got, _ := collect(t, p, s, from)
		checkRange(t, got, from, n)
		return p.lookups.Load() - before
	}
	for _, behind := range []uint64{1, 2, 5, 20} {
		if k := lookups(ss[7], n-behind); k > 2 {
			t.Errorf("resume %d behind the newest of an even stream: %d lookups, want at most 2", behind, k)
		}
	}
	// Halving would take about log2(8,000) = 13 lookups.
	const bound = 2*13 + 2
	for from := uint64(1); from <= n; from += 7 {
		for _, s := range []string{burst, ss[20]} {
			if k := lookups(s, from); k > bound {
				t.Errorf("%s from %d: %d lookups, want at most %d", s, from, k, bound)
			}
		}
	}
}

// Replays can read on a connection of their own (Config.ReadConn), apart
// from the one that publishes and keeps the records.
func TestReplayOnReadConn(t *testing.T) {
	srv := natstest.Start(t)
	conns := []*nats.Conn{natstest.ConnectTo(t, srv), natstest.ConnectTo(t, srv)}
	p, err := Open(t.Context(), conns[0], Config{Memory: true, ReadConn: conns[1]})
	if err != nil {
		t.Fatal(err)
	}
	ss := streamIDs(2)
	publish(t, p, ss, 300)
	before := conns[1].Stats().InMsgs
	got, first := collect(t, p, ss[1], 120)
	if first != 1 {
		t.Fatalf("first available %d", first)
	}
	checkRange(t, got, 120, 300)
	if conns[1].Stats().InMsgs == before {
		t.Fatal("the replay read nothing on the read connection")
	}
}
