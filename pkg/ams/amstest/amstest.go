// Package amstest runs a real AMS system for the tests of programs that
// use the SDK: the `ams dev` binary (gateway, account and link services,
// embedded NATS, SQLite) as a child process on a random loopback port
// with a temporary data directory.
//
//	func TestMain(m *testing.M) { os.Exit(amstest.Main(m)) }
//
//	func TestChat(t *testing.T) {
//		sys := amstest.Start(t)
//		c := &ams.Client{BaseURL: sys.URL}
//		…
//	}
//
// The binary is $AMS_BINARY when set; otherwise it is built once per test
// binary from github.com/amsrouter/ams/services/gateway/cmd/ams, which
// needs the AMS workspace (go.work) around the test. Main removes it.
package amstest

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// amsPackage is the package of the ams binary.
const amsPackage = "github.com/amsrouter/ams/services/gateway/cmd/ams"

// StartTimeout bounds the start of a system (the build not included).
const StartTimeout = 60 * time.Second

// stopTimeout bounds a graceful stop before SIGKILL.
const stopTimeout = 20 * time.Second

var build struct {
	once sync.Once
	dir  string
	path string
	grpc bool // ams dev has -grpc-addr
	err  error
}

// Main runs the tests (m is a *testing.M, or anything that runs them)
// and removes the binary Binary built. Call it from TestMain:
// `os.Exit(amstest.Main(m))`.
func Main(m interface{ Run() int }) int {
	code := m.Run()
	if build.dir != "" {
		_ = os.RemoveAll(build.dir)
	}
	return code
}

// Binary returns the path of the ams binary: $AMS_BINARY, or one built on
// first use.
func Binary() (string, error) {
	build.once.Do(func() {
		if p := os.Getenv("AMS_BINARY"); p != "" {
			build.path = p
		} else {
			build.dir, build.err = os.MkdirTemp("", "amstest-")
			if build.err != nil {
				return
			}
			build.path = filepath.Join(build.dir, "ams")
			out, err := exec.Command("go", "build", "-o", build.path, amsPackage).CombinedOutput()
			if err != nil {
				build.err = fmt.Errorf("go build %s (it needs the AMS workspace; else set AMS_BINARY): %w\n%s", amsPackage, err, out)
				return
			}
		}
		out, _ := exec.Command(build.path, "dev", "-h").CombinedOutput()
		build.grpc = bytes.Contains(out, []byte("-grpc-addr"))
	})
	return build.path, build.err
}

// System is a running `ams dev`.
type System struct {
	// URL is the gateway's public URL, http://127.0.0.1:<port>.
	URL string
	// GRPCAddr is the address of the gateway's gRPC public API, "" when
	// the binary serves none.
	GRPCAddr string
	// Binary is the ams binary the system runs; its client commands can
	// be run against URL.
	Binary string
	// DataDir holds the system's state; a restart keeps it.
	DataDir string

	httpAddr, grpcAddr string
	cmd                *exec.Cmd
	out                *buffer // output of every run
	exited             chan struct{}
	stopped            bool
}

// Start starts a system for the test and stops it at cleanup. On failure
// of the test the system's output is logged.
func Start(t testing.TB) *System {
	t.Helper()
	dir := t.TempDir()
	s, err := StartProcess(dir)
	if err != nil {
		t.Fatalf("amstest: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("amstest: stop: %v", err)
		}
		if t.Failed() {
			t.Logf("ams dev output:\n%s", s.Output())
		}
	})
	return s
}

