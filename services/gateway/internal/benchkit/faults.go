package benchkit

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"golang.org/x/sync/errgroup"

	"github.com/amsrouter/ams/services/internal/config"
)

// FaultParams configures the kill and jitter scenarios: Writers and
// Readers in one conversation, Rate tokens/s written in all, for
// Duration; kill SIGKILLs a gateway at KillAt, jitter cuts every
// connection every CutEvery.
type FaultParams struct {
	Writers, Readers int
	Rate             float64
	Duration         time.Duration
	KillAt, CutEvery time.Duration
}

type faultFlags struct {
	writers, readers int
	rate             float64
	duration, at     time.Duration
}

func (f *faultFlags) register(fs *config.FlagSet, kind string) {
	fs.Int(&f.writers, "writers", 0, "writers (default 4; jitter 2)")
	fs.Int(&f.readers, "readers", 0, "readers (default 16; jitter 8)")
	fs.Float64(&f.rate, "rate", 0, "tokens/s written in all (default 400; jitter 200)")
	fs.Duration(&f.duration, "duration", 0, "how long writers write (kill: 30s, -short 12s; jitter: 60s, -short 10s)")
	if kind == "kill" {
		fs.Duration(&f.at, "kill-at", 0, "when the gateway is killed (default a third of the duration)")
	} else {
		fs.Duration(&f.at, "cut-every", 0, "period of the cuts (default 2s)")
	}
}

func (f *faultFlags) params(sc Scale, kind string) FaultParams {
	if kind == "kill" {
		d := orDur(f.duration, sc.dur(30*time.Second, 12*time.Second, 5*time.Second))
		return FaultParams{Writers: orInt(f.writers, sc.pick(4, 4, 1)), Readers: orInt(f.readers, sc.pick(16, 16, 2)),
			Rate: orFloat(f.rate, 400), Duration: d, KillAt: orDur(f.at, d/3)}
	}
	return FaultParams{Writers: orInt(f.writers, sc.pick(2, 2, 1)), Readers: orInt(f.readers, sc.pick(8, 8, 2)),
		Rate:     orFloat(f.rate, 200),
		Duration: orDur(f.duration, sc.dur(60*time.Second, 10*time.Second, 3*time.Second)),
		CutEvery: orDur(f.at, sc.dur(2*time.Second, 2*time.Second, time.Second))}
}

// faultSetup is one conversation with resilient writers and readers.
type faultSetup struct {
	writers []*Writer
	readers []*Reader
}

