package benchkit

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"golang.org/x/sync/errgroup"
)

// Shape is the shape of a stream load: Conversations, each with Writers
// writing and Readers reading every writer.
type Shape struct {
	Conversations    int
	Writers, Readers int
	// Size is the token data size in bytes.
	Size int
	// Rate is the total written tokens/s over all writers, evenly spread;
	// 0 runs a closed loop.
	Rate float64
	// Window bounds a closed loop: the tokens in flight to the average
	// reader, over all its writers (each writer's share: Window/Writers).
	// Keep it well under the gateway's outbound queue (1024 frames).
	Window int
	// RateWindow, if set, is the bound at a fixed rate instead of Window.
	// There it only guards against the kit's own stalls: a writer that
	// waits for one reader a window behind delays every reader's tokens,
	// so a tight bound makes one slow reader everyone's latency.
	RateWindow int
	// Duration is how long writers write; latencies and rates count the
	// tokens sent after Warmup.
	Duration, Warmup time.Duration
	// Batch makes readers ask for arrays of frames (writers always batch).
	Batch bool
}

func (s Shape) String() string {
	mode := fmt.Sprintf("closed loop (window %d)", s.Window)
	if s.Rate > 0 {
		mode = fmt.Sprintf("fixed rate %s tokens/s written", rate(s.Rate))
		if s.RateWindow > 0 {
			mode += fmt.Sprintf(" (window %d)", s.RateWindow)
		}
	}
	return fmt.Sprintf("%d writer(s) → %d reader(s) in each of %d conversation(s), %d-byte tokens, %s, %s (first %s not counted)",
		s.Writers, s.Readers, s.Conversations, s.Size, mode, s.Duration, s.Warmup)
}

// LoadResult is what one load run measured.
type LoadResult struct {
	// Window is the measured time: Duration - Warmup.
	Window time.Duration
	// Written counts all tokens written; WrittenInWindow those sent in the
	// window.
	Written, WrittenInWindow int64
	// Lat holds the publish → deliver latency of every delivery of a token
	// sent in the window; its count over Window is the delivered rate.
	Lat *Histogram
	// Totals accounts every token of every writer at every reader.
	Totals Totals
	// Closes lists unexpected connection ends (slow_consumer, …).
	Closes []string
	// GatewayCPU is each gateway's CPU use during the window in % of one
	// core; KitCPU this process's (clients, NATS, services).
	GatewayCPU []float64
	KitCPU     float64
	// NATSCPU is the NATS server's CPU use (its worker process; -1 when it
	// runs in the kit).
	NATSCPU float64
	// GatewayWait, NATSWait and KitWait are how the threads of each
	// process waited on a run queue for a core during the window; Pct < 0
	// where it could not be read.
	GatewayWait       []CoreWait
	NATSWait, KitWait CoreWait
	// Undrained is set when not every token reached every reader within
	// the drain deadline.
	Undrained bool
	// WindowHeld is the time fixed-rate writers waited, summed over the
	// writers, because a reader was a window behind.
	WindowHeld time.Duration
}

// DeliveredRate is deliveries per second in the window.
func (r *LoadResult) DeliveredRate() float64 { return float64(r.Lat.Count()) / r.Window.Seconds() }

// WrittenRate is tokens written per second in the window.
func (r *LoadResult) WrittenRate() float64 { return float64(r.WrittenInWindow) / r.Window.Seconds() }

// pacer decides when a writer may send: at a fixed rate from start, or
// in a closed loop; either way within its tokens in flight to its slowest
// reader.
type pacer struct {
	rate       float64 // tokens/s of this writer; 0: closed loop
	window     int64
	start, end time.Time
	// got holds, per reader of the writer's conversation, how many of
	// the writer's tokens it received.
	got  []*atomic.Int64
	wake chan struct{} // poked by readers after deliveries
	// held sums the time a fixed-rate writer waited on the window
	// (nanoseconds): time its tokens' latency includes for a reader
	// that fell behind.
	held *atomic.Int64
}

// room is how many more tokens a closed-loop writer that sent sent may
// send: the window less what its slowest reader has not got yet. The
// bound is per reader: with a bound on the readers' total, one reader the
// scheduler left behind could fall further back than the gateway's queue
// holds and be closed slow_consumer.
func (p *pacer) room(sent int64) int64 {
	least := int64(1<<63 - 1)
	for _, g := range p.got {
		least = min(least, g.Load())
	}
	return p.window - (sent - least)
}

