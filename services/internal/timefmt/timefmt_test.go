package timefmt

import (
	"math/rand/v2"
	"testing"
	"time"
)

// Append writes what Format does, for any time: years at both ends of
// four digits and beyond, leap days, millisecond edges, other zones.
func TestAppendMatchesLayout(t *testing.T) {
	t.Parallel()
	zone := time.FixedZone("x", -(9*3600 + 30*60))
	times := []time.Time{
		{},
		time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999_999_999, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-1, 6, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2024, 2, 29, 12, 0, 0, 999_000_000, time.UTC),
		time.Date(2026, 11, 26, 9, 0, 0, 123_456_789, zone),
		time.Date(2026, 12, 31, 23, 59, 59, 999_999_999, zone),
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 10000 {
		times = append(times, time.Unix(r.Int64N(400*365*86400)-100*365*86400, r.Int64N(1e9)).In(zone))
	}
	for _, tm := range times {
		want := tm.UTC().Format(Layout)
		if got := Format(tm); got != want {
			t.Fatalf("Format(%v) = %q, want %q", tm, got, want)
		}
		if got := string(Append([]byte("x"), tm)); got != "x"+want {
			t.Fatalf("Append(%v) = %q, want %q", tm, got, "x"+want)
		}
	}
}

func TestAppendDoesNotAllocate(t *testing.T) {
	b := make([]byte, 0, 64)
	now := time.Now()
	if n := testing.AllocsPerRun(100, func() { b = Append(b[:0], now) }); n != 0 {
		t.Errorf("Append allocates %v times, want 0", n)
	}
}

func BenchmarkAppend(b *testing.B) {
	buf := make([]byte, 0, 64)
	now := time.Now()
	b.Run("layout", func(b *testing.B) {
		for b.Loop() {
			buf = now.UTC().AppendFormat(buf[:0], Layout)
		}
	})
	b.Run("append", func(b *testing.B) {
		for b.Loop() {
			buf = Append(buf[:0], now)
		}
	})
}