// newFaultSetup creates the accounts and the conversation on gw (base
// URL), then joins writers at writerURLs(w) and readers at readerURLs(r)
// (the first URL of each list first).
func newFaultSetup(ctx context.Context, env *Env, base string, p FaultParams, writerURLs, readerURLs func(conv Conversation, i int) []string) (*faultSetup, error) {
	id := randomHex(3)
	var wAccts, rAccts []Account
	for i := 0; i < (p.Writers+9)/10; i++ {
		a, err := env.API.CreateAccount(ctx, base, fmt.Sprintf("fw%s-%d", id, i))
		if err != nil {
			return nil, err
		}
		wAccts = append(wAccts, a)
	}
	for i := 0; i < (p.Readers+9)/10; i++ {
		a, err := env.API.CreateAccount(ctx, base, fmt.Sprintf("fr%s-%d", id, i))
		if err != nil {
			return nil, err
		}
		rAccts = append(rAccts, a)
	}
	conv, err := env.API.Mint(ctx, base, wAccts[0], "fault")
	if err != nil {
		return nil, err
	}
	s := &faultSetup{}
	perWriter := p.Rate / float64(p.Writers)
	writerOf := map[string]int{}
	for i := range p.Writers {
		w := &Writer{Index: i, Name: fmt.Sprintf("w%d", i), Cred: wAccts[i/10].Credential, URLs: writerURLs(conv, i),
			Rate: perWriter, Env: env, Total: int64(p.Duration.Seconds() * perWriter)}
		if _, err := w.Join(ctx); err != nil {
			return nil, fmt.Errorf("writer %d: %w", i, err)
		}
		writerOf[w.StreamID] = i
		s.writers = append(s.writers, w)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	s.readers = make([]*Reader, p.Readers)
	for i := range s.readers {
		r := &Reader{Index: p.Writers + i, Name: fmt.Sprintf("r%d", i), Cred: rAccts[i/10].Credential, URLs: readerURLs(conv, i),
			Env: env, Batch: true, WriterOf: writerOf}
		s.readers[i] = r
		g.Go(func() error { return r.Join(gctx) })
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("readers: %w", err)
	}
	if err := waitFor(ctx, 30*time.Second, func() bool {
		for _, r := range s.readers {
			r.mu.Lock()
			for _, st := range r.streams {
				if !st.known {
					r.mu.Unlock()
					return false
				}
			}
			r.mu.Unlock()
		}
		return true
	}); err != nil {
		return nil, fmt.Errorf("readers never saw every writer: %w", err)
	}
	return s, nil
}

// run writes for the duration while fault runs, then waits until every
// writer's tokens are confirmed and every reader caught up.
func (s *faultSetup) run(ctx context.Context, env *Env, label string, d time.Duration, fault func(start time.Time)) (finished bool) {
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := make(chan struct{})
	var rg, wg sync.WaitGroup
	for _, r := range s.readers {
		rg.Go(func() { r.Run(runCtx, stop) })
	}
	start := time.Now()
	for _, w := range s.writers {
		wg.Go(func() { _ = w.Run(runCtx, start) })
	}
	var fg sync.WaitGroup
	fg.Go(func() { fault(start) })
	end := start.Add(d)
	for time.Now().Before(end) && ctx.Err() == nil {
		sleepUntil(ctx, minTime(end, time.Now().Add(env.Progress.Every())))
		var n int64
		for _, r := range s.readers {
			n += r.Surfaced.Load()
		}
		env.Progress.Printf("%s: %4.1fs surfaced %s tokens at the readers", label, time.Since(start).Seconds(), thousands(n))
	}
	fg.Wait()
	// Writers finish what they owe (a pong confirms the last tokens).
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(90 * time.Second):
		env.Progress.Printf("%s: writers did not finish within 90 s", label)
	}
	finished = waitFor(ctx, 60*time.Second, func() bool { return allCaughtUp(s.readers, s.writers) }) == nil
	if !finished {
		env.Progress.Printf("%s: %s", label, describeUnfinished(s.readers, s.writers))
	}
	close(stop)
	for _, r := range s.readers {
		r.Close()
	}
	cancel()
	rg.Wait()
	wg.Wait()
	for _, w := range s.writers {
		w.Abort()
	}
	return finished
}

// noteAnomalies lists the readers' first gaps and duplicates under t.
func (s *faultSetup) noteAnomalies(t *Table) { noteAnomalies(t, s.readers) }

// noteAnomalies lists the readers' first gaps and duplicates under t.
func noteAnomalies(t *Table, readers []*Reader) {
	var first []string
	n := 0
	for _, r := range readers {
		for _, a := range r.Anomalies() {
			if n < 10 {
				first = append(first, "- "+a)
			}
			n++
		}
	}
	if n > 0 {
		head := []string{fmt.Sprintf("Gaps and duplicates seen (%d; the first 10):", n), ""}
		t.Notes = append(append(append(head, first...), ""), t.Notes...)
	}
	errs := map[string]int{}
	total := 0
	for _, r := range readers {
		for k, v := range r.ConnectErrors() {
			errs[k] += v
			total += v
		}
	}
	if total > 0 {
		kinds := make([]string, 0, len(errs))
		for k := range errs {
			kinds = append(kinds, k)
		}
		sort.Slice(kinds, func(i, j int) bool { return errs[kinds[i]] > errs[kinds[j]] })
		t.Note("failed reconnects of readers: %d (the kit retries after 25 ms, doubling up to 1 s)", total)
		for _, k := range kinds[:min(len(kinds), 5)] {
			t.Note("- %d × %s", errs[k], k)
		}
	}
}

func (s *faultSetup) outages() []time.Duration {
	var out []time.Duration
	for _, r := range s.readers {
		out = append(out, r.Outages()...)
	}
	return out
}