// StartProcess starts a system keeping its state in dataDir (created if
// missing), for callers without a testing.TB (TestMain, examples). The
// caller stops it.
func StartProcess(dataDir string) (*System, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	s := &System{Binary: bin, DataDir: dataDir, httpAddr: "127.0.0.1:0", out: &buffer{}}
	// The gRPC port is chosen free, then released for ams dev to bind:
	// another listener may take it meanwhile, so a bind failure retries.
	for attempt := 0; attempt < 5; attempt++ {
		if build.grpc {
			port, perr := freePort()
			if perr != nil {
				return nil, perr
			}
			s.grpcAddr = "127.0.0.1:" + port
		}
		if err = s.start(); err == nil {
			return s, nil
		}
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	return nil, err
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

var urlLine = regexp.MustCompile(`AMS is running at (http://\S+)`)

func (s *System) start() error {
	args := []string{"dev", "-http-addr", s.httpAddr, "-data-dir", s.DataDir, "-log-level", "warn"}
	if s.grpcAddr != "" {
		args = append(args, "-grpc-addr", s.grpcAddr)
	}
	// The goroutines of one run use only their own locals: a restart
	// replaces the fields.
	cmd := exec.Command(s.Binary, args...)
	cmd.Env = baseEnv()
	out := s.out
	pr, pw := io.Pipe()
	cmd.Stdout = pw
	cmd.Stderr = out
	exited := make(chan struct{})
	s.cmd, s.exited, s.stopped = cmd, exited, false
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.Binary, err)
	}
	go func() {
		err := cmd.Wait()
		out.setWaitErr(err)
		_ = pw.Close()
		close(exited)
	}()
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			_, _ = out.Write([]byte(line + "\n"))
			if m := urlLine.FindStringSubmatch(line); m != nil && len(found) == 0 {
				found <- m[1]
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	timer := time.NewTimer(StartTimeout)
	defer timer.Stop()
	select {
	case s.URL = <-found:
	case <-exited:
		return fmt.Errorf("ams dev exited: %v\n%s", out.waitErr(), out.String())
	case <-timer.C:
		s.Kill()
		return fmt.Errorf("ams dev did not start within %s\n%s", StartTimeout, s.out.String())
	}
	s.GRPCAddr = s.grpcAddr
	// A restart binds the same ports, so clients can reconnect.
	s.httpAddr = strings.TrimPrefix(s.URL, "http://")
	return nil
}

// Output returns what the system printed so far (banner and warnings).
func (s *System) Output() string { return s.out.String() }

// Stop ends the system with SIGTERM and waits for its graceful shutdown
// (SIGKILL after 20 s). It is idempotent.
func (s *System) Stop() error {
	if s.stopped {
		return nil
	}
	s.stopped = true
	select {
	case <-s.exited:
		return fmt.Errorf("ams dev exited on its own: %v", s.out.waitErr())
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	timer := time.NewTimer(stopTimeout)
	defer timer.Stop()
	select {
	case <-s.exited:
		return s.out.waitErr()
	case <-timer.C:
		_ = s.cmd.Process.Kill()
		<-s.exited
		return errors.New("ams dev did not stop within 20 s of SIGTERM")
	}
}

// Kill ends the system with SIGKILL, like a crash, and waits for it.
func (s *System) Kill() {
	if s.stopped {
		return
	}
	s.stopped = true
	_ = s.cmd.Process.Kill()
	<-s.exited
}

// Restart starts the stopped or killed system again on the same addresses
// and data directory.
func (s *System) Restart() error {
	if !s.stopped {
		if err := s.Stop(); err != nil {
			return err
		}
	}
	return s.start()
}

// Namespace returns a fresh namespace starting with prefix, unique across
// runs against one system.
func Namespace(prefix string) string {
	return prefix + "-" + strings.ToLower(rand.Text()[:10])
}

// baseEnv is the environment without AMS_ variables, so a developer's
// settings do not reach the system under test.
func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AMS_") {
			env = append(env, kv)
		}
	}
	return env
}

// buffer collects the system's output; safe for concurrent use.
type buffer struct {
	mu  sync.Mutex
	b   bytes.Buffer
	err error // the last run's exit
}

func (b *buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func (b *buffer) setWaitErr(err error) { b.mu.Lock(); b.err = err; b.mu.Unlock() }
func (b *buffer) waitErr() error       { b.mu.Lock(); defer b.mu.Unlock(); return b.err }
