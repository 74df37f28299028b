package benchkit

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// LimitsOff turns the gateway's abuse controls off: they bound what one
// client may make a replica do, and the kit is one client driving the
// gateway as hard as it goes. -gateway-env can set them back.
var LimitsOff = []string{
	"AMS_GATEWAY_RATE_CONN_FRAMES=-1",
	"AMS_GATEWAY_RATE_ACCOUNT_TOKENS=-1",
	"AMS_GATEWAY_MAX_CONNS_PER_ACCOUNT=-1",
	"AMS_GATEWAY_RATE_CONTROL_IP=-1",
	"AMS_GATEWAY_RATE_CONTROL_CREDENTIAL=-1",
}

// Env is what every scenario shares: where to print, how to start
// systems, the options common to all scenarios, and the targets measured
// so far.
type Env struct {
	// Out receives the tables; Progress the progress lines.
	Out      io.Writer
	Progress *Progress
	API      *apiClient
	Machine  Machine
	// Dir is the work directory (systems, logs, profiles by default).
	Dir string
	// GatewayBin is the gateway binary; GatewayEnv adds AMS_GATEWAY_*
	// variables to every gateway.
	GatewayBin string
	GatewayEnv []string
	// SourceIPs spreads client connections over 127.0.0.2 … 127.0.0.(1+n)
	// (0: the kernel picks, 127.0.0.1).
	SourceIPs int
	// ProfileDir, if set, gets a CPU profile of each gateway over each
	// measured window, and heap profiles where a scenario takes them.
	ProfileDir string
	// Trace, with ProfileDir, also gets an execution trace of each gateway
	// over each measured window (<label>-<gateway>.trace).
	Trace bool
	// Worker builds the command of a client worker process (this program
	// in worker mode); nil keeps every client in this process.
	Worker func() *exec.Cmd
	Log    *slog.Logger

	mu      sync.Mutex
	targets []Target
	pending sync.WaitGroup
}

// Target records a measured target.
func (e *Env) Target(t Target) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.targets = append(e.targets, t)
}

// Targets returns the targets recorded so far.
func (e *Env) Targets() []Target {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]Target(nil), e.targets...)
}

// StartSystem starts a system of n gateways in the work directory.
func (e *Env) StartSystem(ctx context.Context, n int) (*System, error) {
	e.Progress.Printf("starting NATS, account and link services, %d gateway process(es)", n)
	env := append(append([]string(nil), LimitsOff...), e.GatewayEnv...)
	return StartSystem(ctx, SystemOptions{Dir: e.Dir, GatewayBin: e.GatewayBin, Gateways: n, GatewayEnv: env,
		Pprof: e.ProfileDir != "", Log: e.Log, Worker: e.Worker})
}

func (e *Env) localIP(i int) net.IP {
	if e.SourceIPs <= 0 {
		return nil
	}
	return net.IPv4(127, 0, 0, byte(2+i%e.SourceIPs))
}

// cpuGateways lists the distinct gateways among gws.
func (e *Env) cpuGateways(_ *System, gws ...*Gateway) []*Gateway {
	var out []*Gateway
	for _, g := range gws {
		dup := false
		for _, o := range out {
			dup = dup || o == g
		}
		if !dup {
			out = append(out, g)
		}
	}
	return out
}

// profile captures, in the background, a CPU profile of every gateway of
// sys over d starting at at, into ProfileDir/<label>-<gateway>.cpu.pprof,
// with Trace an execution trace over the same time (….trace), and a
// goroutine profile halfway (<label>-<gateway>.goroutine.pprof); and the
// same two of its NATS server, when it runs in a worker
// (<label>-nats.cpu.pprof, <label>-nats.goroutine.pprof).
func (e *Env) profile(ctx context.Context, sys *System, label string, d time.Duration, at time.Time) {
	if e.ProfileDir == "" {
		return
	}
	if u := sys.NATSPprofURL; u != "" {
		e.profileProcess(ctx, sys, u, "nats", "the NATS server", label, d, at, false)
	}
	for _, g := range sys.Gateways {
		if g.PprofURL != "" {
			e.profileProcess(ctx, sys, g.PprofURL, g.Name, g.Name, label, d, at, e.Trace)
		}
	}
}

