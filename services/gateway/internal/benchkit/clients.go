package benchkit

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The resilient clients of the fault scenarios (avalanche, kill, jitter)
// behave as an application on the SDK would: a lost connection is
// redialled (rotating over the gateways it knows, with a short backoff)
// and resumed. A reader presents its cursor and drops frames at or below
// it; a writer learns from `joined.last_seq` what the server accepted and
// re-sends its tokens from there, so that every token it meant to write is
// written exactly once.

// backoff is the wait before reconnect attempt n (0: at once).
func backoff(n int) time.Duration {
	if n == 0 {
		return 0
	}
	return min(time.Second, 25*time.Millisecond<<min(n, 6))
}

// Writer is a resilient writer of one stream at a fixed rate: its token k
// (1-based) is due at Start + (k-1)/Rate and stamped with that time.
type Writer struct {
	Index      int
	Name, Cred string
	URLs       []string
	Rate       float64
	Env        *Env

	// Total is how many tokens the writer writes in all; SetTotal may
	// lower it while the writer runs.
	Total int64
	start time.Time

	sent      atomic.Int64 // highest k written to a socket
	confirmed atomic.Int64 // highest k the server confirmed (pong after it)
	// StreamID is the writer's stream (after the first join).
	StreamID   string
	Reconnects atomic.Int64

	mu   sync.Mutex
	conn *WSConn
}

// SetTotal changes how many tokens the writer writes in all.
func (w *Writer) SetTotal(n int64) { atomic.StoreInt64(&w.Total, n) }

func (w *Writer) total() int64 { return atomic.LoadInt64(&w.Total) }

// Sent is the highest token index written to a socket so far.
func (w *Writer) Sent() int64 { return w.sent.Load() }

// Join connects the first time and returns the stream id.
func (w *Writer) Join(ctx context.Context) (Joined, error) {
	c, j, err := w.dial(ctx, 0)
	if err != nil {
		return j, err
	}
	w.StreamID = j.StreamID
	w.mu.Lock()
	w.conn = c
	w.mu.Unlock()
	return j, nil
}

func (w *Writer) dial(ctx context.Context, attempt int) (*WSConn, Joined, error) {
	empty := ""
	return dialJoined(ctx, DialOptions{URL: w.URLs[attempt%len(w.URLs)], Credential: w.Cred, StreamName: w.Name,
		Subscribe: &empty, Batch: true, LocalIP: w.Env.localIP(w.Index), Timeout: 3 * time.Second})
}

// Abort drops the current connection without a close handshake.
func (w *Writer) Abort() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.conn != nil {
		_ = w.conn.Abort()
	}
}

// Run writes tokens 1..Total on schedule from start, reconnecting and
// re-sending as needed, until the server has confirmed all of them or ctx
// ends. The first connection is the one Join made.
func (w *Writer) Run(ctx context.Context, start time.Time) error {
	w.start = start
	attempt := 0
	w.mu.Lock()
	c := w.conn
	w.mu.Unlock()
	next := int64(1)
	for ctx.Err() == nil {
		if c == nil {
			time.Sleep(backoff(attempt))
			var j Joined
			var err error
			c, j, err = w.dial(ctx, attempt)
			attempt++
			if err != nil {
				continue
			}
			w.Reconnects.Add(1)
			w.mu.Lock()
			w.conn = c
			w.mu.Unlock()
			// Re-send what the server did not accept.
			next = j.LastSeq + 1
		}
		attempt = 0
		done, err := w.session(ctx, c, &next)
		_ = c.Abort()
		c = nil
		if done {
			return nil
		}
		_ = err
	}
	return ctx.Err()
}

