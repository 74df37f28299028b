package benchkit

import (
	"math"
	"math/bits"
	"slices"
	"time"
)

// Histogram records durations (nanoseconds) in log-linear buckets: values
// below 256 ns exactly, larger ones in 128 buckets per power of two, so a
// reported percentile is within 1/256 of the true one. It is not safe for
// concurrent use: give each goroutine its own and Merge them.
type Histogram struct {
	counts   []uint64
	n        uint64
	min, max int64
	sum      float64
}

// subBits is log2 of the buckets per power of two.
const subBits = 7

// NewHistogram returns an empty histogram.
func NewHistogram() *Histogram {
	return &Histogram{counts: make([]uint64, bucketOf(math.MaxInt64)+1), min: math.MaxInt64}
}

// bucketOf is the bucket of v ≥ 0: v itself below 2^(subBits+1), else
// shift·2^subBits + (v >> shift), where v >> shift has subBits+1 bits.
func bucketOf(v int64) int {
	shift := bits.Len64(uint64(v)) - (subBits + 1)
	if shift < 0 {
		shift = 0
	}
	return shift<<subBits + int(uint64(v)>>shift)
}

// bucketValue is the middle of bucket i's range.
func bucketValue(i int) int64 {
	shift := i>>subBits - 1
	if shift < 0 {
		return int64(i)
	}
	lo := int64(i-shift<<subBits) << shift
	return lo + (int64(1)<<shift)/2
}

// Record adds one value; negative values count as 0.
func (h *Histogram) Record(d time.Duration) {
	v := int64(d)
	if v < 0 {
		v = 0
	}
	h.counts[bucketOf(v)]++
	h.n++
	h.sum += float64(v)
	h.min = min(h.min, v)
	h.max = max(h.max, v)
}

// Merge adds o's values to h.
func (h *Histogram) Merge(o *Histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	h.min = min(h.min, o.min)
	h.max = max(h.max, o.max)
}

// Count is the number of values recorded.
func (h *Histogram) Count() uint64 { return h.n }

// Max is the largest value recorded (0 if none).
func (h *Histogram) Max() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.max)
}

// Mean is the average value (0 if none).
func (h *Histogram) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum / float64(h.n))
}

// Percentile is the nearest-rank p-quantile (0 < p ≤ 1): the smallest
// recorded value v such that at least ⌈p·n⌉ values are ≤ v, as the middle
// of its bucket clamped to the exact min and max. 0 if empty.
func (h *Histogram) Percentile(p float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := nearestRank(p, int(h.n))
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= uint64(rank) {
			v := bucketValue(i)
			return time.Duration(min(max(v, h.min), h.max))
		}
	}
	return time.Duration(h.max)
}

// nearestRank is ⌈p·n⌉ within 1..n.
func nearestRank(p float64, n int) int {
	r := int(math.Ceil(p*float64(n) - 1e-9))
	return min(max(r, 1), n)
}

// Percentile is the exact nearest-rank p-quantile of ds (0 < p ≤ 1): the
// smallest value v such that at least ⌈p·n⌉ values are ≤ v. 0 if empty.
// ds is not modified.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[nearestRank(p, len(s))-1]
}
