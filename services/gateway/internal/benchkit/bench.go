package benchkit

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/amsrouter/ams/services/internal/config"
)

// Scale picks the default size of every scenario.
type Scale int

const (
	// Full is the size the performance targets are stated at (docs/benchmarks.md).
	Full Scale = iota
	// Short is what `make bench` runs: every scenario, under 5 minutes.
	Short
	// Tiny is the smoke test's: seconds per scenario.
	Tiny
)

func (s Scale) pick(full, short, tiny int) int {
	return [...]int{full, short, tiny}[s]
}

func (s Scale) dur(full, short, tiny time.Duration) time.Duration {
	return [...]time.Duration{full, short, tiny}[s]
}

// Scenarios lists the scenarios in the order `all` runs them.
var Scenarios = []struct {
	Name, Summary string
}{
	{"fanout", "P writers → S readers: tokens/s and publish → deliver latency, raw NATS vs 1 and 2 gateways"},
	{"ingest", "one stream as fast as it goes, ordered; then at a fixed rate"},
	{"resume", "reconnect to caught up after 1,000 missed tokens (p50/p99)"},
	{"idle", "N idle WebSocket connections: gateway RSS per connection, connect rate"},
	{"avalanche", "N clients drop and reconnect at once with cursors: time until all resumed, none lost"},
	{"kill", "SIGKILL a gateway mid-stream; clients resume on the other: loss and duplicates"},
	{"jitter", "a TCP proxy cuts every connection every 2 s; clients resume: delivered %"},
}

