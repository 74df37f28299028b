// Package faulte2e is the fault suite: the system keeps
// its guarantees while its parts fail. NATS restarted mid-stream (the
// gateways reconnect, clients resume with their cursors, nothing is lost),
// Postgres unavailable (the control plane answers 503 unavailable, live
// streams continue, it recovers when Postgres returns), and a gateway
// killed with SIGKILL (its clients resume on another gateway, nothing is
// lost). Every scenario runs real parts: NATS servers this test controls,
// a Postgres cluster it starts and stops, gateway OS processes.
//
// "Nothing lost" is checked end to end: a writer emits numbered tokens
// through HTTP emit, retrying with an Idempotency-Key until it gets its
// seqs (so the test knows exactly what was accepted), and readers that
// reconnect with their cursor whenever their connection ends must end up
// with exactly those tokens, in seq order, without a duplicate.
package faulte2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/amsrouter/ams/services/gateway/internal/gwtest"
)

func TestMain(m *testing.M) { os.Exit(gwtest.Main(m)) }

// wait bounds anything that must happen; recovery bounds how long the
// system may take to heal after a fault.
const (
	wait     = 10 * time.Second
	recovery = 30 * time.Second
)

// logWarningsOnFailure prints the warnings and errors the system logged
// when the test fails: what a gateway saw of the fault.
func logWarningsOnFailure(t *testing.T, logs *gwtest.LogBuffer) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for line := range strings.Lines(logs.String()) {
			if strings.Contains(line, `"level":"WARN"`) || strings.Contains(line, `"level":"ERROR"`) {
				t.Log(strings.TrimSpace(line))
			}
		}
	})
}

// onGateway rewrites a magic link to point at the gateway at base.
func onGateway(link, base string) string {
	i := len("http://")
	for i < len(link) && link[i] != '/' {
		i++
	}
	return base + link[i:]
}

func connectURL(link string) string {
	u := strings.Replace(link, "http://", "ws://", 1)
	i := strings.Index(u, "?")
	return u[:i] + "/connect" + u[i:]
}

// twoGateways starts a system of two gateways that logs its warnings if
// the test fails, with a writer's and a reader's account and a
// conversation the writer minted: the credentials, and the conversation's
// magic link on gateway 0 and on gateway 1.
func twoGateways(t *testing.T) (sys *gwtest.System, credW, credR, link0, link1 string) {
	t.Helper()
	logs := &gwtest.LogBuffer{}
	sys = gwtest.Start(t, gwtest.Options{Gateways: 2, Log: logs})
	logWarningsOnFailure(t, logs)
	_, credW = sys.CreateAccount(t, 0, "writer")
	_, credR = sys.CreateAccount(t, 0, "reader")
	conv := sys.Mint(t, 0, credW, "writer", `{"alias":"room"}`)
	link0 = conv["magic_link"].(string)
	return sys, credW, credR, link0, onGateway(link0, sys.URL(1))
}

// httpClient bounds a handshake: during a fault a client dials again
// rather than wait for a stuck one.
var httpClient = &http.Client{Timeout: 2 * time.Second}

// dial connects a WebSocket; an error is returned, not fatal (the gateway
// may be down or NATS away).
func dial(ctx context.Context, link, cred, name, resume string) (*websocket.Conn, error) {
	return dialBatch(ctx, link, cred, name, resume, false)
}

// dialBatch is dial with X-AMS-Batch when batch is set.
func dialBatch(ctx context.Context, link, cred, name, resume string, batch bool) (*websocket.Conn, error) {
	h := http.Header{}
	h.Set("Authorization", "Bearer "+cred)
	h.Set("X-AMS-Stream-Name", name)
	if batch {
		h.Set("X-AMS-Batch", "1")
	}
	if resume != "" {
		h.Set("X-AMS-Resume", resume)
	}
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(dctx, connectURL(link), &websocket.DialOptions{HTTPHeader: h, HTTPClient: httpClient})
	if err != nil {
		return nil, err
	}
	c.SetReadLimit(8 << 20)
	return c, nil
}

