package benchkit

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/amsrouter/ams/services/account/accountd"
	"github.com/amsrouter/ams/services/internal/natsserver"
	"github.com/amsrouter/ams/services/link/linkd"
)

// GatewayPackage is the gateway binary the kit builds when none is given.
const GatewayPackage = "github.com/amsrouter/ams/services/gateway/cmd/gateway"

// SystemOptions configures a System.
type SystemOptions struct {
	// Dir is the work directory (NATS store, SQLite files, gateway logs).
	Dir string
	// GatewayBin is the gateway binary.
	GatewayBin string
	// Gateways is the number of gateway processes to start.
	Gateways int
	// GatewayEnv adds AMS_GATEWAY_* variables to every gateway.
	GatewayEnv []string
	// Pprof gives every gateway a pprof listener (-pprof-addr), and the
	// NATS worker one.
	Pprof bool
	// Log receives the services' logs (nil: discarded).
	Log *slog.Logger
	// Worker, if set, runs NATS in a worker process (so that its CPU is
	// its own, and no client of the kit shares its heap); else NATS runs
	// in this process.
	Worker func() *exec.Cmd
}

// System is a running AMS system: an embedded NATS server with JetStream
// listening on 127.0.0.1 at a random port, the account and link services
// in this process (SQLite), and gateway OS processes.
type System struct {
	NATSURL string
	// NATSPid is the NATS worker process, 0 when NATS runs in this one.
	NATSPid int
	// NATSPprofURL is the base URL of the NATS worker's runtime profiles
	// (SystemOptions.Pprof), "" without them.
	NATSPprofURL string
	Gateways     []*Gateway

	nats                  *natsserver.Server
	natsWorker            *Worker
	opts                  SystemOptions
	accountAddr, linkAddr string
	pepper                string
	stopServices          context.CancelFunc
	services              sync.WaitGroup
	// captures counts the profiles of the gateways still to be taken.
	captures sync.WaitGroup
}

