package mcpe2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/amsrouter/ams/services/gateway/internal/gwtest"
)

func TestMain(m *testing.M) {
	code := gwtest.Main(m)
	if amsBuild.dir != "" {
		_ = os.RemoveAll(amsBuild.dir)
	}
	os.Exit(code)
}

// wait is how long a test waits for something that must happen.
const wait = 15 * time.Second

// note is one AMS notification a client saw on the wire.
type note struct {
	Method string
	Params map[string]any
	Raw    json.RawMessage // params
	Via    string          // "post" (ride-along) or "push"
}

// notes collects a client's notifications as they arrive.
type notes struct {
	mu     sync.Mutex
	list   []note
	signal chan struct{}
}

func newNotes() *notes { return &notes{signal: make(chan struct{})} }

func (n *notes) add(x note) {
	n.mu.Lock()
	n.list = append(n.list, x)
	close(n.signal)
	n.signal = make(chan struct{})
	n.mu.Unlock()
}

func (n *notes) snapshot() ([]note, chan struct{}) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]note(nil), n.list...), n.signal
}

// waitFor waits until pred holds for the notes seen so far.
func (n *notes) waitFor(t testing.TB, what string, pred func([]note) bool) []note {
	t.Helper()
	deadline := time.After(wait)
	for {
		list, sig := n.snapshot()
		if pred(list) {
			return list
		}
		select {
		case <-sig:
		case <-deadline:
			t.Fatalf("timed out waiting for %s; saw %d notifications: %s", what, len(list), summary(list))
		}
	}
}

func summary(list []note) string {
	var b strings.Builder
	for i, x := range list {
		if i == 20 {
			b.WriteString(" …")
			break
		}
		b.WriteString(" " + x.Via + ":" + strings.TrimPrefix(x.Method, "notifications/ams/") + string(x.Raw))
	}
	return b.String()
}

// observer is the HTTP transport of a test MCP client: it sends each
// request to the gateway pick chooses (a load balancer without sticky
// sessions), adds the Bearer credential, and records the AMS
// notifications of every SSE answer (POST ride-along and push leg).
type observer struct {
	base   http.RoundTripper
	hosts  []string
	bearer string
	notes  *notes

	mu       sync.Mutex
	n        int
	pick     func(n int) int
	pushOpen chan struct{}
	pushOnce sync.Once
	session  string
	requests []string // "METHOD host" per request
}

func newObserver(hosts []string, bearer string) *observer {
	return &observer{
		base: http.DefaultTransport, hosts: hosts, bearer: bearer, notes: newNotes(),
		pick: func(int) int { return 0 }, pushOpen: make(chan struct{}),
	}
}

func (o *observer) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	o.mu.Lock()
	host := o.hosts[o.pick(o.n)%len(o.hosts)]
	o.n++
	o.requests = append(o.requests, req.Method+" "+host)
	o.mu.Unlock()
	req.URL.Host = host
	req.Host = host
	if o.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+o.bearer)
	}
	resp, err := o.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if sid := resp.Header.Get("Mcp-Session-Id"); sid != "" {
		o.mu.Lock()
		o.session = sid
		o.mu.Unlock()
	}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		via := "post"
		if req.Method == http.MethodGet {
			via = "push"
			o.pushOnce.Do(func() { close(o.pushOpen) })
		}
		pr, pw := io.Pipe()
		go o.tee(resp.Body, pw, via)
		resp.Body = pr
	}
	return resp, nil
}

// tee copies an SSE body to the SDK and records its AMS notifications.
func (o *observer) tee(body io.ReadCloser, pw *io.PipeWriter, via string) {
	defer body.Close()
	br := bufio.NewReader(body)
	var data []byte
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			if _, werr := pw.Write(line); werr != nil {
				return
			}
			l := bytes.TrimRight(line, "\r\n")
			switch {
			case len(l) == 0:
				o.dispatch(data, via)
				data = nil
			case bytes.HasPrefix(l, []byte("data:")):
				v := bytes.TrimPrefix(bytes.TrimPrefix(l, []byte("data:")), []byte(" "))
				if data != nil {
					data = append(data, '\n')
				}
				data = append(data, v...)
			}
		}
		if err != nil {
			pw.CloseWithError(err)
			return
		}
	}
}

func (o *observer) dispatch(data []byte, via string) {
	var m struct {
		Method string          `json:"method"`
		Params json.RawMessage `json:"params"`
	}
	if len(data) == 0 || json.Unmarshal(data, &m) != nil || !strings.HasPrefix(m.Method, "notifications/ams/") {
		return
	}
	var p map[string]any
	d := json.NewDecoder(bytes.NewReader(m.Params))
	d.UseNumber()
	_ = d.Decode(&p)
	o.notes.add(note{Method: m.Method, Params: p, Raw: m.Params, Via: via})
}

// client is a test MCP client: the Go SDK's, over Streamable HTTP.
type client struct {
	t     testing.TB
	cs    *mcp.ClientSession
	obs   *observer // HTTP clients only
	notes *notes
}

type clientOpts struct {
	bearer string
	// hosts are the gateways, "127.0.0.1:port"; pick chooses one per
	// request (nil: the first).
	hosts []string
	pick  func(n int) int
	// path is "/mcp" or a magic link's path and query.
	path string
	// noPush disables the push leg.
	noPush bool
}

