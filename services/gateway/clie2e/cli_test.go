// Package clie2e tests the ams client commands end to end: the real ams
// binary as subprocesses against `ams dev` (a separate process too).
package clie2e

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/amsrouter/ams/pkg/ams/amstest"
)

func TestMain(m *testing.M) { os.Exit(amstest.Main(m)) }

// cli runs ams commands with one config file.
type cli struct {
	t      *testing.T
	bin    string
	env    []string
	config string
}

func newCLI(t *testing.T, sys *amstest.System, name string) *cli {
	config := filepath.Join(t.TempDir(), name, "config.json")
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AMS_") && !strings.HasPrefix(kv, "NO_COLOR=") {
			env = append(env, kv)
		}
	}
	env = append(env, "AMS_CONFIG="+config, "AMS_URL="+sys.URL)
	return &cli{t: t, bin: sys.Binary, env: env, config: config}
}

// run runs a command to its end and returns stdout, stderr and the exit
// code.
func (c *cli) run(stdin string, args ...string) (stdout, stderr string, code int) {
	c.t.Helper()
	cmd := exec.Command(c.bin, args...)
	cmd.Env = c.env
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		c.t.Fatalf("ams %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

// must runs a command that must succeed and returns its stdout.
func (c *cli) must(args ...string) string {
	c.t.Helper()
	out, errOut, code := c.run("", args...)
	if code != 0 {
		c.t.Fatalf("ams %v: exit %d\n%s", args, code, errOut)
	}
	return out
}

// proc is a running ams join.
type proc struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout chan string
	stderr chan string
	done   chan struct{}
	err    error

	mu      sync.Mutex
	outLog  []string
	errLog  []string
	outSeen int
}

func (c *cli) start(args ...string) *proc {
	c.t.Helper()
	cmd := exec.Command(c.bin, args...)
	cmd.Env = c.env
	p := &proc{t: c.t, cmd: cmd, stdout: make(chan string, 1024), stderr: make(chan string, 1024), done: make(chan struct{})}
	var err error
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		c.t.Fatal(err)
	}
	so, err := cmd.StdoutPipe()
	if err != nil {
		c.t.Fatal(err)
	}
	se, err := cmd.StderrPipe()
	if err != nil {
		c.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	var readers sync.WaitGroup
	lines := func(r io.Reader, ch chan string, log *[]string) {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			p.mu.Lock()
			*log = append(*log, sc.Text())
			p.mu.Unlock()
			ch <- sc.Text()
		}
	}
	readers.Go(func() { lines(so, p.stdout, &p.outLog) })
	readers.Go(func() { lines(se, p.stderr, &p.errLog) })
	go func() {
		readers.Wait()
		p.err = cmd.Wait()
		close(p.done)
	}()
	c.t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
		if c.t.Failed() {
			p.mu.Lock()
			c.t.Logf("ams %v\nstdout:\n%s\nstderr:\n%s", args[0], strings.Join(p.outLog, "\n"), strings.Join(p.errLog, "\n"))
			p.mu.Unlock()
		}
	})
	return p
}

// expect waits for a line of ch containing want.
func (p *proc) expect(ch chan string, want string) string {
	p.t.Helper()
	timer := time.NewTimer(30 * time.Second)
	defer timer.Stop()
	for {
		select {
		case line := <-ch:
			if strings.Contains(line, want) {
				return line
			}
		case <-timer.C:
			p.t.Fatalf("no line with %q within 30 s", want)
		}
	}
}

func (p *proc) send(line string) {
	p.t.Helper()
	if _, err := io.WriteString(p.stdin, line+"\n"); err != nil {
		p.t.Fatal(err)
	}
}

// exit waits for the process to end and returns its exit code.
func (p *proc) exit() int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.t.Fatal("ams join did not exit within 30 s")
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		p.t.Fatal(p.err)
	}
	return 0
}