// session writes on one connection until all tokens are confirmed (done)
// or the connection fails.
func (w *Writer) session(ctx context.Context, c *WSConn, next *int64) (done bool, err error) {
	dead := make(chan error, 1)
	pong := make(chan struct{}, 1)
	go func() {
		for {
			msg, err := c.ReadMessage()
			if err != nil {
				dead <- err
				return
			}
			EachFrame(msg, func(f []byte) bool {
				if string(FrameType(f)) == "pong" {
					poke(pong)
				}
				return true
			})
		}
	}()
	buf := make([]byte, 0, 64<<10)
	data := make([]byte, 0, 64)
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	pinged := false
	for {
		now := time.Now()
		total := w.total()
		due := min(total, int64(now.Sub(w.start).Seconds()*w.Rate)+1)
		if *next <= due {
			n := min(due-*next+1, maxBatch)
			buf = buf[:0]
			buf = append(buf, '[')
			for i := range n {
				k := *next + i
				if i > 0 {
					buf = append(buf, ',')
				}
				ts := w.start.UnixNano() + int64(float64(k-1)/w.Rate*float64(time.Second))
				data = AppendData(data[:0], w.Index, k, ts, MinTokenSize)
				buf = AppendTokenFrame(buf, data)
			}
			buf = append(buf, ']')
			if err := c.WriteText(buf); err != nil {
				return false, err
			}
			*next += n
			if *next-1 > w.sent.Load() {
				w.sent.Store(*next - 1)
			}
			continue
		}
		if *next > total && !pinged {
			// All written: a ping's pong confirms the server took them.
			if err := c.WriteText([]byte(`{"type":"ping"}`)); err != nil {
				return false, err
			}
			pinged = true
		}
		wait := time.Second
		if *next <= total {
			wait = time.Until(w.start.Add(time.Duration(float64(*next-1) / w.Rate * float64(time.Second))))
		}
		t.Reset(max(wait, 0))
		select {
		case err := <-dead:
			return false, err
		case <-pong:
			if pinged {
				w.confirmed.Store(total)
				return true, nil
			}
		case <-t.C:
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
}

// Reader is a resilient reader of a conversation's writers.
type Reader struct {
	Index      int
	Name, Cred string
	URLs       []string
	Env        *Env
	// WriterOf maps the writers' stream ids (of this conversation) to
	// their index; other streams are not accounted.
	WriterOf map[string]int
	Batch    bool

	mu      sync.Mutex
	streams map[string]*readStream
	conn    *WSConn
	hist    *Histogram

	// Joins counts joined frames, Resumed those with resumed:true.
	Joins, Resumed atomic.Int64
	// Surfaced counts the tokens surfaced, over all writers.
	Surfaced atomic.Int64
	// lastDrop is when the connection was last lost (UnixNano); Outages
	// the time from a loss to the next joined.
	lastDrop atomic.Int64
	outages  []time.Duration
	// joinedAt is when the current connection got joined (UnixNano);
	// joinKind says whether it resumed; anomalies describes the first
	// gaps and duplicates seen (under mu).
	joinedAt  atomic.Int64
	joinKind  string
	anomalies []string
	// connectErrs counts failed connects by reason (under mu).
	connectErrs map[string]int
	// watch, if set, is called (under mu) after each join and each
	// message; the avalanche uses it to time catching up.
	watch func(r *Reader)
}

// Streams returns the reader's tallies by writer index (call after Run
// returned).
func (r *Reader) Streams() map[int]*Tally {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[int]*Tally{}
	for _, st := range r.streams {
		out[st.w] = &st.tally
	}
	return out
}

// Cursor returns the highest seq surfaced of writer w's stream.
func (r *Reader) Cursor(w int) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, st := range r.streams {
		if st.w == w {
			return st.tally.Cursor
		}
	}
	return 0
}

// Outages returns the times from a lost connection to the next joined.
func (r *Reader) Outages() []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Duration(nil), r.outages...)
}

// Abort drops the current connection without a close handshake.
func (r *Reader) Abort() {
	r.mu.Lock()
	c := r.conn
	r.mu.Unlock()
	if c != nil {
		_ = c.Abort()
	}
}

