package benchkit

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/amsrouter/ams/services/internal/config"
)

// AvalancheParams configures the avalanche scenario.
type AvalancheParams struct {
	// Clients readers, PerConv streams per conversation (one writer and
	// PerConv-1 readers), writers writing Rate tokens/s in all.
	Clients, PerConv int
	Rate             float64
	// Before and After are how long writers write before the drop and
	// after everyone resumed.
	Before, After time.Duration
}

type avalancheFlags struct {
	clients, perConv int
	rate             float64
}

func (f *avalancheFlags) register(fs *config.FlagSet) {
	fs.Int(&f.clients, "clients", 0, "reconnecting clients (default 5000; -short 500)")
	fs.Int(&f.perConv, "per-conv", 0, "streams per conversation: one writer, the rest readers (default 10)")
	fs.Float64(&f.rate, "rate", 0, "tokens/s written over all writers (default 1000)")
}

func (f *avalancheFlags) params(sc Scale) AvalancheParams {
	return AvalancheParams{
		Clients: orInt(f.clients, sc.pick(5000, 500, 20)),
		PerConv: max(2, orInt(f.perConv, 10)),
		Rate:    orFloat(f.rate, float64(sc.pick(1000, 1000, 100))),
		Before:  sc.dur(3*time.Second, 2*time.Second, time.Second),
		After:   sc.dur(3*time.Second, 2*time.Second, time.Second),
	}
}