// follower reads a conversation and keeps reading through faults: when
// its connection ends it reconnects (to the next of its links, round
// robin) with a cursor of what it got. It records the tokens of one
// stream, checking that seqs run on without a gap or duplicate.
type follower struct {
	t      testing.TB
	links  []string
	cred   string
	name   string
	stream string // the name of the stream whose tokens are recorded

	mu         sync.Mutex
	cursor     map[string]uint64
	data       []string // data of seq 1, 2, …
	violations []string
	reconnects int
	changed    chan struct{}
	conn       *websocket.Conn // the current connection, nil between
}

func newFollower(t testing.TB, links []string, cred, name, stream string) *follower {
	return &follower{t: t, links: links, cred: cred, name: name, stream: stream,
		cursor: map[string]uint64{}, changed: make(chan struct{})}
}

// run follows until ctx ends.
func (f *follower) run(ctx context.Context) {
	for i := 0; ctx.Err() == nil; i++ {
		link := f.links[i%len(f.links)]
		c, err := dial(ctx, link, f.cred, f.name, f.resume())
		if err != nil {
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond): // redial pace
			}
			continue
		}
		f.mu.Lock()
		f.conn = c
		f.mu.Unlock()
		f.read(ctx, c)
		_ = c.CloseNow()
		f.mu.Lock()
		f.conn = nil
		f.reconnects++
		f.mu.Unlock()
	}
}

// resume is the cursor of everything received: every stream announced
// or delivered, at its highest seq.
func (f *follower) resume() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.cursor) == 0 {
		return "*"
	}
	parts := make([]string, 0, len(f.cursor))
	for id, seq := range f.cursor {
		parts = append(parts, id+":"+strconv.FormatUint(seq, 10))
	}
	return strings.Join(parts, ",")
}

func (f *follower) read(ctx context.Context, c *websocket.Conn) {
	stop := context.AfterFunc(ctx, func() { _ = c.CloseNow() })
	defer stop()
	for {
		_, b, err := c.Read(ctx)
		if err != nil {
			return
		}
		var m struct {
			Type       string `json:"type"`
			StreamID   string `json:"stream_id"`
			StreamName string `json:"stream_name"`
			Data       string `json:"data"`
			Seq        uint64 `json:"seq"`
			LastSeq    uint64 `json:"last_seq"`
			Peers      []struct {
				StreamID   string `json:"stream_id"`
				StreamName string `json:"stream_name"`
				LastSeq    uint64 `json:"last_seq"`
			} `json:"peers"`
		}
		if err := json.Unmarshal(b, &m); err != nil {
			f.t.Errorf("frame %s: %v", b, err)
			return
		}
		f.mu.Lock()
		switch m.Type {
		case "token", "stream_metadata":
			if m.StreamName == f.stream && m.Type == "token" {
				if m.Seq != uint64(len(f.data))+1 {
					f.violations = append(f.violations, fmt.Sprintf("seq %d after %d", m.Seq, len(f.data)))
				}
				if m.Seq == uint64(len(f.data))+1 {
					f.data = append(f.data, m.Data)
				}
			}
			f.cursor[m.StreamID] = max(f.cursor[m.StreamID], m.Seq)
			close(f.changed)
			f.changed = make(chan struct{})
		case "joined":
			// A fresh connection's announced positions count as received
			// only for streams it had not seen: the cursor asked for the
			// rest.
			for _, p := range m.Peers {
				if _, ok := f.cursor[p.StreamID]; !ok && p.StreamName != f.stream {
					f.cursor[p.StreamID] = p.LastSeq
				}
			}
		}
		f.mu.Unlock()
	}
}

// kick drops the follower's connection without a close handshake, as a
// network failure would; the follower reconnects with its cursor.
func (f *follower) kick() {
	f.mu.Lock()
	c := f.conn
	f.mu.Unlock()
	if c != nil {
		_ = c.CloseNow()
	}
}

// waitFor waits until the follower recorded n tokens of its stream.
func (f *follower) waitFor(t testing.TB, n int, within time.Duration) {
	t.Helper()
	deadline := time.After(within)
	for {
		f.mu.Lock()
		got, ch := len(f.data), f.changed
		f.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			f.mu.Lock()
			v := f.violations[:min(5, len(f.violations))]
			f.mu.Unlock()
			t.Fatalf("follower %s: %d of %d tokens within %s (%d reconnects; violations %v)", f.name, got, n, within, f.reconnects, v)
		}
	}
}