// Kill runs writers on the gateway it SIGKILLs mid-stream and readers on
// both gateways; everyone on the killed gateway reconnects to the other
// and resumes (readers with their cursors, writers from joined.last_seq).
// Every token written must reach every reader exactly once.
func Kill(ctx context.Context, env *Env, p FaultParams) error {
	sys, err := env.StartSystem(ctx, 2)
	if err != nil {
		return err
	}
	defer sys.Close()
	gw0, victim := sys.Gateways[0], sys.Gateways[1]
	load := env.Load()
	s, err := newFaultSetup(ctx, env, gw0.URL, p,
		func(c Conversation, _ int) []string { return []string{c.ConnectURL(victim.URL), c.ConnectURL(gw0.URL)} },
		func(c Conversation, i int) []string {
			if i%2 == 0 {
				return []string{c.ConnectURL(gw0.URL), c.ConnectURL(victim.URL)}
			}
			return []string{c.ConnectURL(victim.URL), c.ConnectURL(gw0.URL)}
		})
	if err != nil {
		return err
	}
	var killedAt time.Time
	var writersBack, readersBack time.Duration
	finished := s.run(ctx, env, "kill", p.Duration, func(start time.Time) {
		sleepUntil(ctx, start.Add(p.KillAt))
		joins := make([]int64, len(s.readers))
		for i, r := range s.readers {
			joins[i] = r.Joins.Load()
		}
		killedAt = time.Now()
		env.Progress.Printf("kill: SIGKILL %s (pid %d)", victim.Name, victim.Pid())
		victim.Kill()
		_ = waitFor(ctx, 60*time.Second, func() bool {
			if writersBack == 0 {
				back := true
				for _, w := range s.writers {
					back = back && w.Reconnects.Load() > 0
				}
				if back {
					writersBack = time.Since(killedAt)
				}
			}
			if readersBack == 0 {
				back := true
				for i, r := range s.readers {
					back = back && (i%2 == 0 || r.Joins.Load() > joins[i])
				}
				if back {
					readersBack = time.Since(killedAt)
				}
			}
			return writersBack != 0 && readersBack != 0
		})
		env.Progress.Printf("kill: writers back after %s, readers back after %s", durS(writersBack), durS(readersBack))
	})
	totals, lat := faultTotals(s.readers, s.writers)
	out := s.outages()
	t := &Table{Title: fmt.Sprintf("kill: %d writers on gateway 2 at %s tokens/s in all, %d readers on both gateways; gateway 2 SIGKILLed at %s of %s",
		p.Writers, rate(p.Rate), p.Readers, p.KillAt.Round(100*time.Millisecond), p.Duration), Header: []string{"figure", "AMS"}}
	t.Row("tokens written (every reader must get each)", thousands(totals.Expected/int64(max(1, p.Readers))))
	t.Row("delivered", fmt.Sprintf("%.3f%%", totals.DeliveredPct()))
	t.Row("lost / dup on the wire / order / dup surfaced", fmt.Sprintf("%d / %d / %d / %d", totals.Lost, totals.Dups, totals.OrderViolations, totals.AppDups))
	t.Row("announced by replay_gap", thousands(totals.Announced))
	t.Row("writers resumed on gateway 1 after", durS(writersBack))
	t.Row("readers of gateway 2 resumed on gateway 1 after", durS(readersBack))
	t.Row("reader outage p50 / max", ms(Percentile(out, 0.5))+" / "+ms(Percentile(out, 1))+" ms")
	t.Row("latency p50 / p99 / max (outage included)", ms(lat.Percentile(0.5))+" / "+ms(lat.Percentile(0.99))+" / "+ms(lat.Max())+" ms")
	t.Note("No raw-NATS counterpart: core NATS has no gateway to lose, and its subscribers keep no cursor (jitter's baseline shows what a reconnecting core subscriber loses).")
	t.Note("load average before: %s, after: %s", load, env.Load())
	s.noteAnomalies(t)
	t.Print(env.Out)
	env.Target(Target{
		Name:     "kill",
		Goal:     "kill: 100% delivered, no duplicate surfaced",
		Measured: fmt.Sprintf("%.3f%% delivered, lost %d, dup surfaced %d (on the wire %d), order violations %d", totals.DeliveredPct(), totals.Lost, totals.AppDups, totals.Dups, totals.OrderViolations),
		Met:      finished && totals.Lost == 0 && totals.AppDups == 0 && totals.Expected > 0,
	})
	return nil
}

