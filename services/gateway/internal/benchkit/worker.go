package benchkit

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/amsrouter/ams/services/internal/natsserver"
	"github.com/amsrouter/ams/services/internal/pprofserve"
)

// A worker is a child process of the kit (`ams bench worker`): it runs
// the NATS server of a system, so that its CPU and memory are its own, or
// holds client connections beyond the kit's file limit. The kit writes
// one JSON job line on its stdin and keeps stdin open; the worker answers
// with lines on stdout ("progress <n>", "ready <text>", "error <text>")
// and ends when stdin closes.

// Job is a worker's task.
type Job struct {
	// Kind is "nats" (serve NATS with JetStream in StoreDir), "ws-idle"
	// (hold idle WebSocket connections) or "nats-idle" (hold idle raw NATS
	// connections).
	Kind     string
	StoreDir string `json:",omitempty"`
	// Pprof (nats): serve the worker's runtime profiles, the NATS
	// server's, on 127.0.0.1 at a port of its own; the worker names it on
	// a "pprof <url>" line before "ready".
	Pprof bool `json:",omitempty"`
	// Dials are the connections to hold (ws-idle), or NATSURL × Count
	// (nats-idle).
	Dials       []DialOptions `json:",omitempty"`
	NATSURL     string        `json:",omitempty"`
	Count       int           `json:",omitempty"`
	SourceIPs   int           `json:",omitempty"`
	Concurrency int           `json:",omitempty"`
}

// RunWorker runs the job read from in, answering on out.
func RunWorker(ctx context.Context, in io.Reader, out io.Writer) error {
	br := bufio.NewReader(in)
	line, err := br.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("read job: %w", err)
	}
	var job Job
	if err := json.Unmarshal(line, &job); err != nil {
		return fmt.Errorf("decode job: %w", err)
	}
	RaiseFileLimit(1 << 20)
	var omu sync.Mutex
	say := func(format string, args ...any) {
		omu.Lock()
		defer omu.Unlock()
		fmt.Fprintf(out, format+"\n", args...)
	}
	// The job ends when the kit closes stdin (or dies).
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		_, _ = io.Copy(io.Discard, br)
		cancel()
	}()
	switch job.Kind {
	case "nats":
		ns, err := natsserver.Start(natsserver.Options{StoreDir: job.StoreDir, Listen: true, Port: -1})
		if err != nil {
			say("error %v", err)
			return err
		}
		if job.Pprof {
			addr, wait, err := pprofserve.Serve(ctx, "127.0.0.1:0", slog.New(slog.DiscardHandler))
			if err != nil {
				ns.Stop()
				say("error %v", err)
				return err
			}
			defer wait()
			say("pprof http://%s", addr)
		}
		say("ready %s", ns.URL())
		<-ctx.Done()
		ns.Stop()
		return nil
	case "ws-idle":
		return holdWS(ctx, job, say)
	case "nats-idle":
		return holdNATS(ctx, job, say)
	}
	say("error unknown job kind %q", job.Kind)
	return fmt.Errorf("unknown job kind %q", job.Kind)
}

// holdWS dials the job's WebSocket connections (Concurrency at a time),
// reads each one's `joined`, then keeps reading (answering pings) until
// ctx ends.
func holdWS(ctx context.Context, job Job, say func(string, ...any)) error {
	return hold(ctx, len(job.Dials), job.Concurrency, say,
		func(ctx context.Context, i int) (*WSConn, error) {
			c, _, err := dialJoined(ctx, job.Dials[i])
			if err != nil {
				return nil, err
			}
			go func() {
				for {
					if _, err := c.ReadMessage(); err != nil {
						return
					}
				}
			}()
			return c, nil
		},
		func(c *WSConn) { _ = c.Abort() })
}

// holdNATS opens Count raw NATS protocol connections (CONNECT, PING,
// PONG), then answers the server's pings until ctx ends.
func holdNATS(ctx context.Context, job Job, say func(string, ...any)) error {
	addr := strings.TrimPrefix(job.NATSURL, "nats://")
	return hold(ctx, job.Count, job.Concurrency, say,
		func(ctx context.Context, i int) (net.Conn, error) {
			c, err := dialNATSRaw(ctx, addr, sourceIP(job.SourceIPs, i))
			if err != nil {
				return nil, err
			}
			go answerPings(c)
			return c, nil
		},
		func(c net.Conn) { _ = c.Close() })
}

