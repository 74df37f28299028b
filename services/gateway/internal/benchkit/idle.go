package benchkit

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/amsrouter/ams/services/internal/config"
)

// IdleParams configures the idle scenario.
type IdleParams struct {
	// Conns is the number of idle connections; PerConv participants share
	// a conversation (each of its own account); Concurrency dials run at
	// once.
	Conns, PerConv, Concurrency int
	// Settle is the wait between the last connect and the RSS reading.
	Settle time.Duration
}

type idleFlags struct {
	conns, perConv, concurrency int
	settle                      time.Duration
}

func (f *idleFlags) register(fs *config.FlagSet) {
	fs.Int(&f.conns, "conns", 0, "idle WebSocket connections (default 20000; -short 2000; capped by the file limit)")
	fs.Int(&f.perConv, "per-conv", 0, "participants per conversation (default 10)")
	fs.Int(&f.concurrency, "concurrency", 0, "connects in flight (default 64)")
	fs.Duration(&f.settle, "settle", 0, "wait after the last connect before reading RSS (default 3s)")
}

func (f *idleFlags) params(sc Scale) IdleParams {
	return IdleParams{
		Conns:       orInt(f.conns, sc.pick(20000, 2000, 60)),
		PerConv:     orInt(f.perConv, 10),
		Concurrency: orInt(f.concurrency, 64),
		Settle:      orDur(f.settle, sc.dur(3*time.Second, 2*time.Second, 300*time.Millisecond)),
	}
}

// fdReserve is what a process keeps of its file limit for other files.
const fdReserve = 200