// Jitter puts a TCP proxy in front of each gateway and cuts every
// connection through them every CutEvery; clients reconnect through the
// proxies and resume. The baseline is core NATS through a proxy cut the
// same way, with nats.go reconnecting (and buffering publishes).
func Jitter(ctx context.Context, env *Env, p FaultParams) error {
	sys, err := env.StartSystem(ctx, 2)
	if err != nil {
		return err
	}
	defer sys.Close()
	load := env.Load()
	var proxies []*Proxy
	for _, g := range sys.Gateways {
		pr, err := StartProxy(g.URL[len("http://"):])
		if err != nil {
			return err
		}
		defer pr.Close()
		proxies = append(proxies, pr)
	}
	via := func(i int) string { return "http://" + proxies[i].Addr() }
	s, err := newFaultSetup(ctx, env, sys.Gateways[0].URL, p,
		func(c Conversation, _ int) []string { return []string{c.ConnectURL(via(0))} },
		func(c Conversation, i int) []string { return []string{c.ConnectURL(via(i % 2))} })
	if err != nil {
		return err
	}
	cuts := 0
	cutter := func(start time.Time) {
		for at := start.Add(p.CutEvery); at.Before(start.Add(p.Duration)); at = at.Add(p.CutEvery) {
			sleepUntil(ctx, at)
			n := 0
			for _, pr := range proxies {
				n += pr.CutAll()
			}
			cuts++
		}
	}
	finished := s.run(ctx, env, "jitter", p.Duration, cutter)
	totals, lat := faultTotals(s.readers, s.writers)
	out := s.outages()
	var reconnects int64
	for _, r := range s.readers {
		reconnects += r.Joins.Load() - 1
	}
	for _, w := range s.writers {
		reconnects += w.Reconnects.Load()
	}
	var cut int
	for _, pr := range proxies {
		cut += pr.Cuts
	}

	raw, err := jitterNATS(ctx, env, sys.NATSURL, p)
	if err != nil {
		return err
	}

	t := &Table{Title: fmt.Sprintf("jitter: %d writers → %d readers at %s tokens/s in all; a proxy cuts every connection every %s for %s", p.Writers, p.Readers, rate(p.Rate), p.CutEvery, p.Duration),
		Header: []string{"figure", "raw NATS (nats.go reconnecting, core pub/sub)", "AMS (2 gateways, resume)"}}
	t.Row("cut rounds / connections cut", fmt.Sprintf("%d / %d", raw.rounds, raw.cut), fmt.Sprintf("%d / %d", cuts, cut))
	t.Row("reconnects", thousands(raw.reconnects), thousands(reconnects))
	t.Row("delivered", fmt.Sprintf("%.3f%%", raw.totals.DeliveredPct()), fmt.Sprintf("%.3f%%", totals.DeliveredPct()))
	t.Row("lost / dup on the wire / order / dup surfaced", fmt.Sprintf("%d / %d / %d / %d", raw.totals.Lost, raw.totals.Dups, raw.totals.OrderViolations, raw.totals.AppDups),
		fmt.Sprintf("%d / %d / %d / %d", totals.Lost, totals.Dups, totals.OrderViolations, totals.AppDups))
	t.Row("announced by replay_gap", "–", thousands(totals.Announced))
	t.Row("reader outage p50 / p99", "–", ms(Percentile(out, 0.5))+" / "+ms(Percentile(out, 0.99))+" ms")
	t.Row("latency p50 / p99 / max", ms(raw.lat.Percentile(0.5))+" / "+ms(raw.lat.Percentile(0.99))+" / "+ms(raw.lat.Max())+" ms",
		ms(lat.Percentile(0.5))+" / "+ms(lat.Percentile(0.99))+" / "+ms(lat.Max())+" ms")
	t.Note("load average before: %s, after: %s", load, env.Load())
	s.noteAnomalies(t)
	t.Print(env.Out)
	env.Target(Target{
		Name:     "jitter",
		Goal:     "jitter: 100% delivered, no duplicate surfaced",
		Measured: fmt.Sprintf("%.3f%% delivered over %d cut rounds (%d reconnects), lost %d, dup surfaced %d (on the wire %d); raw NATS %.3f%%", totals.DeliveredPct(), cuts, reconnects, totals.Lost, totals.AppDups, totals.Dups, raw.totals.DeliveredPct()),
		Met:      finished && totals.Lost == 0 && totals.AppDups == 0 && totals.Expected > 0 && cuts > 0,
	})
	return nil
}

