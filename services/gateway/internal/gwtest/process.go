package gwtest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/amsrouter/ams/services/internal/pgtest"
)

// gatewayPackage is the gateway binary StartGatewayProcess builds.
const gatewayPackage = "github.com/amsrouter/ams/services/gateway/cmd/gateway"

// build holds the gateway binary, built once per test binary.
var build struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// Main runs the tests of a package using gwtest and removes what it left
// behind: the built gateway binary and pgtest's databases. Call it as
// `func TestMain(m *testing.M) { os.Exit(gwtest.Main(m)) }`.
func Main(m *testing.M) int {
	code := pgtest.Main(m)
	if build.dir != "" {
		_ = os.RemoveAll(build.dir)
	}
	return code
}

// GatewayBinary builds cmd/gateway (with -race when this test binary has
// it) on first use and returns its path.
func GatewayBinary(t testing.TB) string {
	t.Helper()
	build.once.Do(func() {
		build.dir, build.err = os.MkdirTemp("", "amsgwtest-")
		if build.err != nil {
			return
		}
		build.path = filepath.Join(build.dir, "gateway")
		args := []string{"build", "-o", build.path}
		if raceEnabled {
			args = append(args, "-race")
		}
		args = append(args, gatewayPackage)
		out, err := exec.Command("go", args...).CombinedOutput()
		if err != nil {
			build.err = fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
		}
	})
	if build.err != nil {
		t.Fatalf("gwtest: build gateway: %v", build.err)
	}
	return build.path
}

// Process is a gateway running as a separate OS process.
type Process struct {
	// Name is the replica name; URL is http://127.0.0.1:<port>.
	Name, URL string
	// GRPCAddr is the address of its public gRPC API (127.0.0.1:<port>).
	GRPCAddr string

	cmd     *exec.Cmd
	logs    *LogBuffer
	exited  chan struct{}
	waitErr error
	stopped sync.Once
}

// StartGatewayProcess starts cmd/gateway as an OS process of the system
// sys, named name, and returns once its /readyz answers 200. Its config
// comes from AMS_GATEWAY_* variables (the derivation pepper too, never
// from the command line); env adds or overrides variables
// ("AMS_GATEWAY_AUTH_CACHE_TTL=1s"). It logs JSON at debug level into
// Logs() and Options.Log. It is stopped (SIGTERM, then SIGKILL) at cleanup.
func StartGatewayProcess(t testing.TB, sys *System, name string, env ...string) *Process {
	t.Helper()
	bin := GatewayBinary(t)
	// The port is chosen free, then released for the process to bind:
	// another listener may take it meanwhile, so a bind failure retries.
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatalf("gwtest: pick a port: %v", err)
		}
		grpcPort, err := freePort()
		if err != nil {
			t.Fatalf("gwtest: pick a port: %v", err)
		}
		p := &Process{Name: name, URL: "http://127.0.0.1:" + port, GRPCAddr: "127.0.0.1:" + grpcPort,
			logs: &LogBuffer{}, exited: make(chan struct{})}
		vars := []string{
			"AMS_GATEWAY_HTTP_ADDR=127.0.0.1:" + port,
			"AMS_GATEWAY_GRPC_ADDR=" + p.GRPCAddr,
			"AMS_GATEWAY_ACCOUNT_ADDR=" + sys.AccountAddr,
			"AMS_GATEWAY_LINK_ADDR=" + sys.LinkAddr,
			"AMS_GATEWAY_NATS_URL=" + sys.NATSURL,
			"AMS_GATEWAY_DERIVATION_PEPPER=" + string(sys.DerivationPepper),
			"AMS_GATEWAY_NAME=" + name,
			"AMS_GATEWAY_LOG_FORMAT=json",
			"AMS_GATEWAY_LOG_LEVEL=debug",
			"AMS_GATEWAY_SHUTDOWN_GRACE=5s",
		}
		p.cmd = exec.Command(bin)
		p.cmd.Env = append(append(baseEnv(), vars...), env...)
		var out io.Writer = p.logs
		if sys.opts.Log != nil {
			out = io.MultiWriter(p.logs, sys.opts.Log)
		}
		p.cmd.Stdout, p.cmd.Stderr = out, out
		if err := p.cmd.Start(); err != nil {
			t.Fatalf("gwtest: start gateway process %s: %v", name, err)
		}
		go func() {
			p.waitErr = p.cmd.Wait()
			close(p.exited)
		}()
		err = pollReady(p.URL, p.exited)
		if err == nil {
			t.Cleanup(func() {
				if err := p.Stop(); err != nil {
					t.Errorf("gwtest: gateway process %s: %v", name, err)
				}
			})
			return p
		}
		if errors.Is(err, errExited) && strings.Contains(p.logs.String(), "address already in use") {
			lastErr = err
			continue
		}
		p.Kill()
		t.Fatalf("gwtest: gateway process %s: %v\n%s", name, err, p.logs.String())
	}
	t.Fatalf("gwtest: gateway process %s: no free port after 5 attempts: %v", name, lastErr)
	return nil
}

// baseEnv is this process's environment without AMS_ variables, so a
// developer's settings do not leak into the gateways under test.
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
		return "", err
	}
	defer l.Close()
	_, port, err := net.SplitHostPort(l.Addr().String())
	return port, err
}

// Logs returns what the process wrote so far (its JSON log).
func (p *Process) Logs() string { return p.logs.String() }

// Exited is closed when the process has exited.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Kill ends the process with SIGKILL (no shutdown at all, like a crash)
// and waits for it.
func (p *Process) Kill() {
	p.stopped.Do(func() {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.exited
	})
}

// Stop ends the process with SIGTERM and waits for its graceful shutdown
// (SIGKILL after 20 s). It reports an exit other than a clean one. Stop
// and Kill are idempotent; only the first has an effect.
func (p *Process) Stop() error {
	var err error
	p.stopped.Do(func() {
		select {
		case <-p.exited:
			err = fmt.Errorf("exited on its own: %v", p.waitErr)
			return
		default:
		}
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
			if p.waitErr != nil {
				err = fmt.Errorf("after SIGTERM: %w", p.waitErr)
			}
		case <-time.After(stopTimeout):
			_ = p.cmd.Process.Signal(syscall.SIGKILL)
			<-p.exited
			err = fmt.Errorf("did not stop within %s of SIGTERM", stopTimeout)
		}
	})
	return err
}

// Pid is the process id of the gateway.
func (p *Process) Pid() int { return p.cmd.Process.Pid }