// Idle holds Conns idle participants on one gateway and measures its RSS
// per connection and the connect rate; the baseline holds as many idle
// raw NATS connections on a NATS server process of its own.
func Idle(ctx context.Context, env *Env, p IdleParams) error {
	n := p.Conns
	var capped string
	if limit := int(env.Machine.FileLimit); limit > 0 && n > limit-fdReserve {
		n = limit - fdReserve
		capped = fmt.Sprintf("capped at %d connections: the file limit of a process here is %d and cannot be raised (no CAP_SYS_RESOURCE), and the gateway holds one descriptor per connection", n, limit)
		env.Progress.Printf("idle: %s", capped)
	}
	load := env.Load()
	sys, err := env.StartSystem(ctx, 1)
	if err != nil {
		return err
	}
	defer sys.Close()
	gw := sys.Gateways[0]

	// Accounts and conversations.
	id := randomHex(3)
	accts := make([]Account, p.PerConv)
	for i := range accts {
		if accts[i], err = env.API.CreateAccount(ctx, gw.URL, fmt.Sprintf("idle%s-%d", id, i)); err != nil {
			return err
		}
	}
	convs := make([]Conversation, (n+p.PerConv-1)/p.PerConv)
	env.Progress.Printf("idle: minting %d conversations", len(convs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for c := range convs {
		g.Go(func() error {
			var err error
			convs[c], err = env.API.Mint(gctx, gw.URL, accts[0], fmt.Sprintf("idle-%d", c))
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	dials := make([]DialOptions, n)
	for i := range dials {
		dials[i] = DialOptions{URL: convs[i/p.PerConv].ConnectURL(gw.URL), Credential: accts[i%p.PerConv].Credential,
			StreamName: "p" + strconv.Itoa(i), LocalIP: env.localIP(i)}
	}

	// Before: the gateway with its conversations minted, no connection.
	rssBefore, err := gw.RSS()
	if err != nil {
		return err
	}
	mBefore := scrapeMetrics(ctx, gw.URL)
	env.Progress.Printf("idle: gateway RSS %s before; connecting %d participants", mib(rssBefore), n)
	start := time.Now()
	env.profile(ctx, sys, "idle connect", time.Duration(float64(n)/1000*float64(time.Second)), start)
	release, err := holdWebSockets(ctx, env, dials, p.Concurrency, "idle gateway")
	if err != nil {
		return err
	}
	connectTime := time.Since(start)
	sleepUntil(ctx, time.Now().Add(p.Settle))
	rssAfter, err := gw.RSS()
	if err != nil {
		release()
		return err
	}
	mAfter := scrapeMetrics(ctx, gw.URL)
	env.heapProfile(ctx, gw, "idle")
	release()

	// Baseline: a NATS server of its own holding as many idle clients.
	raw, err := idleNATS(ctx, env, n, p.Concurrency)
	if err != nil {
		return err
	}

	perConn := float64(rssAfter-rssBefore) / float64(n)
	t := &Table{Title: fmt.Sprintf("idle: %d idle connections (WebSocket participants, %d per conversation, one gateway) vs raw NATS clients", n, p.PerConv),
		Header: []string{"figure", "raw NATS server", "gateway", "vs raw"}}
	t.Row("connections held", thousands(int64(n)), fmt.Sprintf("%s (ams_connections ws: %.0f)", thousands(int64(n)), mAfter["ams_connections"]), "")
	t.Row("RSS before → after", mib(raw.before)+" → "+mib(raw.after), mib(rssBefore)+" → "+mib(rssAfter), "")
	t.Row("RSS per connection", kib(raw.perConn()), kib(perConn), ratio(perConn, raw.perConn()))
	// The whole RSS over the connections bounds the cost from above: the
	// difference can understate it when the process held garbage before
	// the connections came (the gateway's heap floor lets it).
	whole := float64(rssAfter) / float64(n)
	t.Row("whole RSS / connections", kib(float64(raw.after)/float64(n)), kib(whole), ratio(whole, float64(raw.after)/float64(n)))
	t.Row("Go heap in use per connection", "–", kib((mAfter["go_memstats_heap_inuse_bytes"]-mBefore["go_memstats_heap_inuse_bytes"])/float64(n)), "")
	t.Row("goroutine stacks per connection", "–", kib((mAfter["go_memstats_stack_inuse_bytes"]-mBefore["go_memstats_stack_inuse_bytes"])/float64(n)), "")
	t.Row("goroutines per connection", "–", fmt.Sprintf("%.2f", (mAfter["go_goroutines"]-mBefore["go_goroutines"])/float64(n)), "")
	t.Row("connect rate (connections/s)", rate(float64(n)/raw.connect.Seconds()), rate(float64(n)/connectTime.Seconds()), ratio(float64(n)/connectTime.Seconds(), float64(n)/raw.connect.Seconds()))
	if capped != "" {
		t.Note("%s.", capped)
	}
	t.Note("RSS is VmRSS of the process (/proc/<pid>/status) after a %s settle; connect rate counts dial, upgrade, admission and `joined`.", p.Settle)
	t.Note("load average before: %s, after: %s", load, env.Load())
	t.Print(env.Out)

	env.Target(Target{
		Name: "idle",
		Goal: "idle WebSocket connections ≤ 16 KB of gateway RSS each at 20,000 connections",
		Measured: fmt.Sprintf("%s (%.0f B) per connection at %s connections; the whole RSS over them %s (%.0f B)",
			kib(perConn), perConn, thousands(int64(n)), kib(whole), whole),
		Met:        perConn <= 16*1024 && whole <= 16*1024,
		Undersized: n < 19000,
	})
	return nil
}

type idleRaw struct {
	before, after int64
	n             int
	connect       time.Duration
}

func (r idleRaw) perConn() float64 { return float64(r.after-r.before) / float64(r.n) }

func idleNATS(ctx context.Context, env *Env, n, concurrency int) (idleRaw, error) {
	r := idleRaw{n: n}
	if env.Worker == nil {
		return r, fmt.Errorf("the raw NATS baseline needs worker processes")
	}
	ns, err := StartWorker(env.Worker(), Job{Kind: "nats", StoreDir: env.Dir + "/idle-nats-" + randomHex(3)})
	if err != nil {
		return r, err
	}
	defer ns.Stop()
	url, err := ns.Ready(ctx, 30*time.Second)
	if err != nil {
		return r, err
	}
	if r.before, err = ProcessRSS(ns.Pid()); err != nil {
		return r, err
	}
	env.Progress.Printf("idle: NATS server RSS %s before; connecting %d raw NATS clients", mib(r.before), n)
	start := time.Now()
	var workers []*Worker
	defer func() {
		for _, w := range workers {
			w.Stop()
		}
	}()
	per := perWorker(env)
	for lo := 0; lo < n; lo += per {
		w, err := StartWorker(env.Worker(), Job{Kind: "nats-idle", NATSURL: url, Count: min(per, n-lo), SourceIPs: env.SourceIPs, Concurrency: concurrency})
		if err != nil {
			return r, err
		}
		workers = append(workers, w)
	}
	if err := waitWorkers(ctx, env, workers, n, "idle raw NATS"); err != nil {
		return r, err
	}
	r.connect = time.Since(start)
	sleepUntil(ctx, time.Now().Add(time.Second))
	r.after, err = ProcessRSS(ns.Pid())
	return r, err
}

// perWorker is how many connections one worker process holds.
func perWorker(env *Env) int {
	if l := int(env.Machine.FileLimit); l > 0 {
		return max(100, min(10000, l-fdReserve))
	}
	return 10000
}

// holdWebSockets dials every connection (in worker processes if it can)
// and returns once all got `joined`; release closes them all.
func holdWebSockets(ctx context.Context, env *Env, dials []DialOptions, concurrency int, label string) (release func(), err error) {
	if env.Worker == nil {
		conns := make([]*WSConn, len(dials))
		var wg sync.WaitGroup
		release = func() {
			for _, c := range conns {
				if c != nil {
					_ = c.Abort()
				}
			}
			wg.Wait()
		}
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(concurrency)
		for i, o := range dials {
			g.Go(func() error {
				c, _, err := dialJoined(gctx, o)
				if err != nil {
					return fmt.Errorf("connection %d: %w", i, err)
				}
				conns[i] = c
				wg.Go(func() {
					for {
						if _, err := c.ReadMessage(); err != nil {
							return
						}
					}
				})
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			release()
			return nil, err
		}
		return release, nil
	}
	var workers []*Worker
	release = func() {
		for _, w := range workers {
			w.Stop()
		}
	}
	per := perWorker(env)
	for lo := 0; lo < len(dials); lo += per {
		w, err := StartWorker(env.Worker(), Job{Kind: "ws-idle", Dials: dials[lo:min(lo+per, len(dials))], Concurrency: max(1, concurrency/2)})
		if err != nil {
			release()
			return nil, err
		}
		workers = append(workers, w)
	}
	if err := waitWorkers(ctx, env, workers, len(dials), label); err != nil {
		release()
		return nil, err
	}
	return release, nil
}

// waitWorkers waits until every worker is ready, printing progress.
func waitWorkers(ctx context.Context, env *Env, workers []*Worker, total int, label string) error {
	errc := make(chan error, len(workers))
	for _, w := range workers {
		go func() {
			_, err := w.Ready(ctx, 10*time.Minute)
			errc <- err
		}()
	}
	tick := time.NewTicker(env.Progress.Every())
	defer tick.Stop()
	for pending := len(workers); pending > 0; {
		select {
		case err := <-errc:
			if err != nil {
				return err
			}
			pending--
		case <-tick.C:
			var n int64
			for _, w := range workers {
				n += w.Done.Load()
			}
			env.Progress.Printf("%s: %d of %d connected", label, n, total)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// scrapeMetrics reads the unlabelled values (and ams_connections{ws}) of
// a gateway's /metrics.
func scrapeMetrics(ctx context.Context, base string) map[string]float64 {
	out := map[string]float64{}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return out
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 8<<20))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		name, val, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		if name == `ams_connections{transport="ws"}` {
			name = "ams_connections"
		}
		if v, err := strconv.ParseFloat(strings.TrimSpace(val), 64); err == nil {
			out[name] = v
		}
	}
	return out
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