type jitterRaw struct {
	totals      Totals
	lat         *Histogram
	rounds, cut int
	reconnects  int64
}

// jitterNATS is the jitter baseline: the same writers and readers over
// core NATS through a proxy cut on the same schedule.
func jitterNATS(ctx context.Context, env *Env, url string, p FaultParams) (*jitterRaw, error) {
	pr, err := StartProxy(url[len("nats://"):])
	if err != nil {
		return nil, err
	}
	defer pr.Close()
	purl := "nats://" + pr.Addr()
	var reconnects atomic.Int64
	opts := []nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(25 * time.Millisecond), nats.ReconnectJitter(0, 0),
		nats.ReconnectBufSize(64 << 20), nats.ReconnectHandler(func(*nats.Conn) { reconnects.Add(1) }),
		nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {})}
	subj := "jitter." + randomHex(3)
	type rd struct {
		mu    sync.Mutex
		tally []Tally
		hist  *Histogram
	}
	readers := make([]*rd, p.Readers)
	var conns []*nats.Conn
	defer func() {
		for _, nc := range conns {
			nc.Close()
		}
	}()
	for i := range readers {
		nc, err := nats.Connect(purl, opts...)
		if err != nil {
			return nil, err
		}
		conns = append(conns, nc)
		r := &rd{tally: make([]Tally, p.Writers), hist: NewHistogram()}
		readers[i] = r
		if _, err := nc.Subscribe(subj+".*", func(m *nats.Msg) {
			now := time.Now().UnixNano()
			w, k, ts, ok := ParseData(m.Data)
			if !ok || w >= p.Writers {
				return
			}
			r.mu.Lock()
			if r.tally[w].Observe(k, k) {
				r.hist.Record(time.Duration(now - ts))
			}
			r.mu.Unlock()
		}); err != nil {
			return nil, err
		}
		if err := nc.Flush(); err != nil {
			return nil, err
		}
	}
	perWriter := p.Rate / float64(p.Writers)
	total := int64(p.Duration.Seconds() * perWriter)
	start := time.Now()
	res := &jitterRaw{}
	var wg sync.WaitGroup
	for w := range p.Writers {
		nc, err := nats.Connect(purl, opts...)
		if err != nil {
			return nil, err
		}
		conns = append(conns, nc)
		wg.Go(func() {
			data := make([]byte, 0, 64)
			for k := int64(1); k <= total; k++ {
				at := start.Add(time.Duration(float64(k-1) / perWriter * float64(time.Second)))
				sleepUntil(ctx, at)
				data = AppendData(data[:0], w, k, at.UnixNano(), MinTokenSize)
				_ = nc.Publish(fmt.Sprintf("%s.%d", subj, w), data)
			}
			_ = nc.FlushTimeout(10 * time.Second)
		})
	}
	for at := start.Add(p.CutEvery); at.Before(start.Add(p.Duration)); at = at.Add(p.CutEvery) {
		sleepUntil(ctx, at)
		pr.CutAll()
		res.rounds++
		env.Progress.Printf("jitter raw NATS: %4.1fs cut round %d", time.Since(start).Seconds(), res.rounds)
	}
	wg.Wait()
	// Let what is in flight arrive.
	_ = waitFor(ctx, 5*time.Second, func() bool {
		for _, r := range readers {
			r.mu.Lock()
			for i := range r.tally {
				if r.tally[i].Cursor < total {
					r.mu.Unlock()
					return false
				}
			}
			r.mu.Unlock()
		}
		return true
	})
	res.lat = NewHistogram()
	for _, r := range readers {
		r.mu.Lock()
		res.lat.Merge(r.hist)
		for i := range r.tally {
			res.totals.Add(&r.tally[i], total)
		}
		r.mu.Unlock()
	}
	res.cut = pr.Cuts
	res.reconnects = reconnects.Load()
	return res, nil
}