// Close closes the current connection with a handshake.
func (r *Reader) Close() {
	r.mu.Lock()
	c := r.conn
	r.conn = nil
	r.mu.Unlock()
	if c != nil {
		_ = c.Close()
	}
}

func (r *Reader) cursor() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	for sid, st := range r.streams {
		if !st.known {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(sid)
		b.WriteByte(':')
		b.WriteString(strconv.FormatInt(st.tally.Cursor, 10))
	}
	return b.String()
}

// Join connects the first time (no cursor).
func (r *Reader) Join(ctx context.Context) error {
	r.streams = map[string]*readStream{}
	r.hist = NewHistogram()
	for sid, w := range r.WriterOf {
		r.streams[sid] = &readStream{w: w}
	}
	_, err := r.connect(ctx, 0)
	return err
}

func (r *Reader) connect(ctx context.Context, attempt int) (*WSConn, error) {
	c, j, err := dialJoined(ctx, DialOptions{URL: r.URLs[attempt%len(r.URLs)], Credential: r.Cred, StreamName: r.Name,
		Resume: r.cursor(), Batch: r.Batch, LocalIP: r.Env.localIP(r.Index), Timeout: 3 * time.Second})
	if err != nil {
		return nil, err
	}
	now := time.Now()
	r.mu.Lock()
	r.conn = c
	r.joinedAt.Store(now.UnixNano())
	r.joinKind = "fresh"
	if j.Resumed {
		r.joinKind = "resumed"
	}
	if d := r.lastDrop.Swap(0); d != 0 {
		r.outages = append(r.outages, now.Sub(time.Unix(0, d)))
	}
	for _, p := range j.Peers {
		if st := r.streams[p.StreamID]; st != nil && !st.known {
			st.known = true
			st.tally.Start(p.LastSeq)
		}
	}
	r.mu.Unlock()
	r.Joins.Add(1)
	if j.Resumed {
		r.Resumed.Add(1)
	}
	r.mu.Lock()
	if r.watch != nil {
		r.watch(r)
	}
	r.mu.Unlock()
	return c, nil
}

// Run reads, reconnecting after any loss, until ctx ends or stop is
// closed (then it closes the connection with a handshake).
func (r *Reader) Run(ctx context.Context, stop <-chan struct{}) {
	r.mu.Lock()
	c := r.conn
	r.mu.Unlock()
	attempt := 0
	for {
		if c == nil {
			select {
			case <-stop:
				return
			case <-ctx.Done():
				return
			case <-time.After(backoff(attempt)):
			}
			var err error
			c, err = r.connect(ctx, attempt)
			attempt++
			if err != nil {
				r.mu.Lock()
				if r.connectErrs == nil {
					r.connectErrs = map[string]int{}
				}
				r.connectErrs[errReason(err)]++
				r.mu.Unlock()
				continue
			}
			attempt = 0
		}
		err := r.session(c)
		select {
		case <-stop:
			return
		default:
		}
		if err != nil && r.lastDrop.Load() == 0 {
			r.lastDrop.Store(time.Now().UnixNano())
		}
		_ = c.Abort()
		r.mu.Lock()
		if r.conn == c {
			r.conn = nil
		}
		r.mu.Unlock()
		c = nil
	}
}

func (r *Reader) session(c *WSConn) error {
	for {
		msg, err := c.ReadMessage()
		if err != nil {
			return err
		}
		now := time.Now().UnixNano()
		r.mu.Lock()
		var n int64
		EachToken(msg, func(f []byte, tok *Token) bool {
			if tok == nil {
				r.other(f)
				return true
			}
			sid, seq, data := tok.StreamID, tok.Seq, tok.Data
			st := r.streams[string(sid)]
			if st == nil {
				return true
			}
			_, k, ts, ok := ParseData(data)
			if !ok {
				return true
			}
			before, dups := st.tally.OrderViolations, st.tally.Dups
			expected := st.tally.last + 1
			if st.tally.Observe(seq, k) {
				r.hist.Record(time.Duration(now - ts))
				n++
			}
			if st.tally.OrderViolations != before || st.tally.Dups != dups {
				r.anomaly(fmt.Sprintf("reader %d, writer %d (%s): seq %d where %d was next, %s after join %d (%s)",
					r.Index, st.w, sid, seq, expected, time.Duration(now-r.joinedAt.Load()).Round(time.Microsecond), r.Joins.Load(), r.joinKind))
			}
			return true
		})
		if r.watch != nil {
			r.watch(r)
		}
		r.mu.Unlock()
		r.Surfaced.Add(n)
	}
}