// profileProcess captures the profiles of one process whose runtime
// profiles u serves, into ProfileDir/<label>-<file>.…, naming it name in
// the progress lines: its CPU profile over d from at, with trace an
// execution trace over the same time, and a goroutine profile halfway.
func (e *Env) profileProcess(ctx context.Context, sys *System, u, file, name, label string, d time.Duration, at time.Time, trace bool) {
	secs := strconv.Itoa(max(1, int(d/time.Second)))
	base := filepath.Join(e.ProfileDir, fileLabel(label)+"-"+file)
	e.fetchAt(ctx, sys, at, u+"/debug/pprof/profile?seconds="+secs, base+".cpu.pprof",
		"CPU profile of "+name+" during "+label)
	if trace {
		e.fetchAt(ctx, sys, at, u+"/debug/pprof/trace?seconds="+secs, base+".trace",
			"execution trace of "+name+" during "+label)
	}
	// And where its goroutines wait, halfway through: what a phase that
	// leaves the CPU idle is blocked on.
	e.fetchAt(ctx, sys, at.Add(d/2), u+"/debug/pprof/goroutine", base+".goroutine.pprof",
		"goroutine profile of "+name+" during "+label)
}

// fetchAt saves what u serves, requested at the time at, into path, in the
// background, and reports it as what. sys.Close waits for it: a phase can
// end before a capture of it does (a CPU profile is whole seconds), or
// before a capture's time comes, and its gateways must still answer.
func (e *Env) fetchAt(ctx context.Context, sys *System, at time.Time, u, path, what string) {
	sys.captures.Add(1)
	e.pending.Go(func() {
		defer sys.captures.Done()
		sleepUntil(ctx, at)
		if err := fetchProfile(ctx, u, path); err != nil {
			e.Progress.Printf("%s: %s: %v", what, path, err)
			return
		}
		e.Progress.Printf("%s: %s", what, path)
	})
}

// flushDisk writes the file system's dirty pages to disk before a
// measured phase. JetStream stores every event the gateways route, and the
// kernel writes those pages back about 30 s later: without this, a closed
// loop's hundreds of MB are written back during the fixed-rate phases
// that follow, on the same two cores, and only the gateways' phases pay
// for it (raw NATS stores nothing). It reports a flush that takes long.
func (e *Env) flushDisk(label string) {
	start := time.Now()
	syscall.Sync()
	if d := time.Since(start); d > 200*time.Millisecond {
		e.Progress.Printf("%s: flushed the file system's dirty pages first (%.1fs)", label, d.Seconds())
	}
}

// heapProfile saves a heap profile of g now.
func (e *Env) heapProfile(ctx context.Context, g *Gateway, label string) {
	if e.ProfileDir == "" || g.PprofURL == "" {
		return
	}
	path := filepath.Join(e.ProfileDir, fileLabel(label)+"-"+g.Name+".heap.pprof")
	if err := fetchProfile(ctx, g.PprofURL+"/debug/pprof/heap?gc=1", path); err != nil {
		e.Progress.Printf("profile %s: %v", path, err)
		return
	}
	e.Progress.Printf("heap profile of %s after %s: %s", g.Name, label, path)
}

// WaitProfiles waits for background profile captures.
func (e *Env) WaitProfiles() { e.pending.Wait() }

func fetchProfile(ctx context.Context, u, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		return fmt.Errorf("%d %s", resp.StatusCode, b)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func fileLabel(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			b[i] = '-'
		}
	}
	return string(b)
}

// Progress prints progress lines, each stamped with the time since the
// kit started.
type Progress struct {
	mu    sync.Mutex
	w     io.Writer
	every time.Duration
	start time.Time
}

// NewProgress prints to w (nil: nowhere), a periodic line every every.
func NewProgress(w io.Writer, every time.Duration) *Progress {
	if w == nil {
		w = io.Discard
	}
	return &Progress{w: w, every: every, start: time.Now()}
}

// Every is the period of periodic progress lines.
func (p *Progress) Every() time.Duration { return p.every }

// Printf prints one line.
func (p *Progress) Printf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "[%6.1fs] %s\n", time.Since(p.start).Seconds(), fmt.Sprintf(format, args...))
}

// Load is the load average now, for the tables.
func (e *Env) Load() string { return LoadAvg() }
