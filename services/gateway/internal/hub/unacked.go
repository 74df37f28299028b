package hub

import "time"

// unacked is a held stream's log of the events it published that have not
// yet come back to this gateway through its own NATS subscription. A core
// NATS publish is not acknowledged: events in the client's buffer or on
// the wire when the connection to the server breaks are lost, and with
// them seqs would go missing for good. The echo of an event (this
// gateway's in-order delivery of it) shows the server had it and routed it
// to the events stream; until then it stays here, to be published again
// after a reconnect. Frames are kept back to back in one buffer that is
// reused once everything is echoed, so the log costs no allocation per
// event. It is guarded by the stream's wmu.
type unacked struct {
	buf  []byte
	ents []unackedEntry
	head int // ents[:head] are echoed and dropped
}

type unackedEntry struct {
	seq      uint64
	at       int64 // when it was published (Unix ns)
	off, end int
}

// Bounds of the log.
const (
	// maxUnacked bounds a stream's log in bytes. Beyond it, while NATS is
	// connected, the oldest entries are dropped (they were sent on a live
	// connection and are almost surely stored); while it is away, the
	// emit fails.
	maxUnacked = 1 << 20
	// keepUnacked is the buffer capacity an idle stream keeps (shrink).
	keepUnacked = 16 << 10
	// keepEchoed is how long an echoed event is kept still: the echo
	// shows the server routed it, while the events stream stores it a
	// moment later, and a server that stops in between loses it. After a
	// reconnect those are sent again too.
	keepEchoed = time.Second
)

// begin returns the buffer to append the next frame to; commit records
// the frame appended since as seq's event, published at at (Unix ns).
func (u *unacked) begin() []byte { return u.buf }

func (u *unacked) commit(buf []byte, seq uint64, at int64) { u.commitAt(buf, len(u.buf), seq, at) }

// commitAt records buf[off:] as seq's event, published at at (Unix ns):
// the bytes between the previous frame and off (a batch's delimiters)
// belong to no event.
func (u *unacked) commitAt(buf []byte, off int, seq uint64, at int64) {
	u.buf = buf
	u.ents = append(u.ents, unackedEntry{seq, at, off, len(buf)})
}

// pad records bytes appended after the newest frame (a batch's closing
// delimiter); they belong to no event.
func (u *unacked) pad(buf []byte) { u.buf = buf }

// add records a frame built elsewhere.
func (u *unacked) add(f []byte, seq uint64, at int64) { u.commit(append(u.buf, f...), seq, at) }

// newest returns the last frame recorded.
func (u *unacked) newest() []byte {
	e := u.ents[len(u.ents)-1]
	return u.buf[e.off:e.end]
}

// dropNewest forgets the last frame recorded (its publish failed for
// good).
func (u *unacked) dropNewest() {
	e := u.ents[len(u.ents)-1]
	u.ents = u.ents[:len(u.ents)-1]
	u.buf = u.buf[:e.off]
	u.settle()
}

// len returns the number of frames held.
func (u *unacked) len() int { return len(u.ents) - u.head }

// size returns the bytes held.
func (u *unacked) size() int {
	if u.head == len(u.ents) {
		return 0
	}
	return len(u.buf) - u.ents[u.head].off
}

// trim drops the frames of seq ≤ echoed published before before (Unix
// ns), and those from the oldest on beyond maxUnacked (force).
func (u *unacked) trim(echoed uint64, before int64, force bool) {
	for u.head < len(u.ents) && (u.ents[u.head].seq <= echoed && u.ents[u.head].at < before || force && u.size() > maxUnacked) {
		u.head++
	}
	u.settle()
}

// dropFrom forgets the frames of seq ≥ seq (a new incarnation of the
// stream numbers from there).
func (u *unacked) dropFrom(seq uint64) {
	for len(u.ents) > u.head && u.ents[len(u.ents)-1].seq >= seq {
		u.dropNewest()
	}
}

// reset forgets everything.
func (u *unacked) reset() {
	u.head = len(u.ents)
	u.settle()
}

// shrink releases the buffer of an empty log beyond keepUnacked: a busy
// stream keeps its buffer between bursts, an idle one gives it back.
func (u *unacked) shrink() {
	if u.len() == 0 && cap(u.buf) > keepUnacked {
		u.buf, u.ents, u.head = nil, nil, 0
	}
}

// settle reuses the buffer once it is empty and moves the live frames to
// its front once the dropped ones are most of it.
func (u *unacked) settle() {
	switch {
	case u.head == len(u.ents):
		u.buf, u.ents, u.head = u.buf[:0], u.ents[:0], 0
	case u.head >= 64 && 2*u.head >= len(u.ents):
		base := u.ents[u.head].off
		n := copy(u.buf, u.buf[base:])
		u.buf = u.buf[:n]
		m := copy(u.ents, u.ents[u.head:])
		u.ents, u.head = u.ents[:m], 0
		for i := range u.ents {
			u.ents[i].off -= base
			u.ents[i].end -= base
		}
	}
}

// each calls fn with every frame held, oldest first, until fn fails.
func (u *unacked) each(fn func(f []byte, seq uint64) error) error {
	for _, e := range u.ents[u.head:] {
		if err := fn(u.buf[e.off:e.end], e.seq); err != nil {
			return err
		}
	}
	return nil
}