// anomaly records a gap or duplicate (under mu), the first few only.
func (r *Reader) anomaly(s string) {
	if len(r.anomalies) < 5 {
		r.anomalies = append(r.anomalies, s)
	}
}

// Anomalies returns the first gaps and duplicates the reader saw.
func (r *Reader) Anomalies() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.anomalies...)
}

// other handles membership and gap frames (under mu).
func (r *Reader) other(f []byte) {
	switch string(FrameType(f)) {
	case "stream_joined":
		var s Stream
		if decodeFrame(f, &s) == nil {
			if st := r.streams[s.StreamID]; st != nil && !st.known {
				st.known = true
				st.tally.Start(s.LastSeq)
			}
		}
	case "replay_gap":
		var g ReplayGap
		if decodeFrame(f, &g) == nil {
			if st := r.streams[g.StreamID]; st != nil {
				st.tally.Gap(g.RequestedSeq, g.FirstAvailableSeq)
				r.anomaly(fmt.Sprintf("reader %d, writer %d: replay_gap requested %d, first available %d", r.Index, st.w, g.RequestedSeq, g.FirstAvailableSeq))
			}
		}
	}
}

// Latency returns the reader's latency histogram (surfaced tokens).
func (r *Reader) Latency() *Histogram {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hist
}

// faultTotals sums the readers' tallies against the writers' totals.
func faultTotals(readers []*Reader, writers []*Writer) (Totals, *Histogram) {
	var t Totals
	h := NewHistogram()
	for _, r := range readers {
		h.Merge(r.Latency())
		for w, ta := range r.Streams() {
			t.Add(ta, writers[w].total())
		}
	}
	return t, h
}

// allCaughtUp reports whether every reader surfaced every writer's last
// token.
func allCaughtUp(readers []*Reader, writers []*Writer) bool {
	for _, r := range readers {
		r.mu.Lock()
		for _, st := range r.streams {
			if st.tally.Cursor < writers[st.w].total() {
				r.mu.Unlock()
				return false
			}
		}
		r.mu.Unlock()
	}
	return true
}

func describeUnfinished(readers []*Reader, writers []*Writer) string {
	n := 0
	first := ""
	for _, r := range readers {
		for w, ta := range r.Streams() {
			if ta.Cursor < writers[w].total() {
				n++
				if first == "" {
					first = fmt.Sprintf("reader %d at %d of writer %d's %d", r.Index, ta.Cursor, w, writers[w].total())
				}
			}
		}
	}
	return fmt.Sprintf("%d reader streams behind (first: %s)", n, first)
}

// errReason is an error's text without the numbers (addresses, ports,
// durations) that make each one different, for counting by kind.
func errReason(err error) string {
	b := []byte(err.Error())
	out := make([]byte, 0, len(b))
	for i, c := range b {
		if c >= '0' && c <= '9' {
			if i > 0 && b[i-1] >= '0' && b[i-1] <= '9' {
				continue
			}
			c = '#'
		}
		out = append(out, c)
	}
	if len(out) > 120 {
		out = out[:120]
	}
	return string(out)
}

// ConnectErrors returns the reader's failed connects by reason.
func (r *Reader) ConnectErrors() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]int, len(r.connectErrs))
	for k, v := range r.connectErrs {
		out[k] = v
	}
	return out
}
