package benchkit

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestTally(t *testing.T) {
	t.Parallel()
	type frame struct{ seq, k int64 }
	for _, tc := range []struct {
		name     string
		start    int64
		frames   []frame
		gap      [2]int64 // replay_gap before the frames, if set
		written  int64
		want     Tally
		lost     int64
		surfaced []bool
	}{
		{
			name:    "in order",
			frames:  []frame{{1, 1}, {2, 2}, {3, 3}},
			written: 3,
			want:    Tally{Frames: 3, Surfaced: 3, Cursor: 3},
		},
		{
			name:    "missing tail is lost",
			frames:  []frame{{1, 1}, {2, 2}},
			written: 5,
			want:    Tally{Frames: 2, Surfaced: 2, Cursor: 2},
			lost:    3,
		},
		{
			name:     "duplicate frame dropped by the cursor",
			frames:   []frame{{1, 1}, {2, 2}, {2, 2}, {3, 3}},
			written:  3,
			want:     Tally{Frames: 4, Surfaced: 3, Dups: 1, Cursor: 3},
			surfaced: []bool{true, true, false, true},
		},
		{
			name:     "gap then late frame: order violations, the late one lost to the app",
			frames:   []frame{{1, 1}, {3, 3}, {2, 2}, {4, 4}},
			written:  4,
			want:     Tally{Frames: 4, Surfaced: 3, OrderViolations: 2, Cursor: 4},
			lost:     1,
			surfaced: []bool{true, true, false, true},
		},
		{
			name:    "resend accepted twice is an app dup",
			frames:  []frame{{1, 1}, {2, 2}, {3, 2}, {4, 3}},
			written: 3,
			want:    Tally{Frames: 4, Surfaced: 4, AppDups: 1, Mismatched: 2, Cursor: 4},
		},
		{
			name:    "joined late at last_seq 10",
			start:   10,
			frames:  []frame{{11, 11}, {12, 12}},
			written: 12,
			want:    Tally{Frames: 2, Surfaced: 2, Cursor: 12},
			lost:    10,
		},
		{
			name:    "announced replay gap is not an order violation",
			gap:     [2]int64{1, 5},
			frames:  []frame{{5, 5}, {6, 6}},
			written: 6,
			want:    Tally{Frames: 2, Surfaced: 2, Announced: 4, Cursor: 6},
			lost:    4,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var ta Tally
			ta.Start(tc.start)
			if tc.gap != [2]int64{} {
				ta.Gap(tc.gap[0], tc.gap[1])
			}
			var surfaced []bool
			for _, f := range tc.frames {
				surfaced = append(surfaced, ta.Observe(f.seq, f.k))
			}
			if diff := cmp.Diff(tc.want, ta, cmpopts.IgnoreUnexported(Tally{})); diff != "" {
				t.Errorf("tally (-want +got):\n%s", diff)
			}
			if got := ta.Lost(tc.written); got != tc.lost {
				t.Errorf("Lost(%d) = %d, want %d", tc.written, got, tc.lost)
			}
			if tc.surfaced != nil {
				if diff := cmp.Diff(tc.surfaced, surfaced); diff != "" {
					t.Errorf("surfaced (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func TestTotals(t *testing.T) {
	t.Parallel()
	var a, b Tally
	for k := int64(1); k <= 100; k++ {
		a.Observe(k, k)
		if k != 50 {
			b.Observe(k, k)
		}
	}
	b.Observe(100, 100) // a duplicate
	var s Totals
	s.Add(&a, 100)
	s.Add(&b, 100)
	want := Totals{Expected: 200, Frames: 200, Surfaced: 199, Lost: 1, Dups: 1, OrderViolations: 1, Streams: 2}
	if diff := cmp.Diff(want, s); diff != "" {
		t.Errorf("totals (-want +got):\n%s", diff)
	}
	if got := s.DeliveredPct(); got != 99.5 {
		t.Errorf("DeliveredPct = %v, want 99.5", got)
	}
	if s.Clean() {
		t.Errorf("Clean with a loss and a duplicate")
	}
	var clean Totals
	clean.Add(&a, 100)
	if !clean.Clean() || clean.DeliveredPct() != 100 {
		t.Errorf("a complete stream is not clean: %+v", clean)
	}
}

func TestBitsetGrows(t *testing.T) {
	t.Parallel()
	var b bitset
	for _, i := range []int64{0, 63, 64, 1000, 1 << 20} {
		if b.has(i) || !b.add(i) || !b.has(i) || b.add(i) {
			t.Errorf("bitset add/has of %d", i)
		}
	}
	if b.has(65) {
		t.Errorf("has(65) without add")
	}
}
