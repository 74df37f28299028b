package viewere2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// wait bounds a wait for a frame that must come.
const wait = 10 * time.Second

// participant is a WebSocket participant of a conversation.
type participant struct {
	t      testing.TB
	ws     *websocket.Conn
	frames chan map[string]any
	done   chan struct{}
}

// connectURL turns a magic link into its /connect URL (spec 4.1).
func connectURL(link string) string {
	u := strings.Replace(link, "http://", "ws://", 1)
	i := strings.Index(u, "?")
	return u[:i] + "/connect" + u[i:]
}

// join connects to the conversation of link with a credential and a
// stream name, plus headers (X-AMS-Stream-Metadata and
// X-AMS-Peer-Identity given as JSON text, base64-encoded here), and returns
// the participant with its joined frame.
func join(t testing.TB, link, credential, name string, headers map[string]string) (*participant, map[string]any) {
	t.Helper()
	h := http.Header{}
	h.Set("Authorization", "Bearer "+credential)
	h.Set("X-AMS-Stream-Name", name)
	for k, v := range headers {
		switch k {
		case "X-AMS-Stream-Metadata", "X-AMS-Peer-Identity":
			v = base64.StdEncoding.EncodeToString([]byte(v))
		}
		h.Set(k, v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, connectURL(link), &websocket.DialOptions{HTTPHeader: h})
	if err != nil {
		t.Fatalf("dial %s: %v", name, err)
	}
	p := &participant{t: t, ws: ws, frames: make(chan map[string]any, 1024), done: make(chan struct{})}
	go p.readLoop()
	t.Cleanup(func() { p.close() })
	j := p.next()
	if j["type"] != "joined" {
		t.Fatalf("%s: first frame %v, want joined", name, j)
	}
	return p, j
}

func (p *participant) readLoop() {
	defer close(p.done)
	for {
		_, b, err := p.ws.Read(context.Background())
		if err != nil {
			return
		}
		var m map[string]any
		if json.Unmarshal(b, &m) == nil {
			p.frames <- m
		}
	}
}

// next returns the next frame, failing if none comes in time.
func (p *participant) next() map[string]any {
	p.t.Helper()
	select {
	case m := <-p.frames:
		return m
	case <-p.done:
		p.t.Fatalf("connection ended while waiting for a frame")
	case <-time.After(wait):
		p.t.Fatalf("no frame within %s", wait)
	}
	return nil
}

// send sends tokens, one frame each.
func (p *participant) send(tokens ...string) {
	p.t.Helper()
	for _, tok := range tokens {
		b, _ := json.Marshal(map[string]string{"type": "token", "data": tok})
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		err := p.ws.Write(ctx, websocket.MessageText, b)
		cancel()
		if err != nil {
			p.t.Fatalf("send token: %v", err)
		}
	}
}

// close leaves with a close handshake (bounded) and waits for the reader.
func (p *participant) close() {
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = p.ws.Close(websocket.StatusNormalClosure, "")
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
	}
	_ = p.ws.CloseNow()
	<-p.done
}

// peerNames lists the stream names of a joined frame's peers.
func peerNames(j map[string]any) []string {
	var out []string
	for _, p := range j["peers"].([]any) {
		out = append(out, p.(map[string]any)["stream_name"].(string))
	}
	return out
}

// proxy is a TCP relay in front of a gateway, to cut the browser's
// connections (a network blip) and refuse new ones for a while.
type proxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	down  bool
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// startProxy relays 127.0.0.1:<random> to target (host:port) until cleanup.
func startProxy(t testing.TB, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy: listen: %v", err)
	}
	p := &proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Go(p.accept)
	t.Cleanup(func() {
		_ = ln.Close()
		p.cut()
		p.wg.Wait()
	})
	return p
}

// URL is the proxy's http:// base.
func (p *proxy) URL() string { return "http://" + p.ln.Addr().String() }

func (p *proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down := p.down
		if !down {
			p.conns[c] = struct{}{}
		}
		p.mu.Unlock()
		if down {
			_ = c.Close()
			continue
		}
		p.wg.Go(func() { p.relay(c) })
	}
}

func (p *proxy) relay(c net.Conn) {
	defer p.forget(c)
	up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		return
	}
	p.mu.Lock()
	if _, ok := p.conns[c]; !ok { // cut meanwhile
		p.mu.Unlock()
		_ = up.Close()
		return
	}
	p.conns[up] = struct{}{}
	p.mu.Unlock()
	defer p.forget(up)
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(up, c)
		_ = up.Close()
		close(done)
	}()
	_, _ = io.Copy(c, up)
	_ = c.Close()
	<-done
}

func (p *proxy) forget(c net.Conn) {
	_ = c.Close()
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

// cut closes every relayed connection.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		_ = c.Close()
		delete(p.conns, c)
	}
}

// setDown refuses (down) or relays new connections.
func (p *proxy) setDown(down bool) {
	p.mu.Lock()
	p.down = down
	p.mu.Unlock()
}

// artifactDir is $AMS_ARTIFACTS, else artifacts/ at the repository root
// (git-ignored), created if needed.
func artifactDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("AMS_ARTIFACTS")
	if dir == "" {
		root, err := repoRoot()
		if err != nil {
			t.Fatalf("artifacts: %v", err)
		}
		dir = filepath.Join(root, "artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("artifacts: %v", err)
	}
	return dir
}

// repoRoot is the nearest directory above the working directory holding
// go.work.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.work above the working directory")
		}
		dir = parent
	}
}

// writeArtifact writes data to the artifact directory and returns its path.
func writeArtifact(t testing.TB, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(artifactDir(t), name)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatalf("artifacts: %v", err)
	}
	return path
}
