// Package gcfloor keeps the garbage collector's heap goal at or above a
// floor.
//
// Go sets the next heap goal from the live heap: with GOGC=100 the heap
// may grow to about twice what survived the last collection. A gateway
// that routes tokens keeps a live heap of a few MiB but allocates tens of
// MiB a second on its token path, so it collects ten times a second or
// more. Each collection marks for several milliseconds, taking a share of
// the CPU and slowing the goroutines it enlists, which shows in the tail
// of the delivery latency. A floor of a few tens of MiB makes those
// collections rare, while a large live heap (many idle connections) is
// paced by GOGC exactly as before: the floor only ever raises the goal,
// and only while the goal would be below it.
//
// The tuner runs once after each collection, on the runtime's finalizer
// goroutine, reads the live heap and the scanned stacks and globals from
// runtime/metrics and sets the GC percentage that puts the next goal at
// the floor, or the base percentage (GOGC) when that is higher. A memory
// limit (GOMEMLIMIT) still applies over both.
package gcfloor

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// heapMinimum is the runtime's smallest heap goal at GOGC=100 (its
// defaultHeapMinimum). The runtime scales it with the percentage, so the
// goal is never under heapMinimum × percent / 100: a percentage above
// floor × 100 / heapMinimum would put the goal over the floor.
const heapMinimum = 4 << 20

// Tuner holds the goal at the floor. Stop it to restore the base.
type Tuner struct {
	floor   uint64
	base    int
	percent atomic.Int64 // what the tuner last set
	samples []metrics.Sample

	mu      sync.Mutex // orders set calls and stopped
	stopped atomic.Bool
	// set is debug.SetGCPercent; tests record calls.
	set func(int) int
	// adjusted, if set, is called after each tuning by a finalizer, once
	// the next sentinel is armed (tests): a collection started after it
	// finds that sentinel unreachable.
	adjusted func()
}

// Start starts a tuner with the given floor in bytes. It returns nil (and
// does nothing) when floor is 0 or the collector is off (GOGC=off).
func Start(floor uint64) *Tuner {
	base, ok := basePercent(os.Getenv("GOGC"))
	if floor == 0 || !ok {
		return nil
	}
	t := newTuner(floor, base, debug.SetGCPercent)
	t.adjust()
	t.arm()
	return t
}

func newTuner(floor uint64, base int, set func(int) int) *Tuner {
	t := &Tuner{floor: floor, base: base, set: set, samples: []metrics.Sample{
		{Name: "/gc/heap/live:bytes"},
		{Name: "/gc/scan/stack:bytes"},
		{Name: "/gc/scan/globals:bytes"},
	}}
	t.percent.Store(int64(base))
	return t
}

// basePercent reads GOGC as the runtime does: empty is 100, "off" turns
// the collector off.
func basePercent(v string) (int, bool) {
	if v == "" {
		return 100, true
	}
	if strings.EqualFold(v, "off") {
		return 0, false
	}
	p, err := strconv.Atoi(v)
	if err != nil {
		return 100, true // the runtime ignores a malformed GOGC too
	}
	if p < 0 {
		return 0, false
	}
	return p, true
}

// Percent is the GC percentage the tuner last set.
func (t *Tuner) Percent() int {
	if t == nil {
		return 0
	}
	return int(t.percent.Load())
}

// Stop restores the base percentage and tunes no more.
func (t *Tuner) Stop() {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped.Swap(true) {
		return
	}
	t.set(t.base)
	t.percent.Store(int64(t.base))
}

// sentinel is an object whose finalizer runs after the collection that
// found it unreachable. It holds a pointer, so that it is not a tiny
// allocation batched with others, whose finalizer might never run.
type sentinel struct {
	t *Tuner
	_ [16]byte
}

// arm allocates a fresh sentinel; its finalizer tunes and re-arms.
func (t *Tuner) arm() {
	s := &sentinel{t: t}
	runtime.SetFinalizer(s, func(s *sentinel) {
		if s.t.stopped.Load() {
			return
		}
		s.t.adjust()
		s.t.arm()
		if s.t.adjusted != nil {
			s.t.adjusted()
		}
	})
}

// adjust sets the percentage for the next cycle from the last one's
// live heap.
func (t *Tuner) adjust() {
	metrics.Read(t.samples)
	var v [3]uint64
	for i, s := range t.samples {
		if s.Value.Kind() == metrics.KindUint64 {
			v[i] = s.Value.Uint64()
		}
	}
	p := t.want(v[0], v[0]+v[1]+v[2])
	t.mu.Lock()
	if !near(int(t.percent.Load()), p, t.base) && !t.stopped.Load() {
		t.set(p)
		t.percent.Store(int64(p))
	}
	t.mu.Unlock()
}

// want is the percentage for a live heap of live bytes, of which scan
// bytes count towards the goal (live heap, stacks and globals): the
// runtime's goal is live + scan × percent / 100, and at least
// heapMinimum × percent / 100.
func (t *Tuner) want(live, scan uint64) int {
	if scan == 0 || live >= t.floor {
		return t.base
	}
	p := (t.floor - live) * 100 / scan
	p = min(p, t.floor*100/heapMinimum)
	return max(int(p), t.base)
}

// near reports whether the percentage set, cur, is close enough to the
// wanted one, p, to leave as it is: within a tenth, so that small moves
// of the live heap do not call into the runtime after every collection.
// The base itself is always set exactly.
func near(cur, p, base int) bool {
	if cur == p {
		return true
	}
	if cur == base || p == base {
		return false
	}
	d := cur - p
	if d < 0 {
		d = -d
	}
	return d*10 <= p
}