// Main runs `ams bench <scenario|all> [flags]`; workerCmd builds the
// command line of a client worker (this program's `bench worker`), nil
// when the program cannot run one.
func Main(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, workerCmd func() *exec.Cmd) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		if len(args) == 0 {
			return errors.New("name a scenario, or all")
		}
		return nil
	}
	name := args[0]
	if name == "worker" {
		return RunWorker(ctx, os.Stdin, stdout)
	}
	known := name == "all"
	for _, s := range Scenarios {
		known = known || s.Name == name
	}
	if !known {
		usage(stderr)
		return fmt.Errorf("unknown scenario %q", name)
	}

	fs := config.New("ams bench "+name, "BENCH", getenv, stderr)
	var (
		short, tiny, keep bool
		traceGW           bool
		gatewayBin, dir   string
		gatewayEnv        string
		profileDir        string
		sourceIPs         int
		every             time.Duration
	)
	fs.Bool(&short, "short", false, "the short version of the scenario (what make bench runs)")
	fs.Bool(&tiny, "tiny", false, "a smoke run of seconds (the kit's own test)")
	fs.String(&gatewayBin, "gateway-bin", "", "gateway binary (default: go build it into the work directory)")
	fs.String(&gatewayEnv, "gateway-env", "", "extra gateway settings, comma-separated AMS_GATEWAY_X=v pairs")
	fs.String(&dir, "dir", "", "parent of the work directory (default: the system temp directory)")
	fs.Bool(&keep, "keep", false, "keep the work directory (gateway logs, NATS store) after the run")
	fs.String(&profileDir, "profile", "", "directory to write gateway CPU (and heap) profiles of each measured phase, and the kit's own CPU profile, to")
	fs.Bool(&traceGW, "trace", false, "with -profile: also an execution trace of each gateway over each measured window (go tool trace), for where a token waits")
	fs.Int(&sourceIPs, "source-ips", 16, "spread client connections over this many 127.0.0.x source addresses")
	fs.Duration(&every, "progress", 3*time.Second, "period of progress lines")
	scale := func() Scale {
		switch {
		case tiny:
			return Tiny
		case short:
			return Short
		}
		return Full
	}
	var fanout fanoutFlags
	var ingest ingestFlags
	var resume resumeFlags
	var idle idleFlags
	var aval avalancheFlags
	var kill, jitter faultFlags
	switch name {
	case "fanout":
		fanout.register(fs)
	case "ingest":
		ingest.register(fs)
	case "resume":
		resume.register(fs)
	case "idle":
		idle.register(fs)
	case "avalanche":
		aval.register(fs)
	case "kill":
		kill.register(fs, "kill")
	case "jitter":
		jitter.register(fs, "jitter")
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	sc := scale()

	// The environment: file limit, work directory, gateway binary.
	limit := RaiseFileLimit(1 << 20)
	work, err := os.MkdirTemp(dir, "amsbench-")
	if err != nil {
		return fmt.Errorf("create work directory: %w", err)
	}
	if keep {
		fmt.Fprintf(stderr, "work directory: %s\n", work)
	} else {
		defer os.RemoveAll(work)
	}
	if traceGW && profileDir == "" {
		return errors.New("-trace needs -profile DIR, where the traces go")
	}
	if profileDir != "" {
		if err := os.MkdirAll(profileDir, 0o755); err != nil {
			return fmt.Errorf("create profile directory: %w", err)
		}
		// The kit's own CPU profile over the whole run: its clients share
		// the machine with the gateways, and what they cost is visible.
		f, err := os.Create(filepath.Join(profileDir, "kit.cpu.pprof"))
		if err != nil {
			return fmt.Errorf("kit profile: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			_ = f.Close()
			return fmt.Errorf("kit profile: %w", err)
		}
		defer func() {
			pprof.StopCPUProfile()
			_ = f.Close()
		}()
	}
	env := &Env{
		Out:        stdout,
		Progress:   NewProgress(stderr, every),
		API:        newAPIClient(),
		Machine:    ReadMachine(),
		Dir:        work,
		GatewayBin: gatewayBin,
		SourceIPs:  sourceIPs,
		ProfileDir: profileDir,
		Trace:      traceGW,
		Worker:     workerCmd,
		Log:        slog.New(slog.DiscardHandler),
	}
	if gatewayEnv != "" {
		env.GatewayEnv = strings.Split(gatewayEnv, ",")
	}
	if env.GatewayBin == "" {
		env.Progress.Printf("building the gateway binary")
		if env.GatewayBin, err = BuildGateway(ctx, work, false); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "### ams bench %s%s\n\n", name, map[Scale]string{Full: "", Short: " -short", Tiny: " -tiny"}[sc])
	fmt.Fprintf(stdout, "machine: %s; load average at start: %s; %s\n", env.Machine, LoadAvg(), time.Now().UTC().Format(time.RFC3339))
	_ = limit

	run := func(n string) error {
		start := time.Now()
		env.Progress.Printf("scenario %s", n)
		// What the scenario before wrote to disk is not written back
		// during this one.
		env.flushDisk("scenario " + n)
		var err error
		switch n {
		case "fanout":
			err = Fanout(ctx, env, fanout.params(sc))
		case "ingest":
			err = Ingest(ctx, env, ingest.params(sc))
		case "resume":
			err = Resume(ctx, env, resume.params(sc))
		case "idle":
			err = Idle(ctx, env, idle.params(sc))
		case "avalanche":
			err = Avalanche(ctx, env, aval.params(sc))
		case "kill":
			err = Kill(ctx, env, kill.params(sc, "kill"))
		case "jitter":
			err = Jitter(ctx, env, jitter.params(sc, "jitter"))
		}
		env.WaitProfiles()
		env.Progress.Printf("scenario %s took %s", n, time.Since(start).Round(100*time.Millisecond))
		if err != nil {
			return fmt.Errorf("%s: %w", n, err)
		}
		return nil
	}
	var errs []error
	if name == "all" {
		for _, s := range Scenarios {
			if err := run(s.Name); err != nil {
				errs = append(errs, err)
				fmt.Fprintf(stdout, "\n%s failed: %v\n", s.Name, err)
			}
			if ctx.Err() != nil {
				break
			}
		}
	} else if err := run(name); err != nil {
		errs = append(errs, err)
	}
	printTargets(env)
	return errors.Join(errs...)
}

func printTargets(env *Env) {
	ts := env.Targets()
	if len(ts) == 0 {
		return
	}
	t := &Table{Title: "targets", Header: []string{"target", "measured", "verdict"}}
	for _, x := range ts {
		t.Row(x.Goal, x.Measured, x.Verdict())
	}
	t.Note("load average at end: %s", LoadAvg())
	t.Print(env.Out)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: ams bench <scenario> [flags]    ams bench all [-short] [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "The kit starts its own system (embedded NATS on a random port, account and link")
	fmt.Fprintln(w, "services in process, gateways as OS processes) and measures each scenario against")
	fmt.Fprintln(w, "raw NATS of the same shape. Tables go to stdout (Markdown), progress to stderr.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Scenarios:")
	for _, s := range Scenarios {
		fmt.Fprintf(w, "  %-10s %s\n", s.Name, s.Summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, `Run "ams bench <scenario> -h" for its flags.`)
}

// orInt is v, or def when v is 0.
func orInt(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

func orDur(v, def time.Duration) time.Duration {
	if v == 0 {
		return def
	}
	return v
}

func orFloat(v, def float64) float64 {
	if v == 0 {
		return def
	}
	return v
}

type fanoutFlags struct {
	writers, readers, convs, size, window int
	rateWindow                            int
	rate                                  float64
	duration, warmup                      time.Duration
	batch                                 bool
}

func (f *fanoutFlags) register(fs *config.FlagSet) {
	fs.Int(&f.writers, "writers", 0, "writers per conversation (default 4; -tiny 1)")
	fs.Int(&f.readers, "readers", 0, "readers per conversation (default 16; -tiny 2)")
	fs.Int(&f.convs, "conversations", 0, "conversations (default 1)")
	fs.Int(&f.size, "size", 0, "token data size in bytes (default 64)")
	fs.Int(&f.window, "window", 0, "tokens in flight per reader, over its writers: the closed loop's bound (default 512; the gateway's queue holds 1024)")
	fs.Int(&f.rateWindow, "rate-window", 0, "the same bound at a fixed rate, where it only guards against the kit's own stalls (default 896)")
	fs.Float64(&f.rate, "rate", 0, "total written tokens/s: run only fixed-rate phases (default: closed loop, then half its maximum)")
	fs.Duration(&f.duration, "duration", 0, "duration of each phase (default 10s; -short 3s)")
	fs.Duration(&f.warmup, "warmup", 0, "start of each phase not measured (default 2s; -short 1s)")
	fs.Bool(&f.batch, "no-batch", false, "readers take one frame per message instead of arrays")
}

func (f *fanoutFlags) params(sc Scale) FanoutParams {
	return FanoutParams{Shape: Shape{
		Conversations: orInt(f.convs, 1),
		Writers:       orInt(f.writers, sc.pick(4, 4, 1)),
		Readers:       orInt(f.readers, sc.pick(16, 16, 2)),
		Size:          max(orInt(f.size, 64), MinTokenSize),
		Window:        orInt(f.window, 512),
		RateWindow:    orInt(f.rateWindow, 896),
		Duration:      orDur(f.duration, sc.dur(10*time.Second, 3*time.Second, time.Second)),
		Warmup:        orDur(f.warmup, sc.dur(2*time.Second, time.Second, 300*time.Millisecond)),
		Batch:         !f.batch,
	}, Rate: f.rate}
}

type ingestFlags struct {
	size, window     int
	rate             float64
	duration, warmup time.Duration
}

func (f *ingestFlags) register(fs *config.FlagSet) {
	fs.Int(&f.size, "size", 0, "token data size in bytes (default 64)")
	fs.Int(&f.window, "window", 0, "closed loop: tokens in flight (default 512; the gateway's queue holds 1024)")
	fs.Float64(&f.rate, "rate", 0, "tokens/s of the fixed-rate phase (default 1000)")
	fs.Duration(&f.duration, "duration", 0, "duration of each phase (default 10s; -short 3s)")
	fs.Duration(&f.warmup, "warmup", 0, "start of each phase not measured (default 2s; -short 1s)")
}

func (f *ingestFlags) params(sc Scale) IngestParams {
	return IngestParams{
		Size:     max(orInt(f.size, 64), MinTokenSize),
		Window:   orInt(f.window, 512),
		Rate:     orFloat(f.rate, 1000),
		Duration: orDur(f.duration, sc.dur(10*time.Second, 3*time.Second, time.Second)),
		Warmup:   orDur(f.warmup, sc.dur(2*time.Second, time.Second, 300*time.Millisecond)),
	}
}