// waitLast waits until the follower recorded the token data and returns
// how many tokens it has then.
func (f *follower) waitLast(t testing.TB, data string, within time.Duration) int {
	t.Helper()
	deadline := time.After(within)
	for {
		f.mu.Lock()
		n, ch := len(f.data), f.changed
		seen := n > 0 && f.data[n-1] == data
		f.mu.Unlock()
		if seen {
			return n
		}
		select {
		case <-ch:
		case <-deadline:
			f.mu.Lock()
			v := f.violations[:min(5, len(f.violations))]
			f.mu.Unlock()
			t.Fatalf("follower %s: no %s within %s (%d tokens, %d reconnects; violations %v)", f.name, data, within, n, f.reconnects, v)
		}
	}
}

// check compares what the follower got with the stream's content.
func (f *follower) check(t testing.TB, sent []string) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.violations) > 0 {
		t.Errorf("follower %s: order violations: %v", f.name, f.violations[:min(10, len(f.violations))])
	}
	if len(f.data) != len(sent) {
		t.Errorf("follower %s: %d tokens, sent %d", f.name, len(f.data), len(sent))
	}
	for i := range min(len(f.data), len(sent)) {
		if f.data[i] != sent[i] {
			t.Errorf("follower %s: seq %d is %q, sent %q", f.name, i+1, f.data[i], sent[i])
			break
		}
	}
	t.Logf("follower %s: %d tokens, %d reconnects", f.name, len(f.data), f.reconnects)
}

// writer writes numbered tokens on its stream over a WebSocket, at a
// steady pace, through faults: when its connection ends it dials again
// (the next of its links, round robin; same account and name, so the
// stream resumes) and goes on with the next token. A WebSocket has no
// acknowledgements, so tokens written on a connection that then died may
// be lost, but only its last ones: sent records, per token, the
// connection (generation) it went out on.
type writer struct {
	t     testing.TB
	links []string
	cred  string
	name  string
	// batch is how many tokens each message carries (an array when more
	// than one).
	batch int

	mu   sync.Mutex
	sent []sentToken
	gen  int
}

type sentToken struct {
	data string
	gen  int
}

// connect dials until a connection of the writer's stream is joined.
func (w *writer) connect(ctx context.Context) (*websocket.Conn, <-chan struct{}, error) {
	for i := 0; ; i++ {
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		c, err := dialBatch(ctx, w.links[i%len(w.links)], w.cred, w.name, "", w.batch > 1)
		if err == nil {
			_, b, rerr := c.Read(ctx)
			if rerr == nil && strings.Contains(string(b), `"type":"joined"`) {
				// Read (and drop) the rest, so pings are answered; done
				// closes when the connection ends.
				done := make(chan struct{})
				go func() {
					defer close(done)
					for {
						if _, _, err := c.Read(ctx); err != nil {
							return
						}
					}
				}()
				w.mu.Lock()
				w.gen++
				w.mu.Unlock()
				return c, done, nil
			}
			_ = c.CloseNow()
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond): // redial pace
		}
	}
}

// run writes tokens 0, 1, 2, … every pace (batch of them at a time) until
// ctx ends or n are written.
func (w *writer) run(ctx context.Context, n int, pace time.Duration) {
	c, done, err := w.connect(ctx)
	if err != nil {
		return
	}
	defer func() { _ = c.CloseNow() }()
	tick := time.NewTicker(pace)
	defer tick.Stop()
	for i := 0; i < n; {
		select {
		case <-ctx.Done():
			return
		case <-done:
			_ = c.CloseNow()
			if c, done, err = w.connect(ctx); err != nil {
				return
			}
		case <-tick.C:
		}
		var els []string
		w.mu.Lock()
		for ; i < n && len(els) < max(w.batch, 1); i++ {
			data := fmt.Sprintf("token-%05d", i)
			w.sent = append(w.sent, sentToken{data, w.gen})
			els = append(els, `{"type":"token","data":"`+data+`"}`)
		}
		w.mu.Unlock()
		msg := els[0]
		if w.batch > 1 {
			msg = "[" + strings.Join(els, ",") + "]"
		}
		wctx, cancel := context.WithTimeout(ctx, time.Second)
		_ = c.Write(wctx, websocket.MessageText, []byte(msg))
		cancel()
	}
}

// written is how many tokens the writer has written.
func (w *writer) written() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.sent)
}