// hold opens count connections with open, concurrency at a time, says
// "ready N" once all are open (or "error …"), holds them until ctx ends
// and closes them with close.
func hold[C any](ctx context.Context, count, concurrency int, say func(string, ...any),
	open func(context.Context, int) (C, error), close func(C)) error {
	conns := make([]C, count)
	opened := make([]bool, count)
	var n atomic.Int64
	stopProgress := progressLines(&n, say)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(1, concurrency))
	for i := range count {
		g.Go(func() error {
			c, err := open(gctx, i)
			if err != nil {
				return fmt.Errorf("connection %d: %w", i, err)
			}
			conns[i], opened[i] = c, true
			n.Add(1)
			return nil
		})
	}
	err := g.Wait()
	stopProgress()
	defer func() {
		for i, c := range conns {
			if opened[i] {
				close(c)
			}
		}
	}()
	if err != nil {
		say("error %v", err)
		return err
	}
	say("ready %d", n.Load())
	<-ctx.Done()
	return nil
}

// dialNATSRaw connects with the NATS text protocol and returns once the
// server answered PONG to the first PING (the connection is registered).
func dialNATSRaw(ctx context.Context, addr string, local net.IP) (net.Conn, error) {
	d := net.Dialer{Timeout: 10 * time.Second}
	if local != nil {
		d.LocalAddr = &net.TCPAddr{IP: local}
	}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(15 * time.Second))
	if _, err := io.WriteString(c, "CONNECT {\"verbose\":false,\"pedantic\":false,\"protocol\":1}\r\nPING\r\n"); err != nil {
		c.Close()
		return nil, err
	}
	br := bufio.NewReaderSize(c, 4096)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			c.Close()
			return nil, err
		}
		if strings.HasPrefix(line, "PONG") {
			break
		}
		if strings.HasPrefix(line, "-ERR") {
			c.Close()
			return nil, errors.New(strings.TrimSpace(line))
		}
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}

func answerPings(c net.Conn) {
	br := bufio.NewReaderSize(c, 512)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		if strings.HasPrefix(line, "PING") {
			if _, err := io.WriteString(c, "PONG\r\n"); err != nil {
				return
			}
		}
	}
}

func sourceIP(n, i int) net.IP {
	if n <= 0 {
		return nil
	}
	return net.IPv4(127, 0, 0, byte(2+i%n))
}

// progressLines writes "progress <n>" every second until stopped.
func progressLines(n *atomic.Int64, say func(string, ...any)) func() {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				say("progress %d", n.Load())
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// Worker is a running worker process.
type Worker struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string
	exited chan struct{}
	// Done counts what the worker reported (progress or ready).
	Done atomic.Int64
	// pprofURL is set by Ready, on its caller's goroutine.
	pprofURL string
}

// StartWorker starts a worker with the given command and job.
func StartWorker(cmd *exec.Cmd, job Job) (*Worker, error) {
	w := &Worker{cmd: cmd, lines: make(chan string, 16), exited: make(chan struct{})}
	var err error
	if w.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if cmd.Env == nil {
		cmd.Env = baseEnv()
	}
	cmd.Stderr = nil
	dieWithKit(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start worker: %w", err)
	}
	b, _ := json.Marshal(job)
	if _, err := w.stdin.Write(append(b, '\n')); err != nil {
		w.Stop()
		return nil, fmt.Errorf("send job: %w", err)
	}
	go func() {
		defer close(w.exited)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			if v, ok := strings.CutPrefix(line, "progress "); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				w.Done.Store(n)
				continue
			}
			if v, ok := strings.CutPrefix(line, "ready "); ok {
				if n, err := strconv.ParseInt(v, 10, 64); err == nil {
					w.Done.Store(n)
				}
			}
			select {
			case w.lines <- line:
			default:
			}
		}
		_ = cmd.Wait()
	}()
	return w, nil
}

// Ready waits for the worker's "ready" line and returns its text.
func (w *Worker) Ready(ctx context.Context, timeout time.Duration) (string, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case line := <-w.lines:
			if v, ok := strings.CutPrefix(line, "pprof "); ok {
				w.pprofURL = v
				continue
			}
			if v, ok := strings.CutPrefix(line, "ready "); ok {
				return v, nil
			}
			if v, ok := strings.CutPrefix(line, "error "); ok {
				return "", errors.New(v)
			}
		case <-w.exited:
			return "", errors.New("worker exited before it was ready")
		case <-ctx.Done():
			return "", ctx.Err()
		case <-t.C:
			return "", fmt.Errorf("worker not ready within %s", timeout)
		}
	}
}

// PprofURL is the base URL of the worker's runtime profiles (Job.Pprof),
// known once Ready returned; "" without them.
func (w *Worker) PprofURL() string { return w.pprofURL }

// Pid is the worker's process id.
func (w *Worker) Pid() int { return w.cmd.Process.Pid }

// Stop closes the worker's stdin and waits for it to exit (killing it
// after 15 s).
func (w *Worker) Stop() {
	_ = w.stdin.Close()
	select {
	case <-w.exited:
	case <-time.After(15 * time.Second):
		_ = w.cmd.Process.Kill()
		<-w.exited
	}
}