// Avalanche connects Clients readers (on the second gateway; their
// conversations' writers on the first), lets the writers write, then
// drops every reader's connection at once; all reconnect at once with
// their cursors. It measures the time until all have `joined` again and
// until all have caught up with what was written before the drop, and
// checks at the end that no reader lost, duplicated or reordered a token.
// The baseline is as many raw NATS subscribers reconnecting at once (a
// new connection and SUB, no resume).
func Avalanche(ctx context.Context, env *Env, p AvalancheParams) error {
	sys, err := env.StartSystem(ctx, 2)
	if err != nil {
		return err
	}
	defer sys.Close()
	gw0, gw1 := sys.Gateways[0], sys.Gateways[1]
	load := env.Load()
	perConv := p.PerConv - 1
	nconv := (p.Clients + perConv - 1) / perConv

	id := randomHex(3)
	wa, err := env.API.CreateAccount(ctx, gw0.URL, "aw"+id)
	if err != nil {
		return err
	}
	raccts := make([]Account, perConv)
	for i := range raccts {
		if raccts[i], err = env.API.CreateAccount(ctx, gw1.URL, fmt.Sprintf("ar%s-%d", id, i)); err != nil {
			return err
		}
	}
	convs := make([]Conversation, nconv)
	env.Progress.Printf("avalanche: minting %d conversations", nconv)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for c := range convs {
		g.Go(func() error {
			var err error
			convs[c], err = env.API.Mint(gctx, gw0.URL, wa, fmt.Sprintf("aval-%d", c))
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}

	// Writers, one per conversation.
	total := p.Before + p.After + 60*time.Second // an upper bound; writers stop early
	writers := make([]*Writer, nconv)
	perWriter := p.Rate / float64(nconv)
	g, gctx = errgroup.WithContext(ctx)
	g.SetLimit(32)
	for c := range writers {
		w := &Writer{Index: c, Name: "writer", Cred: wa.Credential, URLs: []string{convs[c].ConnectURL(gw0.URL)}, Rate: perWriter, Env: env,
			Total: int64(total.Seconds() * perWriter)}
		writers[c] = w
		g.Go(func() error {
			_, err := w.Join(gctx)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("writers: %w", err)
	}

	// Readers.
	env.Progress.Printf("avalanche: connecting %d readers", p.Clients)
	readers := make([]*Reader, p.Clients)
	g, gctx = errgroup.WithContext(ctx)
	g.SetLimit(64)
	for i := range readers {
		c := i / perConv
		r := &Reader{Index: nconv + i, Name: fmt.Sprintf("r%d", i), Cred: raccts[i%perConv].Credential,
			URLs: []string{convs[c].ConnectURL(gw1.URL)}, Env: env, Batch: true,
			WriterOf: map[string]int{writers[c].StreamID: c}}
		readers[i] = r
		g.Go(func() error { return r.Join(gctx) })
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("readers: %w", err)
	}
	if err := waitFor(ctx, 60*time.Second, func() bool {
		for _, r := range readers {
			r.mu.Lock()
			known := false
			for _, st := range r.streams {
				known = st.known
			}
			r.mu.Unlock()
			if !known {
				return false
			}
		}
		return true
	}); err != nil {
		return fmt.Errorf("readers never saw their writer: %w", err)
	}

	// Write; readers read and reconnect as needed.
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	start := time.Now()
	for _, w := range writers {
		wg.Go(func() { _ = w.Run(runCtx, start) })
	}
	var rg sync.WaitGroup
	for _, r := range readers {
		rg.Go(func() { r.Run(runCtx, stop) })
	}
	sleepUntil(ctx, start.Add(p.Before))

	// The drop: every reader's connection at once, then a timed catch-up:
	// each reader must surface its writer's tokens up to what was written
	// when it joined again (what it missed, not only what came before the
	// drop: a replay stuck behind NATS would otherwise go unseen).
	var caught atomic.Int64
	caughtAt := make([]time.Duration, len(readers))
	targets := make([]int64, len(readers))
	joins0 := make([]int64, len(readers))
	for i, r := range readers {
		joins0[i] = r.Joins.Load()
	}
	drop := time.Now()
	for i, r := range readers {
		w := writers[i/perConv]
		r.mu.Lock()
		r.watch = func(r *Reader) {
			// Caught up counts on the new connection only.
			if caughtAt[i] != 0 || r.Joins.Load() == joins0[i] {
				return
			}
			if targets[i] == 0 {
				targets[i] = max(w.Sent(), 1) // at the first look after the join
			}
			for _, st := range r.streams {
				if st.tally.Cursor >= targets[i] {
					caughtAt[i] = time.Since(drop)
					caught.Add(1)
				}
			}
		}
		r.mu.Unlock()
	}
	env.profile(ctx, sys, "avalanche reconnect", 5*time.Second, time.Now())
	env.Progress.Printf("avalanche: dropping %d connections at once", len(readers))
	for _, r := range readers {
		r.Abort()
	}
	var allJoined, allCaught time.Duration
	deadline := drop.Add(60 * time.Second)
	lastPrint := drop
	for time.Now().Before(deadline) && ctx.Err() == nil {
		joined := 0
		for i, r := range readers {
			if r.Joins.Load() > joins0[i] {
				joined++
			}
		}
		if allJoined == 0 && joined == len(readers) {
			allJoined = time.Since(drop)
		}
		if caught.Load() == int64(len(readers)) {
			allCaught = time.Since(drop)
			break
		}
		if time.Since(lastPrint) >= env.Progress.Every() {
			lastPrint = time.Now()
			env.Progress.Printf("avalanche: %d joined, %d caught up of %d", joined, caught.Load(), len(readers))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if allJoined == 0 {
		allJoined = -1
	}
	env.Progress.Printf("avalanche: all joined after %s, all caught up after %s", durS(allJoined), durS(allCaught))

	// Write a while longer, then stop the writers at what they wrote and
	// let every reader catch up to the end.
	sleepUntil(ctx, time.Now().Add(p.After))
	end := time.Since(start)
	for _, w := range writers {
		w.SetTotal(min(w.total(), int64(end.Seconds()*w.Rate)+1))
	}
	wg.Wait()
	if err := waitFor(ctx, 60*time.Second, func() bool { return allCaughtUp(readers, writers) }); err != nil {
		env.Progress.Printf("avalanche: readers did not all catch up: %s", describeUnfinished(readers, writers))
	}
	close(stop)
	for _, r := range readers {
		r.Close()
	}
	cancel()
	rg.Wait()
	for _, w := range writers {
		w.Abort()
	}

	totals, _ := faultTotals(readers, writers)
	var resumed int64
	var joinTimes []time.Duration
	for _, r := range readers {
		resumed += r.Resumed.Load()
		joinTimes = append(joinTimes, r.Outages()...)
	}
	var caughtTimes []time.Duration
	for _, d := range caughtAt {
		if d > 0 {
			caughtTimes = append(caughtTimes, d)
		}
	}

	// Baseline: raw NATS subscribers reconnecting at once.
	rawAll, rawTimes, err := avalancheNATS(ctx, env, sys.NATSURL, p.Clients)
	if err != nil {
		return err
	}

	t := &Table{Title: fmt.Sprintf("avalanche: %d readers (%d conversations of 1 writer + %d readers, writers on gateway 1 at %s tokens/s in all, readers on gateway 2) drop and reconnect at once with their cursors",
		p.Clients, nconv, perConv, rate(p.Rate)), Header: []string{"figure", "raw NATS (reconnect + SUB, no resume)", "AMS"}}
	t.Row("all reconnected (joined) after", durS(rawAll), durS(allJoined))
	t.Row("all caught up after", "–", durS(allCaught))
	t.Row("reconnect time p50 / p99", ms(Percentile(rawTimes, 0.5))+" / "+ms(Percentile(rawTimes, 0.99))+" ms", ms(Percentile(joinTimes, 0.5))+" / "+ms(Percentile(joinTimes, 0.99))+" ms")
	t.Row("caught up p50 / p99", "–", ms(Percentile(caughtTimes, 0.5))+" / "+ms(Percentile(caughtTimes, 0.99))+" ms")
	t.Row("joins resumed:true", "–", fmt.Sprintf("%d of %d", resumed, p.Clients))
	t.Row("lost / dup / order / app dup", "–", fmt.Sprintf("%d / %d / %d / %d", totals.Lost, totals.Dups, totals.OrderViolations, totals.AppDups))
	t.Row("delivered", "–", fmt.Sprintf("%.3f%% of %s", totals.DeliveredPct(), thousands(totals.Expected)))
	t.Note("times from the moment every connection was dropped; a reader is caught up when it surfaced its writer's tokens up to what was written when it joined again.")
	t.Note("load average before: %s, after: %s", load, env.Load())
	noteAnomalies(t, readers)
	t.Print(env.Out)

	env.Target(Target{
		Name:       "avalanche",
		Goal:       "avalanche of 5,000 reconnecting clients all resumed within 5 s, none lost",
		Measured:   fmt.Sprintf("%s clients: all joined after %s, all caught up after %s; lost %d, dup %d", thousands(int64(p.Clients)), durS(allJoined), durS(allCaught), totals.Lost, totals.Dups+totals.AppDups),
		Met:        allCaught > 0 && allCaught <= 5*time.Second && totals.Clean(),
		Undersized: p.Clients < 5000,
	})
	return nil
}

func durS(d time.Duration) string {
	if d <= 0 {
		return "never (60 s)"
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

// avalancheNATS connects n raw subscribers, drops them all at once and
// reconnects them all at once (connect, SUB, PING/PONG).
func avalancheNATS(ctx context.Context, env *Env, url string, n int) (time.Duration, []time.Duration, error) {
	subs := make([]*rawSub, n)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(64)
	for i := range subs {
		g.Go(func() error {
			var err error
			subs[i], err = dialRawSub(gctx, url, []string{fmt.Sprintf("aval.%d", i/9)}, env.localIP(i))
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return 0, nil, err
	}
	for _, s := range subs {
		_ = s.Close()
	}
	start := time.Now()
	times := make([]time.Duration, n)
	g, gctx = errgroup.WithContext(ctx)
	for i := range subs {
		g.Go(func() error {
			for attempt := 0; ; attempt++ {
				time.Sleep(backoff(attempt))
				s, err := dialRawSub(gctx, url, []string{fmt.Sprintf("aval.%d", i/9)}, env.localIP(i))
				if err == nil {
					times[i] = time.Since(start)
					subs[i] = s
					return nil
				}
				if attempt > 50 {
					return err
				}
			}
		})
	}
	err := g.Wait()
	all := time.Since(start)
	for _, s := range subs {
		if s != nil {
			_ = s.Close()
		}
	}
	return all, times, err
}