// next blocks until tokens may be sent and returns how many (1..maxN), or
// 0 once the run is over.
func (p *pacer) next(sent int64, maxN int) int {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		now := time.Now()
		if !now.Before(p.end) {
			return 0
		}
		n := int64(maxN)
		if p.rate > 0 {
			due := int64(now.Sub(p.start).Seconds()*p.rate) + 1
			if due <= sent {
				next := p.start.Add(time.Duration(float64(sent) / p.rate * float64(time.Second)))
				time.Sleep(next.Sub(now))
				continue
			}
			// The window bounds a fixed-rate writer too: after a stall of
			// the kit itself, all its writers' catch-up would otherwise
			// reach a reader at once, more than the gateway queues for it
			// (1,024 frames), and close it slow_consumer for the kit's own
			// hiccup. Late tokens still count from their scheduled time.
			n = min(n, due-sent)
		}
		if room := p.room(sent); room > 0 {
			return int(min(room, n))
		}
		t.Reset(min(p.end.Sub(now), 50*time.Millisecond))
		select {
		case <-p.wake:
		case <-t.C:
		}
		if p.rate > 0 && p.held != nil {
			p.held.Add(int64(time.Since(now)))
		}
	}
}

// stamp is the send time written into token k (1-based): its scheduled
// time at a fixed rate (so a late writer shows as latency), else now.
func (p *pacer) stamp(k int64, now time.Time) int64 {
	if p.rate > 0 {
		return p.start.UnixNano() + int64(float64(k-1)/p.rate*float64(time.Second))
	}
	return now.UnixNano()
}