// TestCLI: two people create accounts, one mints a conversation, both
// join it with `ams join`, and the lines each types reach the other; they
// leave by end of input and by Ctrl-C.
func TestCLI(t *testing.T) {
	t.Parallel()
	sys := amstest.Start(t)
	alice, bob := newCLI(t, sys, "alice"), newCLI(t, sys, "bob")

	// Accounts: the id on stdout, the credential only in the 0600 file.
	for _, c := range []*cli{alice, bob} {
		out, errOut, code := c.run("", "account", "create", amstest.Namespace("cli"))
		if code != 0 || !strings.HasPrefix(out, "acc_") || strings.Contains(out+errOut, "ams_sk_") {
			t.Fatalf("account create: exit %d, stdout %q, stderr %q", code, out, errOut)
		}
		st, err := os.Stat(c.config)
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("config file: %v %v", st, err)
		}
		var cfg map[string]string
		b, _ := os.ReadFile(c.config)
		if err := json.Unmarshal(b, &cfg); err != nil || !strings.HasPrefix(cfg["credential"], "ams_sk_") || cfg["url"] != sys.URL {
			t.Fatalf("config = %s (%v)", b, err)
		}
	}
	// A second account in the same file is refused.
	if _, errOut, code := alice.run("", "account", "create", amstest.Namespace("again")); code != 1 || !strings.Contains(errOut, "already holds account") {
		t.Errorf("second account: exit %d, %q", code, errOut)
	}

	link := strings.TrimSpace(alice.must("conversation", "create", "-alias", "room", "-metadata", `{"topic":"cli"}`))
	if !strings.Contains(link, "/conversations/room?t=") {
		t.Fatalf("magic link = %q", link)
	}

	a := alice.start("join", "-name", "alice", link)
	a.expect(a.stderr, "joined as alice")
	b := bob.start("join", "-name", "bob", link)
	b.expect(b.stderr, "here: alice")
	a.expect(a.stderr, "bob joined (human)")

	a.send("hello bob")
	b.expect(b.stdout, "alice: hello bob")
	b.send("hi alice")
	a.expect(a.stdout, "bob: hi alice")
	a.send("second line")
	b.expect(b.stdout, "alice: second line")

	// End of input: alice leaves cleanly, bob sees it.
	if err := a.stdin.Close(); err != nil {
		t.Fatal(err)
	}
	if code := a.exit(); code != 0 {
		t.Errorf("alice exited %d", code)
	}
	b.expect(b.stderr, "alice left")
	// Ctrl-C: bob leaves with 1000 and exit code 0.
	if err := b.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := b.exit(); code != 0 {
		t.Errorf("bob exited %d after SIGINT", code)
	}
	for _, p := range []*proc{a, b} {
		p.mu.Lock()
		for _, l := range append(append([]string{}, p.outLog...), p.errLog...) {
			if strings.Contains(l, "\x1b[") {
				t.Errorf("colour on a pipe: %q", l)
			}
		}
		p.mu.Unlock()
	}

	// The conversation is empty again.
	var conv struct {
		Streams []any `json:"streams"`
	}
	if err := json.Unmarshal([]byte(alice.must("conversation", "get", "room")), &conv); err != nil || len(conv.Streams) != 0 {
		t.Errorf("conversation get: %+v %v", conv, err)
	}
}

