package benchkit

// bitset is a growable set of non-negative integers.
type bitset []uint64

func (b *bitset) has(i int64) bool {
	w := int(i >> 6)
	return w < len(*b) && (*b)[w]&(1<<(uint(i)&63)) != 0
}

// add adds i and reports whether it was new.
func (b *bitset) add(i int64) bool {
	w := int(i >> 6)
	if w >= len(*b) {
		n := max(2*len(*b), w+1, 16)
		nb := make(bitset, n)
		copy(nb, *b)
		*b = nb
	}
	m := uint64(1) << (uint(i) & 63)
	if (*b)[w]&m != 0 {
		return false
	}
	(*b)[w] |= m
	return true
}

// Tally accounts what one reader got of one writer's stream, in two
// views:
//
//   - the wire: every token frame by seq. Dups are frames whose seq
//     arrived before; OrderViolations are frames (not dups) whose seq is
//     not the highest seq so far + 1 (a jump over a gap, or a late frame),
//     except where a replay_gap announced the jump.
//   - the application, as a client with a resume cursor sees it: a frame
//     is surfaced only if its seq is above the cursor (the highest seq
//     surfaced so far); else it is dropped as already seen. AppDups are
//     surfaced frames carrying a token the writer already had delivered
//     (the same token index under another seq: a writer's resend that the
//     server accepted twice). Lost is what the writer wrote and was never
//     surfaced.
//
// The writer numbers its tokens k = 1, 2, … in its data; on a fresh stream
// written only with tokens, seq = k. A Tally is not safe for concurrent use.
type Tally struct {
	seqs, ks bitset
	// last is the highest seq of the wire view;
	// Cursor the highest seq surfaced (application view).
	last, Cursor int64

	Frames, Surfaced                 int64
	Dups, OrderViolations, Announced int64
	AppDups, Mismatched              int64
}

// Start sets the position of a stream first seen at lastSeq (from peers
// or stream_joined): its next frame is expected at lastSeq + 1.
func (t *Tally) Start(lastSeq int64) {
	if t.Frames == 0 && t.Cursor == 0 {
		t.last, t.Cursor = lastSeq, lastSeq
	}
}

// Gap records a replay_gap: seqs from requested to firstAvailable - 1 are
// gone, and the next frame is expected at firstAvailable.
func (t *Tally) Gap(requested, firstAvailable int64) {
	if firstAvailable > requested {
		t.Announced += firstAvailable - requested
	}
	t.last = max(t.last, firstAvailable-1)
	t.Cursor = max(t.Cursor, firstAvailable-1)
}

// Observe records a token frame with seq carrying token index k, and
// reports whether the application surfaces it.
func (t *Tally) Observe(seq, k int64) (surfaced bool) {
	t.Frames++
	if !t.seqs.add(seq) {
		t.Dups++
	} else {
		if seq != t.last+1 {
			t.OrderViolations++
		}
		t.last = max(t.last, seq)
	}
	if seq <= t.Cursor {
		return false
	}
	t.Cursor = seq
	t.Surfaced++
	if k != seq {
		t.Mismatched++
	}
	if !t.ks.add(k) {
		t.AppDups++
	}
	return true
}

// Lost is how many of the writer's tokens 1..written were never surfaced.
func (t *Tally) Lost(written int64) int64 {
	var got int64
	for k := int64(1); k <= written; k++ {
		if t.ks.has(k) {
			got++
		}
	}
	return written - got
}

// Totals sums tallies over readers and writers.
type Totals struct {
	Expected, Frames, Surfaced, Lost      int64
	Dups, OrderViolations, Announced      int64
	AppDups, Mismatched, Readers, Streams int64
}

// Add adds one reader's tally of a writer that wrote written tokens.
func (s *Totals) Add(t *Tally, written int64) {
	s.Expected += written
	s.Frames += t.Frames
	s.Surfaced += t.Surfaced
	s.Lost += t.Lost(written)
	s.Dups += t.Dups
	s.OrderViolations += t.OrderViolations
	s.Announced += t.Announced
	s.AppDups += t.AppDups
	s.Mismatched += t.Mismatched
	s.Streams++
}

// DeliveredPct is the share of expected tokens surfaced, in percent.
func (s *Totals) DeliveredPct() float64 {
	if s.Expected == 0 {
		return 100
	}
	return 100 * float64(s.Expected-s.Lost) / float64(s.Expected)
}

// Clean reports no loss, no duplicate and no order violation.
func (s *Totals) Clean() bool {
	return s.Lost == 0 && s.Dups == 0 && s.AppDups == 0 && s.OrderViolations == 0
}