// checkTruth compares the stream's retained content (truth, by seq) with
// what the writer sent: in order, no duplicate, and every token present
// except the last ones of a connection that died (lossy: allow a dead
// connection's tail to be lost; otherwise nothing may be missing).
func (w *writer) checkTruth(t testing.TB, truth []string, lossy bool) {
	t.Helper()
	w.mu.Lock()
	sent := append([]sentToken(nil), w.sent...)
	final := w.gen
	w.mu.Unlock()
	at := map[string]int{}
	for i, d := range truth {
		if _, dup := at[d]; dup {
			t.Fatalf("token %s stored twice", d)
		}
		at[d] = i
	}
	last := -1
	missing := 0
	// lostFrom[gen] is set once a token of that connection is missing:
	// every later token of it must be missing too.
	lostFrom := map[int]bool{}
	for _, s := range sent {
		i, ok := at[s.data]
		if !ok {
			missing++
			if !lossy || s.gen == final {
				t.Errorf("token %s (connection %d of %d) is missing", s.data, s.gen, final)
			}
			lostFrom[s.gen] = true
			continue
		}
		if lostFrom[s.gen] {
			t.Errorf("token %s arrived after an earlier token of its connection was lost", s.data)
		}
		if i < last {
			t.Errorf("token %s stored out of order", s.data)
		}
		last = i
	}
	if len(truth) != len(sent)-missing {
		t.Errorf("the stream holds %d tokens the writer never sent", len(truth)-(len(sent)-missing))
	}
	t.Logf("writer: %d tokens on %d connections, %d lost with a dead connection", len(sent), final, missing)
}

// replay reads the whole retained stream name of the conversation with a
// fresh connection and the cursor "*": the ground truth every reader
// must match. want is its last seq; it fails if that is not reached.
func replay(t testing.TB, link, cred, name string, want int) []string {
	t.Helper()
	f := newFollower(t, []string{link}, cred, "audit", name)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.run(ctx) }()
	f.waitFor(t, want, recovery)
	cancel()
	<-done
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.violations) > 0 {
		t.Fatalf("replay: order violations %v", f.violations)
	}
	return append([]string(nil), f.data...)
}

// joinReader joins link as a reader named name and returns its frames,
// after its joined.
func joinReader(ctx context.Context, t *testing.T, link, cred, name string) <-chan map[string]any {
	t.Helper()
	return resumeReader(ctx, t, link, cred, name, "")
}

// resumeReader is joinReader with a cursor (X-AMS-Resume).
func resumeReader(ctx context.Context, t *testing.T, link, cred, name, resume string) <-chan map[string]any {
	t.Helper()
	r, err := dial(ctx, link, cred, name, resume)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.CloseNow() })
	frames := make(chan map[string]any, 256)
	go readInto(ctx, r, frames)
	waitType(t, frames, "joined")
	return frames
}

// connectWriter joins link as the writer of stream name; the connection
// is closed at the end of the test.
func connectWriter(ctx context.Context, t *testing.T, link, cred, name string) *websocket.Conn {
	t.Helper()
	w := &writer{t: t, links: []string{link}, cred: cred, name: name}
	c, _, err := w.connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.CloseNow() })
	return c
}

// sendToken writes one token frame.
func sendToken(ctx context.Context, t *testing.T, c *websocket.Conn, data string) {
	t.Helper()
	if err := c.Write(ctx, websocket.MessageText, []byte(`{"type":"token","data":"`+data+`"}`)); err != nil {
		t.Fatal(err)
	}
}

// waitFrame waits up to wait for a frame that match accepts, passing
// over others, and returns it.
func waitFrame(t testing.TB, frames <-chan map[string]any, what string, match func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.After(wait)
	for {
		select {
		case m := <-frames:
			if match(m) {
				return m
			}
		case <-deadline:
			t.Fatalf("no %s within %s", what, wait)
		}
	}
}

func streamFrame(typ, name string) func(map[string]any) bool {
	return func(m map[string]any) bool { return m["type"] == typ && m["stream_name"] == name }
}

func tokenFrame(data string) func(map[string]any) bool {
	return func(m map[string]any) bool {
		d, _ := m["data"].(string)
		return m["type"] == "token" && strings.Contains(d, data)
	}
}