// StartSystem starts NATS, the services and o.Gateways gateways, and
// returns once every gateway is ready.
func StartSystem(ctx context.Context, o SystemOptions) (_ *System, err error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	s := &System{opts: o, pepper: randomHex(32)}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	dir, err := os.MkdirTemp(o.Dir, "system-")
	if err != nil {
		return nil, fmt.Errorf("create system directory: %w", err)
	}
	s.opts.Dir = dir

	if o.Worker != nil {
		s.natsWorker, err = StartWorker(o.Worker(), Job{Kind: "nats", StoreDir: filepath.Join(dir, "nats"), Pprof: o.Pprof})
		if err != nil {
			return nil, err
		}
		if s.NATSURL, err = s.natsWorker.Ready(ctx, 30*time.Second); err != nil {
			return nil, fmt.Errorf("nats worker: %w", err)
		}
		s.NATSPid = s.natsWorker.Pid()
		s.NATSPprofURL = s.natsWorker.PprofURL()
	} else {
		s.nats, err = natsserver.Start(natsserver.Options{StoreDir: filepath.Join(dir, "nats"), Listen: true, Port: -1})
		if err != nil {
			return nil, err
		}
		s.NATSURL = s.nats.URL()
	}

	acc, err := accountd.New(ctx, accountd.Config{
		GRPCAddr:         "127.0.0.1:0",
		DatabaseURL:      "sqlite:" + filepath.Join(dir, "account.db"),
		CredentialPepper: []byte(randomHex(32)),
		ShutdownGrace:    5 * time.Second,
	}, o.Log)
	if err != nil {
		return nil, fmt.Errorf("start account service: %w", err)
	}
	keys, err := linkd.LoadOrCreateKeys(filepath.Join(dir, "signing-keys.pem"))
	if err != nil {
		_ = acc.Close()
		return nil, fmt.Errorf("signing key: %w", err)
	}
	lnk, err := linkd.New(ctx, linkd.Config{
		GRPCAddr:      "127.0.0.1:0",
		DatabaseURL:   "sqlite:" + filepath.Join(dir, "link.db"),
		SigningKeys:   keys,
		ShutdownGrace: 5 * time.Second,
	}, o.Log)
	if err != nil {
		_ = acc.Close()
		return nil, fmt.Errorf("start link service: %w", err)
	}
	s.accountAddr, s.linkAddr = acc.GRPCAddr(), lnk.GRPCAddr()
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.stopServices = cancel
	for _, run := range []func(context.Context) error{acc.Run, lnk.Run} {
		s.services.Go(func() {
			if err := run(sctx); err != nil {
				o.Log.Warn("service stopped", "err", err)
			}
		})
	}

	for i := 0; i < o.Gateways; i++ {
		if _, err := s.StartGateway(ctx, fmt.Sprintf("gw-%d", i)); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Close waits for the profiles still to be taken of its gateways, then
// stops the gateways (SIGTERM, then SIGKILL), the services and NATS.
func (s *System) Close() {
	s.captures.Wait()
	var wg sync.WaitGroup
	for _, g := range s.Gateways {
		wg.Go(func() { _ = g.Stop() })
	}
	wg.Wait()
	if s.stopServices != nil {
		s.stopServices()
		s.services.Wait()
	}
	if s.nats != nil {
		s.nats.Stop()
	}
	if s.natsWorker != nil {
		s.natsWorker.Stop()
	}
}

// Gateway is a gateway OS process.
type Gateway struct {
	Name string
	// URL is http://127.0.0.1:<port>; PprofURL its pprof listener's base
	// ("" without Pprof).
	URL, PprofURL string
	// LogPath is the file of its JSON log.
	LogPath string

	cmd     *exec.Cmd
	logFile *os.File
	exited  chan struct{}
	waitErr error
	once    sync.Once
}

// StartGateway starts one more gateway process and waits until it is
// ready (its /readyz answers 200).
func (s *System) StartGateway(ctx context.Context, name string) (*Gateway, error) {
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		g, err := s.startGateway(ctx, name)
		if err == nil {
			s.Gateways = append(s.Gateways, g)
			return g, nil
		}
		lastErr = err
		if !errors.Is(err, errAddrInUse) {
			break
		}
	}
	return nil, fmt.Errorf("start gateway %s: %w", name, lastErr)
}

var errAddrInUse = errors.New("address already in use")

func (s *System) startGateway(ctx context.Context, name string) (*Gateway, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	g := &Gateway{Name: name, URL: "http://127.0.0.1:" + port, exited: make(chan struct{}),
		LogPath: filepath.Join(s.opts.Dir, name+".log")}
	vars := []string{
		"AMS_GATEWAY_HTTP_ADDR=127.0.0.1:" + port,
		"AMS_GATEWAY_ACCOUNT_ADDR=" + s.accountAddr,
		"AMS_GATEWAY_LINK_ADDR=" + s.linkAddr,
		"AMS_GATEWAY_NATS_URL=" + s.NATSURL,
		"AMS_GATEWAY_DERIVATION_PEPPER=" + s.pepper,
		"AMS_GATEWAY_NAME=" + name,
		"AMS_GATEWAY_LOG_FORMAT=json",
		"AMS_GATEWAY_LOG_LEVEL=warn",
		"AMS_GATEWAY_SHUTDOWN_GRACE=5s",
	}
	if s.opts.Pprof {
		pp, err := freePort()
		if err != nil {
			return nil, err
		}
		vars = append(vars, "AMS_GATEWAY_PPROF_ADDR=127.0.0.1:"+pp)
		g.PprofURL = "http://127.0.0.1:" + pp
	}
	g.logFile, err = os.OpenFile(g.LogPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("gateway log: %w", err)
	}
	// No gRPC listener: the kit speaks WebSocket only.
	g.cmd = exec.Command(s.opts.GatewayBin, "-grpc-addr=")
	g.cmd.Env = append(append(baseEnv(), vars...), s.opts.GatewayEnv...)
	g.cmd.Stdout, g.cmd.Stderr = g.logFile, g.logFile
	dieWithKit(g.cmd)
	if err := g.cmd.Start(); err != nil {
		g.logFile.Close()
		return nil, fmt.Errorf("exec %s: %w", s.opts.GatewayBin, err)
	}
	go func() {
		g.waitErr = g.cmd.Wait()
		g.logFile.Close()
		close(g.exited)
	}()
	if err := g.waitReady(ctx, 60*time.Second); err != nil {
		g.Kill()
		tail := g.LogTail(2000)
		if strings.Contains(tail, "address already in use") {
			return nil, errAddrInUse
		}
		return nil, fmt.Errorf("%w\n%s", err, tail)
	}
	return g, nil
}

func (g *Gateway) waitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	c := &http.Client{Timeout: 2 * time.Second}
	for {
		resp, err := c.Get(g.URL + "/readyz")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-g.exited:
			return fmt.Errorf("gateway %s exited before it was ready: %v", g.Name, g.waitErr)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("gateway %s not ready within %s", g.Name, timeout)
		}
	}
}