// TestCLIPipe: a piped `ams join` sends its input and leaves; a listener
// with -stay prints it, colour-free, with the sender's name.
func TestCLIPipe(t *testing.T) {
	t.Parallel()
	sys := amstest.Start(t)
	alice, bob := newCLI(t, sys, "alice"), newCLI(t, sys, "bob")
	alice.must("account", "create", amstest.Namespace("pipe"))
	bob.must("account", "create", amstest.Namespace("pipe"))
	link := strings.TrimSpace(alice.must("conversation", "create"))

	b := bob.start("join", "-stay", "-name", "listener", link)
	b.expect(b.stderr, "joined as listener")
	out, errOut, code := alice.run("one\ntwo\n", "join", "-name", "writer", link)
	if code != 0 || out != "" || !strings.Contains(errOut, "here: listener") {
		t.Fatalf("piped join: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	b.expect(b.stdout, "writer: one")
	b.expect(b.stdout, "writer: two")
	b.expect(b.stderr, "writer left")
}

// TestCLILinksAndRotate: links create, list and revoke; a revoked link
// refuses to join with a one-line error; rotate replaces the saved
// credential.
func TestCLILinksAndRotate(t *testing.T) {
	t.Parallel()
	sys := amstest.Start(t)
	c := newCLI(t, sys, "owner")
	c.must("account", "create", amstest.Namespace("links"))
	c.must("conversation", "create", "-alias", "room")

	guest := strings.TrimSpace(c.must("links", "create", "-label", "guest", "-expires-in", "1h", "room"))
	list := c.must("links", "list", "room")
	lines := strings.Split(strings.TrimSpace(list), "\n")
	if len(lines) != 3 || !strings.Contains(lines[2], "guest") {
		t.Fatalf("links list:\n%s", list)
	}
	linkID := strings.Fields(lines[2])[0]
	if out := c.must("links", "revoke", "room", linkID); !strings.HasPrefix(out, "revoked "+linkID) {
		t.Errorf("revoke: %q", out)
	}
	_, errOut, code := c.run("", "join", guest)
	if code != 1 || errOut != "ams: link_revoked: the link was revoked\n" {
		t.Errorf("join a revoked link: exit %d, stderr %q", code, errOut)
	}
	_, errOut, code = c.run("", "links", "revoke", "room", "lnk_00000000000000000000")
	if code != 1 || !strings.HasPrefix(errOut, "ams: link_not_found: ") {
		t.Errorf("revoke unknown: exit %d, stderr %q", code, errOut)
	}

	before, _ := os.ReadFile(c.config)
	_, errOut, code = c.run("", "rotate")
	after, _ := os.ReadFile(c.config)
	if code != 0 || string(before) == string(after) || strings.Contains(errOut, "ams_sk_") {
		t.Errorf("rotate: exit %d, stderr %q, config changed %v", code, errOut, string(before) != string(after))
	}
	c.must("links", "list", "room") // the new credential works
}

// TestCLIUsage: -h on every command exits 0 with its usage; bad command
// lines exit 2; commands needing an account say how to make one.
func TestCLIUsage(t *testing.T) {
	t.Parallel()
	sys := amstest.Start(t)
	c := newCLI(t, sys, "nobody")
	for _, args := range [][]string{
		{"-h"}, {"account", "-h"}, {"account", "create", "-h"}, {"conversation", "-h"},
		{"conversation", "create", "-h"}, {"conversation", "get", "-h"}, {"join", "-h"},
		{"links", "-h"}, {"links", "list", "-h"}, {"links", "create", "-h"}, {"links", "revoke", "-h"}, {"rotate", "-h"},
	} {
		out, errOut, code := c.run("", args...)
		if code != 0 || !strings.Contains(out+errOut, "Usage") {
			t.Errorf("ams %v: exit %d, %q %q", args, code, out, errOut)
		}
	}
	for _, args := range [][]string{{"join"}, {"account", "create"}, {"links", "revoke", "room"}, {"links", "bogus"}, {"join", "-bogus", "x"}} {
		if _, errOut, code := c.run("", args...); code != 2 || !strings.Contains(errOut, "Usage") {
			t.Errorf("ams %v: exit %d, %q", args, code, errOut)
		}
	}
	_, errOut, code := c.run("", "conversation", "create")
	if code != 1 || !strings.Contains(errOut, "ams account create") {
		t.Errorf("no account: exit %d, %q", code, errOut)
	}
	_, errOut, code = c.run("", "join", "not a link")
	if code != 1 || !strings.HasPrefix(errOut, "ams: not a magic link") {
		t.Errorf("bad link: exit %d, %q", code, errOut)
	}
}
