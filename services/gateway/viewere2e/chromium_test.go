package viewere2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/go-cmp/cmp"
)

// browser is a headless Chromium driven over the Chrome DevTools Protocol:
// just the few commands these tests need (Target, Page, Runtime), on one
// page target with a flattened session.
type browser struct {
	t       testing.TB
	cmd     *exec.Cmd
	ws      *websocket.Conn
	session string // the page's CDP session id

	mu      sync.Mutex
	nextID  int64
	pending map[int64]chan cdpMessage
	logs    []string // console messages, exceptions and log entries
	done    chan struct{}
	readErr error
}

type cdpMessage struct {
	ID        int64           `json:"id,omitempty"`
	SessionID string          `json:"sessionId,omitempty"`
	Method    string          `json:"method,omitempty"`
	Params    json.RawMessage `json:"params,omitempty"`
	Result    json.RawMessage `json:"result,omitempty"`
	Error     *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error,omitempty"`
}

// chromiumPath finds Debian's chromium. The test fails without it: .ci/run
// installs the package.
func chromiumPath(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("AMS_CHROMIUM"); p != "" {
		return p
	}
	p, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium not found (%v): install Debian's chromium package (apt-get install chromium); .ci/run does", err)
	}
	return p
}

// startBrowser starts headless Chromium with a fresh profile, connects to
// its DevTools endpoint and opens one blank page. Everything is stopped at
// cleanup, before the profile directory is removed.
func startBrowser(t testing.TB) *browser {
	t.Helper()
	dir := t.TempDir() // registered first, so removed after the browser stops
	cmd := exec.Command(chromiumPath(t),
		"--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--hide-scrollbars", "--window-size=1100,760",
		"--user-data-dir="+dir, "--remote-debugging-port=0", "about:blank")
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its helpers go with it
	if err := cmd.Start(); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	b := &browser{t: t, cmd: cmd, pending: map[int64]chan cdpMessage{}, done: make(chan struct{})}
	t.Cleanup(func() { b.stop(exited) })

	// Chromium writes the port it bound and the browser target's path.
	var port, wsPath string
	deadline := time.Now().Add(30 * time.Second)
	for port == "" {
		raw, err := os.ReadFile(filepath.Join(dir, "DevToolsActivePort"))
		if lines := strings.Split(strings.TrimSpace(string(raw)), "\n"); err == nil && len(lines) == 2 {
			port, wsPath = lines[0], lines[1]
			break
		}
		select {
		case <-exited:
			t.Fatalf("chromium exited before DevTools was up: %s", tail(stderr.String()))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("chromium DevTools not up within 30s: %s", tail(stderr.String()))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws://127.0.0.1:"+port+wsPath, nil)
	if err != nil {
		t.Fatalf("dial chromium devtools: %v", err)
	}
	ws.SetReadLimit(64 << 20) // screenshots
	b.ws = ws
	go b.readLoop()

	var target struct {
		TargetID string `json:"targetId"`
	}
	b.callTo("", "Target.createTarget", map[string]any{"url": "about:blank"}, &target)
	var att struct {
		SessionID string `json:"sessionId"`
	}
	b.callTo("", "Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}, &att)
	b.session = att.SessionID
	for _, domain := range []string{"Page", "Runtime", "Log"} {
		b.call(domain+".enable", nil, nil)
	}
	return b
}

// stop closes the browser, then kills its process group if it lingers.
func (b *browser) stop(exited <-chan struct{}) {
	if b.ws != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, _ = b.send(ctx, "", "Browser.close", nil)
		cancel()
	}
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	}
	// Helpers of the group still alive after the browser exited.
	_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
	if b.ws != nil {
		_ = b.ws.CloseNow()
		<-b.done
	}
}

func (b *browser) readLoop() {
	defer close(b.done)
	for {
		_, data, err := b.ws.Read(context.Background())
		if err != nil {
			b.mu.Lock()
			b.readErr = err
			for id, ch := range b.pending {
				close(ch)
				delete(b.pending, id)
			}
			b.mu.Unlock()
			return
		}
		var m cdpMessage
		if err := json.Unmarshal(data, &m); err != nil {
			continue
		}
		b.mu.Lock()
		if m.ID != 0 {
			if ch, ok := b.pending[m.ID]; ok {
				ch <- m
				delete(b.pending, m.ID)
			}
		} else if line := logLine(m); line != "" {
			b.logs = append(b.logs, line)
		}
		b.mu.Unlock()
	}
}

// logLine renders the page events worth showing when a test fails.
func logLine(m cdpMessage) string {
	switch m.Method {
	case "Runtime.consoleAPICalled", "Runtime.exceptionThrown", "Log.entryAdded":
		return m.Method + " " + string(m.Params)
	}
	return ""
}

// Logs returns what the page logged so far.
func (b *browser) Logs() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Join(b.logs, "\n")
}