func hostOf(t testing.TB, base string) string {
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

func connect(t testing.TB, o clientOpts) *client {
	t.Helper()
	obs := newObserver(o.hosts, o.bearer)
	if o.pick != nil {
		obs.pick = o.pick
	}
	path := o.path
	if path == "" {
		path = "/mcp"
	}
	tr := &mcp.StreamableClientTransport{
		Endpoint:             "http://" + o.hosts[0] + path,
		HTTPClient:           &http.Client{Transport: obs},
		MaxRetries:           -1,
		DisableStandaloneSSE: o.noPush,
	}
	c := mcp.NewClient(&mcp.Implementation{Name: "mcpe2e", Version: "1.0.0"}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	cs, err := c.Connect(ctx, tr, nil)
	if err != nil {
		t.Fatalf("connect MCP client: %v", err)
	}
	t.Cleanup(func() { _ = cs.Close() })
	cl := &client{t: t, cs: cs, obs: obs, notes: obs.notes}
	if !o.noPush {
		select {
		case <-obs.pushOpen:
		case <-time.After(wait):
			t.Fatal("the push leg did not open")
		}
	}
	return cl
}

// result is a tool result: its payload decoded and raw, and isError.
type result struct {
	m       map[string]any
	raw     string
	isError bool
}

func (c *client) call(tool string, args any) result {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	res, err := c.cs.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: args})
	if err != nil {
		c.t.Fatalf("%s: %v", tool, err)
	}
	if len(res.Content) != 1 {
		c.t.Fatalf("%s: %d content items, want 1", tool, len(res.Content))
	}
	tc, ok := res.Content[0].(*mcp.TextContent)
	if !ok {
		c.t.Fatalf("%s: content is %T, want text", tool, res.Content[0])
	}
	m := decode(c.t, []byte(tc.Text))
	sc, _ := json.Marshal(res.StructuredContent)
	if !jsonEqual(sc, []byte(tc.Text)) {
		c.t.Fatalf("%s: structuredContent %s differs from the text %s", tool, sc, tc.Text)
	}
	return result{m: m, raw: tc.Text, isError: res.IsError}
}

// ok calls a tool that must succeed.
func (c *client) ok(tool string, args any) map[string]any {
	c.t.Helper()
	r := c.call(tool, args)
	if r.isError {
		c.t.Fatalf("%s: error %s", tool, r.raw)
	}
	return r.m
}

// fail calls a tool that must return the domain error code.
func (c *client) fail(tool string, args any, code string) map[string]any {
	c.t.Helper()
	r := c.call(tool, args)
	if !r.isError || r.m["error"] != code {
		c.t.Fatalf("%s: got %s (isError %v), want error %s", tool, r.raw, r.isError, code)
	}
	return r.m
}

func decode(t testing.TB, b []byte) map[string]any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		t.Fatalf("not a JSON object: %v: %.300s", err, b)
	}
	return m
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	ab, _ := json.Marshal(x)
	bb, _ := json.Marshal(y)
	return bytes.Equal(ab, bb)
}

// tokens returns the token notifications of a stream, deduplicated on seq,
// in seq order of arrival.
func tokens(list []note, streamID string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range list {
		if x.Method != "notifications/ams/token" || x.Params["stream_id"] != streamID {
			continue
		}
		seq := x.Params["seq"].(json.Number).String()
		if seen[seq] {
			continue
		}
		seen[seq] = true
		out = append(out, x.Params["data"].(string))
	}
	return out
}

func has(list []note, method string, pred func(p map[string]any) bool) bool {
	for _, x := range list {
		if x.Method == method && (pred == nil || pred(x.Params)) {
			return true
		}
	}
	return false
}

// recvFrames returns the frames of an ams_recv payload.
func recvFrames(t testing.TB, m map[string]any) []map[string]any {
	t.Helper()
	raw, ok := m["frames"].([]any)
	if !ok {
		t.Fatalf("ams_recv payload has no frames array: %v", m)
	}
	out := make([]map[string]any, len(raw))
	for i, f := range raw {
		out[i] = f.(map[string]any)
	}
	return out
}

// recvTokens drains a session with ams_recv until want tokens of stream
// arrived, and returns their data in order.
func (c *client) recvTokens(streamID string, want int) []string {
	c.t.Helper()
	var out []string
	deadline := time.Now().Add(wait)
	for len(out) < want {
		if time.Now().After(deadline) {
			c.t.Fatalf("ams_recv: got %d tokens of %s, want %d: %v", len(out), streamID, want, out)
		}
		m := c.ok("ams_recv", map[string]any{"wait_ms": 2000})
		for _, f := range recvFrames(c.t, m) {
			p, _ := f["params"].(map[string]any)
			if f["method"] == "notifications/ams/token" && p["stream_id"] == streamID {
				out = append(out, p["data"].(string))
			}
		}
	}
	return out
}

// system starts n gateways with one account per namespace given, and
// returns the system and the credentials.
func system(t testing.TB, n int, namespaces ...string) (*gwtest.System, map[string]string) {
	t.Helper()
	sys := gwtest.Start(t, gwtest.Options{Gateways: n})
	creds := map[string]string{}
	for _, ns := range namespaces {
		_, creds[ns] = sys.CreateAccount(t, 0, ns)
	}
	return sys, creds
}

func hosts(t testing.TB, sys *gwtest.System) []string {
	out := make([]string, len(sys.Gateways))
	for i := range sys.Gateways {
		out[i] = hostOf(t, sys.URL(i))
	}
	return out
}

// only returns a pick function that always chooses gateway i.
func only(i int) func(int) int { return func(int) int { return i } }
