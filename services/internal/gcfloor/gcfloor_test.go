package gcfloor

import (
	"runtime"
	"runtime/debug"
	"testing"
)

func TestWant(t *testing.T) {
	tu := newTuner(32<<20, 100, nil)
	for _, c := range []struct {
		live, scan uint64
		want       int
	}{
		{live: 2 << 20, scan: 2 << 20, want: 800},    // the runtime's minimum goal: 4 MiB × 8 = 32 MiB
		{live: 4 << 20, scan: 5 << 20, want: 560},    // stacks count towards the goal
		{live: 16 << 20, scan: 16 << 20, want: 100},  // the base already reaches the floor
		{live: 40 << 20, scan: 40 << 20, want: 100},  // above the floor: GOGC as set
		{live: 1 << 10, scan: 1 << 10, want: 800},    // bounded by the minimum goal
		{live: 0, scan: 0, want: 100},                // nothing measured
		{live: 20 << 20, scan: 20 << 20, want: 100},  // 60% wanted, the base is higher
		{live: 10 << 20, scan: 10 << 20, want: 220},  // 10 + 10×2.2 = 32 MiB
		{live: 31 << 20, scan: 31 << 20, want: 100},  // just under the floor
		{live: 32 << 20, scan: 32 << 20, want: 100},  // at the floor
		{live: 3 << 20, scan: 3 << 20, want: 800},    // the minimum goal again
		{live: 8 << 20, scan: 8 << 20, want: 300},    // 8 + 8×3 = 32 MiB
		{live: 12 << 20, scan: 12 << 20, want: 166},  // 12 + 12×1.66 < 32 MiB
		{live: 15 << 20, scan: 15 << 20, want: 113},  // 15 + 15×1.13 < 32 MiB
		{live: 2 << 20, scan: 64 << 20, want: 100},   // huge stacks: the base goal is over the floor
		{live: 5 << 20, scan: 5 << 20, want: 540},    // 5 + 5×5.4 = 32 MiB; 4 × 5.4 < 32
		{live: 1 << 20, scan: 16 << 20, want: 193},   // 1 + 16×1.93 < 32 MiB
		{live: 100 << 20, scan: 90 << 20, want: 100}, // live over the floor
		{live: 0, scan: 256 << 10, want: 800},        // before the first collection: the minimum goal is the floor
	} {
		if got := tu.want(c.live, c.scan); got != c.want {
			t.Errorf("want(%d, %d) = %d, expected %d", c.live, c.scan, got, c.want)
		}
	}
	// A higher base is kept where the floor wants less.
	hi := newTuner(32<<20, 400, nil)
	if got := hi.want(10<<20, 10<<20); got != 400 {
		t.Errorf("base 400: want = %d", got)
	}
	if got := hi.want(1<<20, 1<<20); got != 800 {
		t.Errorf("base 400, 1 MiB live: want = %d", got)
	}
}

func TestNear(t *testing.T) {
	for _, c := range []struct {
		cur, p int
		near   bool
	}{
		{1500, 1500, true},
		{1500, 1450, true}, // within a tenth: left as is
		{1500, 1600, true},
		{1500, 1300, false},
		{1500, 1700, false},
		{100, 105, false}, // the base is left only on purpose
		{105, 100, false}, // and set exactly
		{100, 100, true},
	} {
		if got := near(c.cur, c.p, 100); got != c.near {
			t.Errorf("near(%d, %d) = %v", c.cur, c.p, got)
		}
	}
}

func TestBasePercent(t *testing.T) {
	for _, c := range []struct {
		v    string
		p    int
		tune bool
	}{
		{"", 100, true},
		{"200", 200, true},
		{"50", 50, true},
		{"off", 0, false},
		{"OFF", 0, false},
		{"-1", 0, false},
		{"x", 100, true},
	} {
		p, ok := basePercent(c.v)
		if p != c.p || ok != c.tune {
			t.Errorf("basePercent(%q) = %d, %v", c.v, p, ok)
		}
	}
}

func TestStartOff(t *testing.T) {
	if Start(0) != nil {
		t.Fatal("a floor of 0 started a tuner")
	}
	t.Setenv("GOGC", "off")
	if Start(32<<20) != nil {
		t.Fatal("GOGC=off started a tuner")
	}
	var nilTuner *Tuner
	nilTuner.Stop() // a nil tuner stops without effect
	if nilTuner.Percent() != 0 {
		t.Fatal("nil tuner has a percent")
	}
}

// gcPercent reads the runtime's GC percentage.
func gcPercent() int {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	return p
}

// churn allocates n MiB of garbage in 64 KiB pieces and returns how many
// collections ran meanwhile.
func churn(n int) uint32 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range n * 16 {
		b := make([]byte, 64<<10)
		b[0] = 1
		sink = b
	}
	sink = nil
	runtime.ReadMemStats(&after)
	return after.NumGC - before.NumGC
}

var sink []byte

// TestFloorMakesCollectionsRare runs the tuner in this process: after a
// collection it raises the GC percentage so that the goal reaches the
// floor, allocating garbage then takes far fewer collections than with
// the default, and Stop restores the base.
func TestFloorMakesCollectionsRare(t *testing.T) {
	t.Setenv("GOGC", "")
	defer debug.SetGCPercent(debug.SetGCPercent(100))

	runtime.GC()
	untuned := churn(64)

	adjusted := make(chan struct{}, 16)
	tu := newTuner(64<<20, 100, debug.SetGCPercent)
	tu.adjusted = func() {
		select {
		case adjusted <- struct{}{}:
		default:
		}
	}
	tu.arm()
	runtime.GC() // the sentinel dies; its finalizer tunes and re-arms
	<-adjusted
	if p := gcPercent(); p <= 100 || p != tu.Percent() {
		t.Fatalf("GC percent %d after a collection (tuner: %d), want above 100", p, tu.Percent())
	}
	runtime.GC() // a collection at the new setting: the goal is the floor
	<-adjusted
	tuned := churn(64)
	t.Logf("collections while allocating 64 MiB: %d untuned, %d with a 64 MiB floor (GC percent %d)", untuned, tuned, tu.Percent())
	if tuned*4 > untuned {
		t.Errorf("with the floor %d collections, without %d: want at most a quarter", tuned, untuned)
	}

	// The floor is a floor, not a ceiling taken away: 256 MiB of garbage
	// takes a collection about every 64 MiB.
	if n := churn(256); n < 2 || n > 8 {
		t.Errorf("%d collections while allocating 256 MiB with a 64 MiB floor, want about 4", n)
	}

	tu.Stop()
	if p := gcPercent(); p != 100 {
		t.Fatalf("GC percent %d after Stop, want the base 100", p)
	}
	runtime.GC()
	runtime.GC() // finalizers after Stop do not tune
	if p := gcPercent(); p != 100 {
		t.Fatalf("GC percent %d after Stop and collections", p)
	}
}