// send issues one command and waits for its answer.
func (b *browser) send(ctx context.Context, session, method string, params any) (json.RawMessage, error) {
	b.mu.Lock()
	if b.readErr != nil {
		b.mu.Unlock()
		return nil, b.readErr
	}
	b.nextID++
	id := b.nextID
	ch := make(chan cdpMessage, 1)
	b.pending[id] = ch
	b.mu.Unlock()
	req := map[string]any{"id": id, "method": method}
	if params != nil {
		req["params"] = params
	}
	if session != "" {
		req["sessionId"] = session
	}
	data, _ := json.Marshal(req)
	if err := b.ws.Write(ctx, websocket.MessageText, data); err != nil {
		return nil, fmt.Errorf("send %s: %w", method, err)
	}
	select {
	case m, ok := <-ch:
		if !ok {
			return nil, fmt.Errorf("%s: devtools connection ended", method)
		}
		if m.Error != nil {
			return nil, fmt.Errorf("%s: %s (%d)", method, m.Error.Message, m.Error.Code)
		}
		return m.Result, nil
	case <-ctx.Done():
		b.mu.Lock()
		delete(b.pending, id)
		b.mu.Unlock()
		return nil, fmt.Errorf("%s: %w", method, ctx.Err())
	}
}

// callTo sends a command to a session ("" = the browser) and decodes the
// result into out (if not nil), failing the test on any error.
func (b *browser) callTo(session, method string, params, out any) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := b.send(ctx, session, method, params)
	if err != nil {
		b.t.Fatalf("chromium: %v", err)
	}
	if out != nil {
		if err := json.Unmarshal(res, out); err != nil {
			b.t.Fatalf("chromium: decode %s result: %v", method, err)
		}
	}
}

// call sends a command to the page.
func (b *browser) call(method string, params, out any) {
	b.t.Helper()
	b.callTo(b.session, method, params, out)
}

// navigate opens url in the page and waits until it has loaded.
func (b *browser) navigate(url string) {
	b.t.Helper()
	var res struct {
		ErrorText string `json:"errorText"`
	}
	b.call("Page.navigate", map[string]any{"url": url}, &res)
	if res.ErrorText != "" {
		b.t.Fatalf("chromium: navigate: %s", res.ErrorText)
	}
	b.waitFor("the page loaded", `document.readyState === "complete" && location.href !== "about:blank"`, true)
}

// reload reloads the page and waits until the new document has loaded.
func (b *browser) reload() {
	b.t.Helper()
	b.eval(`window.__before_reload = true`)
	b.call("Page.reload", map[string]any{"ignoreCache": true}, nil)
	b.waitFor("the page reloaded", `window.__before_reload === undefined && document.readyState === "complete"`, true)
}

// eval evaluates a JavaScript expression in the page and returns its value
// as JSON.
func (b *browser) eval(expr string) json.RawMessage {
	b.t.Helper()
	var res struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		Exception *struct {
			Text string `json:"text"`
		} `json:"exceptionDetails"`
	}
	b.call("Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true}, &res)
	if res.Exception != nil {
		b.t.Fatalf("chromium: evaluate %q: %s", expr, res.Exception.Text)
	}
	return res.Result.Value
}

// evalString evaluates expr, which must yield a string (or null: "").
func (b *browser) evalString(expr string) string {
	b.t.Helper()
	var s *string
	if v := b.eval(expr); len(v) > 0 {
		if err := json.Unmarshal(v, &s); err != nil {
			b.t.Fatalf("chromium: %q is not a string: %s", expr, v)
		}
	}
	if s == nil {
		return ""
	}
	return *s
}

// pageWait bounds a wait for the page to show something.
const pageWait = 20 * time.Second

// waitFor polls expr until it yields want (compared as JSON), failing
// after pageWait with the last value and the page's logs.
func (b *browser) waitFor(what, expr string, want any) {
	b.t.Helper()
	// Both sides as JSON values: numbers are float64, as they decode.
	var wantV any
	wantJSON, _ := json.Marshal(want)
	_ = json.Unmarshal(wantJSON, &wantV)
	deadline := time.Now().Add(pageWait)
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		raw := b.eval(expr)
		var got any
		if json.Unmarshal(raw, &got) == nil && cmp.Equal(got, wantV) {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("waiting for %s: got %#v, want %#v\nexpression: %s\npage logs:\n%s", what, got, wantV, expr, b.Logs())
		}
		<-tick.C
	}
}

// screenshot captures the page as PNG.
func (b *browser) screenshot() []byte {
	b.t.Helper()
	var res struct {
		Data string `json:"data"`
	}
	b.call("Page.captureScreenshot", map[string]any{"format": "png", "captureBeyondViewport": true}, &res)
	png, err := base64.StdEncoding.DecodeString(res.Data)
	if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) {
		b.t.Fatalf("chromium: screenshot is not a PNG (%v)", err)
	}
	return png
}

// tail is the end of a process's output, for failure messages.
func tail(s string) string {
	if len(s) > 2000 {
		s = "…" + s[len(s)-2000:]
	}
	return s
}