// Pid is the process id.
func (g *Gateway) Pid() int { return g.cmd.Process.Pid }

// Exited is closed once the process has exited.
func (g *Gateway) Exited() <-chan struct{} { return g.exited }

// Kill ends the process with SIGKILL, like a crash, and waits for it.
func (g *Gateway) Kill() {
	g.once.Do(func() {
		_ = g.cmd.Process.Signal(syscall.SIGKILL)
		<-g.exited
	})
}

// Stop ends the process with SIGTERM (SIGKILL after 15 s) and waits.
func (g *Gateway) Stop() error {
	var err error
	g.once.Do(func() {
		_ = g.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-g.exited:
		case <-time.After(15 * time.Second):
			_ = g.cmd.Process.Signal(syscall.SIGKILL)
			<-g.exited
			err = fmt.Errorf("gateway %s did not stop within 15s of SIGTERM", g.Name)
		}
	})
	return err
}

// LogTail returns the last n bytes of the gateway's log.
func (g *Gateway) LogTail(n int) string {
	b, _ := os.ReadFile(g.LogPath)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// RSS is the process's resident set size in bytes (VmRSS).
func (g *Gateway) RSS() (int64, error) { return ProcessRSS(g.Pid()) }

// CPUTime is the CPU time (user + system) the process used so far.
func (g *Gateway) CPUTime() (time.Duration, error) { return ProcessCPU(g.Pid()) }

// ProcessRSS reads VmRSS of a process from /proc.
func ProcessRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parse VmRSS %q: %w", v, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", pid)
}

// clockTicks is USER_HZ, 100 on Linux.
const clockTicks = 100

// ProcessCPU reads utime + stime of a process from /proc.
func ProcessCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc stat")
	}
	fields := strings.Fields(string(b[i+1:]))
	// After the command: state(0) … utime is field 14 of the line, index 11 here.
	if len(fields) < 13 {
		return 0, errors.New("malformed /proc stat")
	}
	ut, err1 := strconv.ParseInt(fields[11], 10, 64)
	st, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("malformed /proc stat times")
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// ProcessRunDelay reads how long the threads of a process have waited on
// a run queue for a core, and how many times they were given one (the
// second and third fields of each /proc/<pid>/task/<tid>/schedstat),
// summed over its threads. A thread that exited takes its share with it;
// Go runtimes rarely end threads.
func ProcessRunDelay(pid int) (wait time.Duration, runs int64, err error) {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return 0, 0, err
	}
	for _, t := range tasks {
		b, err := os.ReadFile(dir + "/" + t.Name() + "/schedstat")
		if err != nil {
			continue // the thread ended meanwhile
		}
		f := strings.Fields(string(b))
		if len(f) < 3 {
			return 0, 0, errors.New("malformed schedstat")
		}
		ns, err1 := strconv.ParseInt(f[1], 10, 64)
		n, err2 := strconv.ParseInt(f[2], 10, 64)
		if err1 != nil || err2 != nil {
			return 0, 0, errors.New("malformed schedstat")
		}
		wait += time.Duration(ns)
		runs += n
	}
	return wait, runs, nil
}

// baseEnv is this process's environment without AMS_ variables, so a
// developer's settings do not leak into the gateways.
func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AMS_") {
			env = append(env, kv)
		}
	}
	return env
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("pick a port: %w", err)
	}
	defer l.Close()
	_, port, err := net.SplitHostPort(l.Addr().String())
	return port, err
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// BuildGateway builds the gateway binary into dir with the go command
// (from the current directory, which must be inside the AMS workspace).
func BuildGateway(ctx context.Context, dir string, race bool) (string, error) {
	out := filepath.Join(dir, "gateway")
	args := []string{"build", "-o", out}
	if race {
		args = append(args, "-race")
	}
	args = append(args, GatewayPackage)
	cmd := exec.CommandContext(ctx, "go", args...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go %s (run from the AMS checkout, or pass -gateway-bin): %w\n%s", strings.Join(args, " "), err, b)
	}
	return out, nil
}
