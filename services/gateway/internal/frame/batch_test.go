package frame

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func randomData(r *rand.Rand) string {
	const alphabet = "ab\n\r\t\"\\/é中\x00\x1f {}[],:"
	rs := []rune(alphabet)
	var b strings.Builder
	for range r.IntN(40) {
		b.WriteRune(rs[r.IntN(len(rs))])
	}
	return b.String()
}

// appendBatch builds a batch the way the writer's gateway does.
func appendBatch(b []byte, frames [][]byte) []byte {
	if len(frames) == 1 {
		return append(b, frames[0]...)
	}
	b = append(b, BatchOpen)
	for i, f := range frames {
		if i > 0 {
			b = append(b, BatchSep...)
		}
		b = append(b, f...)
	}
	return append(b, BatchClose)
}

// Token frames hold no raw newline, whatever their data, so batches of
// them split back into the same frames, and a batch is a JSON array.
func TestBatchSplitsIntoItsFrames(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	s := &Stream{ID: "st_1", Name: "out\nput", Owner: "acct", PeerIdentity: `{"name": "a",  "v":[1, 2]}`}
	if !Batchable(s.PeerIdentity) || Batchable("{\n}") {
		t.Fatal("Batchable")
	}
	for n := 1; n <= 40; n++ {
		first := uint64(r.IntN(1_000_000) + 1)
		frames := make([][]byte, n)
		for i := range frames {
			frames[i] = AppendToken(nil, s, time.Unix(int64(i), 0), randomData(r), first+uint64(i))
			if bytes.IndexByte(frames[i], '\n') >= 0 {
				t.Fatalf("token frame with a raw newline: %q", frames[i])
			}
		}
		m := appendBatch(nil, frames)
		if n > 1 {
			var arr []json.RawMessage
			if err := json.Unmarshal(m, &arr); err != nil || len(arr) != n {
				t.Fatalf("batch of %d is not a JSON array of %d: %v", n, len(arr), err)
			}
		}
		var got [][]byte
		if !EachEvent(m, func(f []byte) bool { got = append(got, f); return true }) {
			t.Fatalf("batch of %d: malformed", n)
		}
		if len(got) != n {
			t.Fatalf("batch of %d split into %d", n, len(got))
		}
		for i := range got {
			if !bytes.Equal(got[i], frames[i]) {
				t.Fatalf("frame %d of %d: got %q, want %q", i, n, got[i], frames[i])
			}
		}
		a, b, ok := SeqRange(m)
		if !ok || a != first || b != first+uint64(n)-1 {
			t.Fatalf("SeqRange of %d from %d = %d, %d, %v", n, first, a, b, ok)
		}
		// Stopping early stops.
		calls := 0
		EachEvent(m, func([]byte) bool { calls++; return false })
		if calls != 1 {
			t.Fatalf("fn called %d times after returning false", calls)
		}
	}
}

func TestBatchMalformed(t *testing.T) {
	f := AppendToken(nil, &Stream{ID: "s"}, time.Unix(0, 0), "x", 7)
	for _, m := range []string{"", "[", "[]", "[" + string(f), "[" + string(f) + "\n" + string(f) + "]", "[" + string(f) + ",\n]"} {
		if EachEvent([]byte(m), func([]byte) bool { return true }) {
			t.Errorf("EachEvent(%q) accepted it", m)
		}
		if _, _, ok := SeqRange([]byte(m)); ok {
			t.Errorf("SeqRange(%q) accepted it", m)
		}
	}
	// A batch of one is a batch: its frame comes without the brackets.
	var one [][]byte
	if !EachEvent([]byte("["+string(f)+"]"), func(g []byte) bool { one = append(one, g); return true }) || len(one) != 1 || string(one[0]) != string(f) {
		t.Errorf("a batch of one split into %q", one)
	}
	// Seqs that go down are not a batch.
	g := AppendToken(nil, &Stream{ID: "s"}, time.Unix(0, 0), "x", 6)
	if _, _, ok := SeqRange(appendBatch(nil, [][]byte{f, g})); ok {
		t.Error("SeqRange accepted a batch whose seqs go down")
	}
}
