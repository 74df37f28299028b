package benchkit

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestPercentileNearestRank(t *testing.T) {
	t.Parallel()
	ds := []time.Duration{5, 1, 4, 2, 3, 10, 9, 8, 7, 6} // 1..10
	for _, tc := range []struct {
		p    float64
		want time.Duration
	}{
		{0.5, 5}, {0.9, 9}, {0.99, 10}, {0.999, 10}, {0.1, 1}, {0.11, 2}, {1, 10}, {0.0001, 1},
	} {
		if got := Percentile(ds, tc.p); got != tc.want {
			t.Errorf("Percentile(1..10, %v) = %v, want %v", tc.p, got, tc.want)
		}
	}
	if ds[0] != 5 {
		t.Errorf("Percentile sorted its input")
	}
	if got := Percentile(nil, 0.5); got != 0 {
		t.Errorf("Percentile(nil) = %v, want 0", got)
	}
	// 100 values 1..100: p99 is the 99th.
	var hundred []time.Duration
	for i := 100; i >= 1; i-- {
		hundred = append(hundred, time.Duration(i))
	}
	if got := Percentile(hundred, 0.99); got != 99 {
		t.Errorf("p99 of 1..100 = %v, want 99", got)
	}
	if got := Percentile(hundred, 0.999); got != 100 {
		t.Errorf("p99.9 of 1..100 = %v, want 100", got)
	}
}

func TestHistogramBuckets(t *testing.T) {
	t.Parallel()
	// Every value maps to a bucket whose middle is within 1/256 of it, and
	// buckets are monotonic.
	prev := -1
	for _, v := range []int64{0, 1, 127, 128, 255, 256, 257, 511, 512, 1000, 1 << 20, 1<<20 + 12345, 1 << 40, 1<<62 + 7} {
		b := bucketOf(v)
		if b < prev {
			t.Errorf("bucketOf(%d) = %d < previous %d", v, b, prev)
		}
		prev = b
		mid := bucketValue(b)
		if diff := abs64(mid - v); float64(diff) > float64(v)/256+0.5 {
			t.Errorf("value %d: bucket %d middle %d, off by %d", v, b, mid, diff)
		}
	}
	for v := int64(0); v < 256; v++ {
		if bucketValue(bucketOf(v)) != v {
			t.Fatalf("values below 256 are exact: %d -> %d", v, bucketValue(bucketOf(v)))
		}
	}
}

func TestHistogramPercentilesMatchExact(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	var all []time.Duration
	h1, h2 := NewHistogram(), NewHistogram()
	for i := 0; i < 100000; i++ {
		// Log-normal-ish latencies from 1 µs to ~1 s.
		d := time.Duration(float64(time.Microsecond) * (1 + r.ExpFloat64()*r.ExpFloat64()*300))
		all = append(all, d)
		if i%2 == 0 {
			h1.Record(d)
		} else {
			h2.Record(d)
		}
	}
	h1.Merge(h2)
	if h1.Count() != uint64(len(all)) {
		t.Fatalf("Count = %d, want %d", h1.Count(), len(all))
	}
	slices.Sort(all)
	if h1.Max() != all[len(all)-1] {
		t.Errorf("Max = %v, want %v", h1.Max(), all[len(all)-1])
	}
	for _, p := range []float64{0.5, 0.9, 0.99, 0.999, 1} {
		exact := Percentile(all, p)
		got := h1.Percentile(p)
		if diff := abs64(int64(got - exact)); float64(diff) > float64(exact)/128 {
			t.Errorf("p%v: histogram %v, exact %v", p*100, got, exact)
		}
	}
	var sum time.Duration
	for _, d := range all {
		sum += d
	}
	if mean := sum / time.Duration(len(all)); abs64(int64(h1.Mean()-mean)) > int64(mean)/1000 {
		t.Errorf("Mean = %v, want %v", h1.Mean(), mean)
	}
	if NewHistogram().Percentile(0.99) != 0 {
		t.Errorf("an empty histogram's percentile is not 0")
	}
}

func abs64(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}