func poke(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// maxBatch is the most frames in one array (spec 4.6).
const maxBatch = 256

// window is the measured span, readable by reader goroutines.
type window struct{ from, to atomic.Int64 }

func (w *window) in(ts int64) bool { return ts >= w.from.Load() && ts < w.to.Load() }

// loadRun is the state one load run shares between its goroutines.
type loadRun struct {
	sh        Shape
	nw        int // writers in all
	delivered []atomic.Int64
	// got is, per reader, how many tokens it received of each writer of
	// its conversation (index w % Writers).
	got        [][]atomic.Int64
	wake       []chan struct{}
	written    []int64
	win        window
	closesMu   sync.Mutex
	closes     []string
	stopping   atomic.Bool
	start, end time.Time
	inWindow   int64 // tokens sent in the window (atomic)
	held       atomic.Int64
}

func newLoadRun(sh Shape) *loadRun {
	nw := sh.Conversations * sh.Writers
	r := &loadRun{sh: sh, nw: nw, delivered: make([]atomic.Int64, nw), wake: make([]chan struct{}, nw), written: make([]int64, nw),
		got: make([][]atomic.Int64, sh.Conversations*sh.Readers)}
	for i := range r.got {
		r.got[i] = make([]atomic.Int64, sh.Writers)
	}
	for i := range r.wake {
		r.wake[i] = make(chan struct{}, 1)
	}
	r.win.to.Store(1<<63 - 1)
	r.win.from.Store(1<<63 - 1)
	return r
}

func (r *loadRun) closed(what string) {
	if r.stopping.Load() {
		return
	}
	r.closesMu.Lock()
	r.closes = append(r.closes, what)
	r.closesMu.Unlock()
}

func (r *loadRun) pacer(w int) *pacer {
	var perWriter float64
	if r.sh.Rate > 0 {
		perWriter = r.sh.Rate / float64(r.nw)
	}
	win := r.sh.Window
	if r.sh.Rate > 0 && r.sh.RateWindow > 0 {
		win = r.sh.RateWindow
	}
	perWindow := max(1, (win+r.sh.Writers-1)/r.sh.Writers)
	c := w / r.sh.Writers
	got := make([]*atomic.Int64, r.sh.Readers)
	for i := range got {
		got[i] = &r.got[c*r.sh.Readers+i][w%r.sh.Writers]
	}
	return &pacer{rate: perWriter, window: int64(perWindow), start: r.start, end: r.end, got: got, wake: r.wake[w], held: &r.held}
}

// settle copies into res what the writers counted, once they are done.
func (r *loadRun) settle(res *LoadResult) {
	for w := range r.nw {
		res.Written += r.written[w]
	}
	res.WrittenInWindow = atomic.LoadInt64(&r.inWindow)
	res.Closes = r.closes
	res.WindowHeld = time.Duration(r.held.Load())
}

// begin fixes the schedule: writers start now.
func (r *loadRun) begin() {
	r.start = time.Now()
	r.end = r.start.Add(r.sh.Duration)
	r.win.from.Store(r.start.Add(r.sh.Warmup).UnixNano())
	r.win.to.Store(r.end.UnixNano())
}

// measure waits for the run to end, printing progress, and samples CPU
// over the window; then it waits until every token reached every reader
// (or drainTimeout).
func (r *loadRun) measure(ctx context.Context, label string, pids []int, natsPid int, prog *Progress, res *LoadResult) {
	sleepUntil(ctx, r.start.Add(r.sh.Warmup))
	t0 := time.Now()
	cpu0 := cpuOf(pids)
	nats0, _ := ProcessCPU(natsPid)
	kit0, _ := ProcessCPU(os.Getpid())
	// Run-queue waits of NATS (0), the kit (1) and the gateways (2…).
	waitPids := append([]int{natsPid, os.Getpid()}, pids...)
	wait0 := runDelayOf(waitPids)
	var lastCount int64
	lastT := t0
	for time.Now().Before(r.end) && ctx.Err() == nil {
		sleepUntil(ctx, minTime(r.end, time.Now().Add(prog.Every())))
		var n int64
		for i := range r.delivered {
			n += r.delivered[i].Load()
		}
		now := time.Now()
		prog.Printf("%s: %4.1fs delivered %s tokens/s", label, now.Sub(r.start).Seconds(), rate(float64(n-lastCount)/now.Sub(lastT).Seconds()))
		lastCount, lastT = n, now
	}
	cpu1 := cpuOf(pids)
	kit1, _ := ProcessCPU(os.Getpid())
	nats1, _ := ProcessCPU(natsPid)
	wait1 := runDelayOf(waitPids)
	wall := time.Since(t0)
	waited := func(i int) CoreWait {
		if wait0[i].wait < 0 || wait1[i].wait < 0 {
			return CoreWait{Pct: -1}
		}
		w := CoreWait{Pct: 100 * float64(wait1[i].wait-wait0[i].wait) / float64(wall)}
		if n := wait1[i].runs - wait0[i].runs; n > 0 {
			w.PerRun = (wait1[i].wait - wait0[i].wait) / time.Duration(n)
		}
		return w
	}
	res.NATSWait, res.KitWait = waited(0), waited(1)
	for i := range pids {
		res.GatewayWait = append(res.GatewayWait, waited(2+i))
	}
	res.NATSCPU = -1
	if natsPid != 0 {
		res.NATSCPU = 100 * float64(nats1-nats0) / float64(wall)
	}
	for i := range pids {
		res.GatewayCPU = append(res.GatewayCPU, 100*float64(cpu1[i]-cpu0[i])/float64(wall))
	}
	res.KitCPU = 100 * float64(kit1-kit0) / float64(wall)
}

// drain waits until the writers' tokens all reached their readers.
func (r *loadRun) drain(ctx context.Context, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		done := true
		for w := range r.nw {
			if r.delivered[w].Load() < atomic.LoadInt64(&r.written[w])*int64(r.sh.Readers) {
				done = false
				break
			}
		}
		if done {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

// CoreWait is how a process's threads waited for a core over a window.
type CoreWait struct {
	// Pct is the wait in % of the window: 100 when, on average, one of
	// its threads was ready to run and not running.
	Pct float64
	// PerRun is the mean wait before each run on a core.
	PerRun time.Duration
}

type runDelay struct {
	wait time.Duration
	runs int64
}

// runDelayOf reads ProcessRunDelay of each pid; wait -1 where it cannot (no
// process, or a kernel without schedstats).
func runDelayOf(pids []int) []runDelay {
	out := make([]runDelay, len(pids))
	for i, p := range pids {
		out[i].wait = -1
		if p == 0 {
			continue // NATS runs in the kit
		}
		if d, n, err := ProcessRunDelay(p); err == nil {
			out[i] = runDelay{d, n}
		}
	}
	return out
}

func cpuOf(pids []int) []time.Duration {
	out := make([]time.Duration, len(pids))
	for i, p := range pids {
		out[i], _ = ProcessCPU(p)
	}
	return out
}

func sleepUntil(ctx context.Context, t time.Time) {
	d := time.Until(t)
	if d <= 0 {
		return
	}
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// amsReader is one reading WebSocket client of a load run.
type amsReader struct {
	c       *WSConn
	streams map[string]*readStream
	known   atomic.Int64 // writer streams announced (peers, stream_joined)
	hist    *Histogram
	counts  []int64 // deliveries per writer in the current message
	done    chan struct{}
}

type readStream struct {
	w     int
	tally Tally
	known bool
}

// RunAMSLoad runs sh through the gateways: writers on wgw, readers on
// rgw (the same gateway or another). pids are the gateways whose CPU is
// sampled.
func RunAMSLoad(ctx context.Context, env *Env, sys *System, sh Shape, wgw, rgw *Gateway, label string) (*LoadResult, error) {
	run := newLoadRun(sh)
	api := env.API
	id := randomHex(3)
	// Accounts: a persistent account has at most 10 live streams in a
	// conversation.
	var wAccts, rAccts []Account
	for i := 0; i < (sh.Writers+9)/10; i++ {
		a, err := api.CreateAccount(ctx, wgw.URL, fmt.Sprintf("bw%s-%d", id, i))
		if err != nil {
			return nil, err
		}
		wAccts = append(wAccts, a)
	}
	for i := 0; i < (sh.Readers+9)/10; i++ {
		a, err := api.CreateAccount(ctx, rgw.URL, fmt.Sprintf("br%s-%d", id, i))
		if err != nil {
			return nil, err
		}
		rAccts = append(rAccts, a)
	}
	convs := make([]Conversation, sh.Conversations)
	for c := range convs {
		var err error
		if convs[c], err = api.Mint(ctx, wgw.URL, wAccts[0], fmt.Sprintf("load-%d", c)); err != nil {
			return nil, err
		}
	}

	// Writers first, reading nothing; their stream ids name them.
	var all []*WSConn
	defer func() {
		run.stopping.Store(true)
		for _, c := range all {
			_ = c.Close()
		}
	}()
	writerOf := map[string]int{}
	writers := make([]*WSConn, run.nw)
	var bg sync.WaitGroup
	defer bg.Wait()
	empty := ""
	for c := range sh.Conversations {
		for i := range sh.Writers {
			w := c*sh.Writers + i
			conn, j, err := dialJoined(ctx, DialOptions{URL: convs[c].ConnectURL(wgw.URL), Credential: wAccts[i/10].Credential,
				StreamName: fmt.Sprintf("w%d", w), Subscribe: &empty, Batch: true, LocalIP: env.localIP(w)})
			if err != nil {
				return nil, fmt.Errorf("writer %d: %w", w, err)
			}
			all = append(all, conn)
			writers[w] = conn
			writerOf[j.StreamID] = w
			bg.Go(func() { discard(conn, run, fmt.Sprintf("writer %d", w)) })
		}
	}

	// Readers, dialed in parallel; each knows its conversation's writers.
	readers := make([]*amsReader, sh.Conversations*sh.Readers)
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(32)
	for idx := range readers {
		c, i := idx/sh.Readers, idx%sh.Readers
		g.Go(func() error {
			conn, j, err := dialJoined(gctx, DialOptions{URL: convs[c].ConnectURL(rgw.URL), Credential: rAccts[i/10].Credential,
				StreamName: fmt.Sprintf("r%d", idx), Batch: sh.Batch, LocalIP: env.localIP(run.nw + idx)})
			if err != nil {
				return fmt.Errorf("reader %d: %w", idx, err)
			}
			r := &amsReader{c: conn, streams: map[string]*readStream{}, hist: NewHistogram(), counts: make([]int64, run.nw), done: make(chan struct{})}
			for sid, w := range writerOf {
				if w/sh.Writers == c {
					r.streams[sid] = &readStream{w: w}
				}
			}
			for _, p := range j.Peers {
				if st := r.streams[p.StreamID]; st != nil && !st.known {
					st.known = true
					st.tally.Start(p.LastSeq)
					r.known.Add(1)
				}
			}
			mu.Lock()
			all = append(all, conn)
			readers[idx] = r
			mu.Unlock()
			bg.Go(func() { r.read(run, idx) })
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	// Every reader must have been told of every writer before it writes
	// (spec 4.5: a reader sees S before any live event of S).
	if err := waitFor(ctx, 30*time.Second, func() bool {
		for _, r := range readers {
			if r.known.Load() < int64(sh.Writers) {
				return false
			}
		}
		return true
	}); err != nil {
		return nil, fmt.Errorf("readers never saw every writer join: %w", err)
	}

	// Write.
	res := &LoadResult{Window: sh.Duration - sh.Warmup}
	env.flushDisk(label)
	run.begin()
	var wg sync.WaitGroup
	for w, conn := range writers {
		wg.Go(func() { amsWrite(conn, run, w) })
	}
	pids := []int{}
	for _, gw := range env.cpuGateways(sys, wgw, rgw) {
		pids = append(pids, gw.Pid())
	}
	env.profile(ctx, sys, label, sh.Duration-sh.Warmup, run.start.Add(sh.Warmup))
	run.measure(ctx, label, pids, sys.NATSPid, env.Progress, res)
	wg.Wait()
	res.Undrained = !run.drain(ctx, 20*time.Second)
	run.stopping.Store(true)
	for _, c := range all {
		_ = c.Close()
	}
	all = nil
	bg.Wait()

	res.Lat = NewHistogram()
	for _, r := range readers {
		res.Lat.Merge(r.hist)
		for _, st := range r.streams {
			res.Totals.Add(&st.tally, run.written[st.w])
		}
	}
	run.settle(res)
	return res, nil
}

func (r *amsReader) read(run *loadRun, idx int) {
	defer close(r.done)
	for {
		msg, err := r.c.ReadMessage()
		if err != nil {
			run.closed(fmt.Sprintf("reader %d: %v", idx, err))
			return
		}
		now := time.Now().UnixNano()
		EachToken(msg, func(f []byte, tok *Token) bool {
			if tok == nil {
				r.other(f)
				return true
			}
			st := r.streams[string(tok.StreamID)]
			if st == nil {
				return true
			}
			_, k, ts, ok := ParseData(tok.Data)
			if !ok {
				return true
			}
			if run.win.in(ts) {
				r.hist.Record(time.Duration(now - ts))
			}
			st.tally.Observe(tok.Seq, k)
			r.counts[st.w]++
			return true
		})
		for w, n := range r.counts {
			if n > 0 {
				run.delivered[w].Add(n)
				run.got[idx][w%run.sh.Writers].Add(n)
				poke(run.wake[w])
				r.counts[w] = 0
			}
		}
	}
}

// other handles a frame that is not a token: membership and gaps.
func (r *amsReader) other(f []byte) {
	switch string(FrameType(f)) {
	case "stream_joined":
		var s Stream
		if decodeFrame(f, &s) == nil {
			if st := r.streams[s.StreamID]; st != nil && !st.known {
				st.known = true
				st.tally.Start(s.LastSeq)
				r.known.Add(1)
			}
		}
	case "replay_gap":
		var g ReplayGap
		if decodeFrame(f, &g) == nil {
			if st := r.streams[g.StreamID]; st != nil {
				st.tally.Gap(g.RequestedSeq, g.FirstAvailableSeq)
			}
		}
	}
}

// amsWrite writes writer w's tokens as its pacer allows.
func amsWrite(c *WSConn, run *loadRun, w int) {
	p := run.pacer(w)
	buf := make([]byte, 0, 64<<10)
	data := make([]byte, 0, run.sh.Size)
	var sent, inWin int64
	for {
		n := p.next(sent, maxBatch)
		if n == 0 {
			break
		}
		now := time.Now()
		buf = buf[:0]
		if n > 1 {
			buf = append(buf, '[')
		}
		for i := range n {
			k := sent + 1 + int64(i)
			if i > 0 {
				buf = append(buf, ',')
			}
			ts := p.stamp(k, now)
			if run.win.in(ts) {
				inWin++
			}
			data = AppendData(data[:0], w, k, ts, run.sh.Size)
			buf = AppendTokenFrame(buf, data)
		}
		if n > 1 {
			buf = append(buf, ']')
		}
		if err := c.WriteText(buf); err != nil {
			run.closed(fmt.Sprintf("writer %d: %v", w, err))
			break
		}
		sent += int64(n)
		atomic.StoreInt64(&run.written[w], sent)
	}
	atomic.AddInt64(&run.inWindow, inWin)
}

// discard reads a connection until it ends, answering pings.
func discard(c *WSConn, run *loadRun, what string) {
	for {
		if _, err := c.ReadMessage(); err != nil {
			run.closed(fmt.Sprintf("%s: %v", what, err))
			return
		}
	}
}

// dialJoined dials and reads `joined`.
func dialJoined(ctx context.Context, o DialOptions) (*WSConn, Joined, error) {
	c, err := DialWS(ctx, o)
	if err != nil {
		return nil, Joined{}, err
	}
	j, err := c.ReadJoined(15 * time.Second)
	if err != nil {
		_ = c.Abort()
		return nil, j, err
	}
	return c, j, nil
}

// waitFor polls cond every 10 ms until it holds or timeout passes.
func waitFor(ctx context.Context, timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %s", timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

// RunNATSLoad runs sh over core NATS pub/sub as the baseline: a
// connection per writer publishing on its subject, and a connection per
// reader subscribed to its conversation's writers.
func RunNATSLoad(ctx context.Context, env *Env, sys *System, sh Shape, label string) (*LoadResult, error) {
	url := sys.NATSURL
	run := newLoadRun(sh)
	id := randomHex(3)
	type natsReader struct {
		tally  []Tally // by writer within the conversation
		hist   *Histogram
		sub    *rawSub
		firstW int
	}
	readers := make([]*natsReader, sh.Conversations*sh.Readers)
	var conns []*nats.Conn
	var rg sync.WaitGroup
	defer func() {
		for _, nc := range conns {
			nc.Close()
		}
		for _, r := range readers {
			if r != nil {
				_ = r.sub.Close()
			}
		}
		rg.Wait()
	}()
	for idx := range readers {
		c := idx / sh.Readers
		sub, err := dialRawSub(ctx, url, []string{fmt.Sprintf("bench.%s.%d.*", id, c)}, env.localIP(idx))
		if err != nil {
			return nil, err
		}
		r := &natsReader{tally: make([]Tally, sh.Writers), hist: NewHistogram(), sub: sub, firstW: c * sh.Writers}
		readers[idx] = r
		rg.Go(func() {
			for {
				data, err := r.sub.next()
				if err != nil {
					run.closed(fmt.Sprintf("nats reader %d: %v", idx, err))
					return
				}
				now := time.Now().UnixNano()
				w, k, ts, ok := ParseData(data)
				if !ok || w < r.firstW || w >= r.firstW+sh.Writers {
					continue
				}
				if run.win.in(ts) {
					r.hist.Record(time.Duration(now - ts))
				}
				r.tally[w-r.firstW].Observe(k, k)
				run.delivered[w].Add(1)
				run.got[idx][w%sh.Writers].Add(1)
				poke(run.wake[w])
			}
		})
	}
	pubs := make([]*nats.Conn, run.nw)
	for w := range pubs {
		nc, err := nats.Connect(url, nats.Name(fmt.Sprintf("bench writer %d", w)))
		if err != nil {
			return nil, fmt.Errorf("nats writer: %w", err)
		}
		conns = append(conns, nc)
		pubs[w] = nc
	}

	res := &LoadResult{Window: sh.Duration - sh.Warmup}
	env.flushDisk(label)
	run.begin()
	var wg sync.WaitGroup
	for w, nc := range pubs {
		subj := fmt.Sprintf("bench.%s.%d.%d", id, w/sh.Writers, w)
		wg.Go(func() {
			p := run.pacer(w)
			data := make([]byte, 0, sh.Size)
			var sent, inWin int64
			for {
				n := p.next(sent, maxBatch)
				if n == 0 {
					break
				}
				now := time.Now()
				for i := range n {
					k := sent + 1 + int64(i)
					ts := p.stamp(k, now)
					if run.win.in(ts) {
						inWin++
					}
					data = AppendData(data[:0], w, k, ts, sh.Size)
					if err := nc.Publish(subj, data); err != nil {
						run.closed(fmt.Sprintf("nats writer %d: %v", w, err))
						return
					}
				}
				sent += int64(n)
				atomic.StoreInt64(&run.written[w], sent)
			}
			_ = nc.Flush()
			atomic.AddInt64(&run.inWindow, inWin)
		})
	}
	run.measure(ctx, label, nil, sys.NATSPid, env.Progress, res)
	wg.Wait()
	res.Undrained = !run.drain(ctx, 20*time.Second)
	run.stopping.Store(true)
	for _, r := range readers {
		_ = r.sub.Close()
	}
	rg.Wait()
	res.Lat = NewHistogram()
	for _, r := range readers {
		res.Lat.Merge(r.hist)
		for i := range r.tally {
			res.Totals.Add(&r.tally[i], run.written[r.firstW+i])
		}
	}
	run.settle(res)
	return res, nil
}
