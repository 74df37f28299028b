package streame2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/amsrouter/ams/services/gateway/gatewayd"
	"github.com/amsrouter/ams/services/gateway/internal/gwtest"
)

// sseEvent is one server-sent event.
type sseEvent struct {
	comment string // ":ok", ":keepalive"
	event   string
	id      string
	data    string
	m       map[string]any
}

type sseClient struct {
	t      testing.TB
	resp   *http.Response
	events chan sseEvent
	cancel context.CancelFunc
}

// sseURL is a magic link's /connect URL over HTTP.
func sseURL(link string) string {
	i := strings.Index(link, "?")
	if i < 0 {
		return link + "/connect"
	}
	return link[:i] + "/connect" + link[i:]
}

func dialSSE(t testing.TB, link string, header map[string]string) (*sseClient, *http.Response) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, sseURL(link), nil)
	req.Header.Set("Accept", "text/event-stream")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		cancel()
		return nil, resp
	}
	c := &sseClient{t: t, resp: resp, events: make(chan sseEvent, 1<<14), cancel: cancel}
	t.Cleanup(func() { cancel(); resp.Body.Close() })
	go func() {
		defer close(c.events)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 4<<20)
		var ev sseEvent
		var data []string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.event != "" || len(data) > 0 {
					ev.data = strings.Join(data, "\n")
					_ = json.Unmarshal([]byte(ev.data), &ev.m)
					c.events <- ev
				}
				ev, data = sseEvent{}, nil
			case strings.HasPrefix(line, ":"):
				c.events <- sseEvent{comment: line}
			case strings.HasPrefix(line, "event: "):
				ev.event = line[len("event: "):]
			case strings.HasPrefix(line, "id: "):
				ev.id = line[len("id: "):]
			case strings.HasPrefix(line, "data: "):
				data = append(data, line[len("data: "):])
			}
		}
	}()
	return c, resp
}

func (c *sseClient) next(timeout time.Duration) sseEvent {
	c.t.Helper()
	select {
	case ev, ok := <-c.events:
		if !ok {
			c.t.Fatal("SSE stream ended")
		}
		return ev
	case <-time.After(timeout):
		c.t.Fatalf("no SSE event within %s", timeout)
	}
	return sseEvent{}
}

// nextEvent skips comments.
func (c *sseClient) nextEvent(timeout time.Duration) sseEvent {
	c.t.Helper()
	for {
		ev := c.next(timeout)
		if ev.comment == "" {
			return ev
		}
	}
}

func emitHTTP(t *testing.T, link, cred, name, body string, header map[string]string) *gwtest.Response {
	t.Helper()
	i := strings.Index(link, "?")
	u := link[:i] + "/streams/" + name + "/tokens" + link[i:]
	h := gwtest.Bearer(cred)
	for k, v := range header {
		h[k] = v
	}
	return gwtest.DoResponse(t, http.MethodPost, u, h, body)
}

func putMetadata(t *testing.T, link, cred, name, body string) *gwtest.Response {
	t.Helper()
	i := strings.Index(link, "?")
	return gwtest.DoResponse(t, http.MethodPut, link[:i]+"/streams/"+name+"/metadata"+link[i:], gwtest.Bearer(cred), body)
}

// C62, C63, C65, C67: an SSE reader and a WebSocket writer share a
// conversation; the SSE reader owns a stream it writes with HTTP emit;
// Last-Event-ID resumes without duplicate or gap.
func TestC62SSEAndHTTPEmit(t *testing.T) {
	sys := gwtest.Start(t, gwtest.Options{Gateways: 2, Gateway: func(_ int, cfg *gatewayd.Config) {
		cfg.SSEKeepAlive = 300 * time.Millisecond
	}})
	_, credW := sys.CreateAccount(t, 0, "writer")
	_, credS := sys.CreateAccount(t, 0, "sse")
	conv := sys.Mint(t, 0, credW, "writer", "")
	link := conv["magic_link"].(string)

	ws := dial(t, link, dialOpts{credential: credW, streamName: "w"})
	sidW := ws.expect("joined")["stream_id"].(string)
	s, resp := dialSSE(t, link, map[string]string{"Authorization": "Bearer " + credS, "X-AMS-Stream-Name": "s"})
	if s == nil {
		t.Fatalf("SSE connect: %d", resp.StatusCode)
	}
	for k, v := range map[string]string{"Content-Type": "text/event-stream", "Cache-Control": "no-store", "X-Accel-Buffering": "no"} {
		if got := resp.Header.Get(k); got != v {
			t.Fatalf("%s = %q", k, got)
		}
	}
	if ev := s.next(5 * time.Second); ev.comment != ":ok" {
		t.Fatalf("first output %+v, want :ok", ev)
	}
	j := s.nextEvent(5 * time.Second)
	if j.event != "joined" || j.m["type"] != "joined" {
		t.Fatalf("joined %+v", j)
	}
	sidS := j.m["stream_id"].(string)
	ws.expect("stream_joined")

	// C62: keepalive after silence.
	if ev := s.next(5 * time.Second); ev.comment != ":keepalive" {
		t.Fatalf("expected :keepalive, got %+v", ev)
	}

	// WebSocket writer → SSE reader, with cursor ids.
	for i := 1; i <= 5; i++ {
		ws.token(fmt.Sprint(i))
	}
	var lastID string
	for i := 1; i <= 5; i++ {
		ev := s.nextEvent(5 * time.Second)
		if ev.event != "token" || ev.m["data"] != fmt.Sprint(i) {
			t.Fatalf("event %+v", ev)
		}
		if !strings.Contains(ev.id, fmt.Sprintf("%s:%d", sidW, i)) {
			t.Fatalf("id %q lacks %s:%d", ev.id, sidW, i)
		}
		lastID = ev.id
	}

	// C65: HTTP emit on the SSE reader's own stream, through the other
	// gateway (the request travels to the holder).
	link2 := onGateway(link, sys.URL(1))
	r := emitHTTP(t, link2, credS, "s", `{"tokens":["x","y","z"]}`, nil)
	if r.Status != http.StatusAccepted {
		t.Fatalf("emit: %d %s", r.Status, r.Body)
	}
	em := r.JSON(t)
	if em["stream_id"] != sidS || jnum(em["first_seq"]) != 1 || jnum(em["last_seq"]) != 3 || em["ts"] == nil {
		t.Fatalf("emit answer %v", em)
	}
	for _, want := range []string{"x", "y", "z"} {
		if m := ws.expect("token"); m["data"] != want || m["stream_id"] != sidS {
			t.Fatalf("ws got %v, want %s", m, want)
		}
	}
	// C67: set metadata over HTTP.
	r = putMetadata(t, link, credS, "s", `{"mood": "fine",  "n":[1]}`)
	if r.Status != http.StatusOK || jnum(r.JSON(t)["seq"]) != 4 {
		t.Fatalf("set metadata: %d %s", r.Status, r.Body)
	}
	if m := ws.expect("stream_metadata"); !strings.Contains(string(mustJSON(t, m)), "fine") {
		t.Fatalf("stream_metadata %v", m)
	}

	// C63: reconnect with Last-Event-ID: events after it, nothing twice.
	s.cancel()
	for i := 6; i <= 8; i++ {
		ws.token(fmt.Sprint(i))
	}
	s2, resp := dialSSE(t, link, map[string]string{"Authorization": "Bearer " + credS, "X-AMS-Stream-Name": "s", "Last-Event-ID": lastID})
	if s2 == nil {
		t.Fatalf("SSE resume: %d", resp.StatusCode)
	}
	if j := s2.nextEvent(5 * time.Second); j.event != "joined" || j.m["resumed"] != true {
		t.Fatalf("resumed joined %+v", j)
	}
	for i := 6; i <= 8; i++ {
		ev := s2.nextEvent(5 * time.Second)
		if ev.event != "token" || ev.m["data"] != fmt.Sprint(i) {
			t.Fatalf("after resume got %+v, want token %d", ev, i)
		}
	}

	// C64: a later end is a close event; revoking the link ends the stream.
	del := gwtest.DoResponse(t, http.MethodDelete, sys.URL(0)+"/v1/writer/conversations/"+conv["alias"].(string)+"/links/"+conv["link_id"].(string), gwtest.Bearer(credW), "")
	if del.Status != http.StatusOK {
		t.Fatalf("revoke: %d %s", del.Status, del.Body)
	}
	ev := s2.nextEvent(5 * time.Second)
	if ev.event != "close" || jnum(ev.m["code"]) != 4001 || ev.m["reason"] != "link_revoked" {
		t.Fatalf("close event %+v", ev)
	}
	if _, open := <-s2.events; open {
		t.Fatal("the stream did not end after its close event")
	}
}

// jnum reads a JSON number decoded either way.
func jnum(v any) float64 {
	switch n := v.(type) {
	case float64:
		return n
	case json.Number:
		f, _ := n.Float64()
		return f
	}
	return -1
}

func mustJSON(t *testing.T, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// C64, C66: SSE failures before streaming are HTTP errors; emit errors.
func TestC64SSEAndEmitErrors(t *testing.T) {
	sys := gwtest.Start(t, gwtest.Options{})
	_, credA := sys.CreateAccount(t, 0, "alpha")
	_, credB := sys.CreateAccount(t, 0, "beta")
	conv := sys.Mint(t, 0, credA, "alpha", "")
	link := conv["magic_link"].(string)
	base := link[:strings.Index(link, "?")]

	cases := []struct {
		name   string
		link   string
		header map[string]string
		status int
		code   string
	}{
		{"no t", base, map[string]string{"Authorization": "Bearer " + credA}, 403, "invalid_magic_link"},
		{"unknown conversation", strings.Replace(link, "/alpha/conversations/", "/alpha/conversations/nope-", 1), map[string]string{"Authorization": "Bearer " + credA}, 404, "conversation_not_found"},
		{"bad token", base + "?t=abc", map[string]string{"Authorization": "Bearer " + credA}, 403, "invalid_magic_link"},
		{"no credential", link, nil, 401, "missing_credential"},
		{"bad credential", link, map[string]string{"Authorization": "Bearer ams_sk_" + strings.Repeat("A", 43)}, 401, "invalid_credential"},
		{"bad stream name", link, map[string]string{"Authorization": "Bearer " + credA, "X-AMS-Stream-Name": "-bad"}, 400, "invalid_stream_name_header"},
		{"bad cursor", link, map[string]string{"Authorization": "Bearer " + credA, "Last-Event-ID": "nope"}, 400, "invalid_resume_header"},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			c, resp := dialSSE(t, tt.link, tt.header)
			if c != nil {
				t.Fatal("SSE connect succeeded")
			}
			defer resp.Body.Close()
			var body map[string]any
			_ = json.NewDecoder(resp.Body).Decode(&body)
			if resp.StatusCode != tt.status || body["error"] != tt.code {
				t.Fatalf("got %d %v, want %d %s", resp.StatusCode, body, tt.status, tt.code)
			}
		})
	}

	// A live stream named "main" under alpha.
	a := dial(t, link, dialOpts{credential: credA, streamName: "main"})
	a.expect("joined")
	emitCases := []struct {
		name, cred, stream, body string
		status                   int
		code                     string
	}{
		{"C66 not live", credA, "other", `{"data":"x"}`, 409, "stream_not_live"},
		{"C66 another account's name", credB, "main", `{"data":"x"}`, 409, "stream_name_owner_conflict"},
		{"invalid json", credA, "main", `nope`, 400, "invalid_json"},
		{"invalid data", credA, "main", `{"data":5}`, 400, "invalid_token_data"},
		{"too large", credA, "main", `{"data":"` + strings.Repeat("a", 65537) + `"}`, 413, "token_too_large"},
	}
	for _, tt := range emitCases {
		t.Run(tt.name, func(t *testing.T) {
			r := emitHTTP(t, link, tt.cred, tt.stream, tt.body, nil)
			if m := r.JSON(t); r.Status != tt.status || m["error"] != tt.code {
				t.Fatalf("got %d %s, want %d %s", r.Status, r.Body, tt.status, tt.code)
			}
		})
	}
	if r := putMetadata(t, link, credA, "main", `[1]`); r.Status != 400 || r.JSON(t)["error"] != "invalid_metadata" {
		t.Fatalf("bad metadata: %d %s", r.Status, r.Body)
	}
}

// Idempotent emit: a retried emit with the same tag is stored and
// delivered once, over HTTP and over the WebSocket.
func TestIdempotentEmit(t *testing.T) {
	sys := gwtest.Start(t, gwtest.Options{Gateways: 2})
	_, credW := sys.CreateAccount(t, 0, "writer")
	_, credR := sys.CreateAccount(t, 0, "reader")
	conv := sys.Mint(t, 0, credW, "writer", "")
	link := conv["magic_link"].(string)
	w := dial(t, link, dialOpts{credential: credW, streamName: "w"})
	w.expect("joined")
	r := dial(t, onGateway(link, sys.URL(1)), dialOpts{credential: credR, streamName: "r"})
	r.expect("joined")
	w.expect("stream_joined")

	key := map[string]string{"Idempotency-Key": "retry-1"}
	first := emitHTTP(t, link, credW, "w", `{"tokens":["a","b"]}`, key)
	again := emitHTTP(t, onGateway(link, sys.URL(1)), credW, "w", `{"tokens":["a","b"]}`, key)
	if first.Status != 202 || again.Status != 202 {
		t.Fatalf("emits: %d %d", first.Status, again.Status)
	}
	f, g := first.JSON(t), again.JSON(t)
	if f["first_seq"] != g["first_seq"] || f["last_seq"] != g["last_seq"] {
		t.Fatalf("retry answered other seqs: %v vs %v", f, g)
	}
	// Over the WebSocket: a token frame with an id, sent twice.
	w.send(map[string]any{"type": "token", "data": "c", "id": "tok-9"})
	w.send(map[string]any{"type": "token", "data": "c", "id": "tok-9"})
	w.token("d")
	for _, want := range []string{"a", "b", "c", "d"} {
		if m := r.expect("token"); m["data"] != want {
			t.Fatalf("got %v, want %s (a retry was delivered twice?)", m["data"], want)
		}
	}
}

// Late join: a participant joining mid-stream asks for the peer stream
// from its start and continues live without a duplicate at the seam.
func TestLateJoinFromStart(t *testing.T) {
	sys := gwtest.Start(t, gwtest.Options{Gateways: 2, Log: lateLog})
	_, credW := sys.CreateAccount(t, 0, "writer")
	_, credL := sys.CreateAccount(t, 0, "late")
	conv := sys.Mint(t, 0, credW, "writer", "")
	link := conv["magic_link"].(string)
	w := dial(t, link, dialOpts{credential: credW, streamName: "w"})
	sidW := w.expect("joined")["stream_id"].(string)
	for i := 1; i <= 300; i++ {
		w.token(fmt.Sprint(i))
	}
	// The writer keeps writing while the late participant joins.
	go func() {
		for i := 301; i <= 600; i++ {
			w.token(fmt.Sprint(i))
		}
	}()
	l := dial(t, onGateway(link, sys.URL(1)), dialOpts{credential: credL, streamName: "l", resume: sidW + ":0"})
	l.expect("joined")
	var text strings.Builder
	seen := 0
	if _, err := readTokens(l, sidW, 0, 600, &text, &seen, 10*time.Second); err != nil {
		t.Fatal(err)
	}
}

var lateLog = func() io.Writer {
	if os.Getenv("AMS_DEBUG_LATE") != "" {
		return os.Stderr
	}
	return nil
}()
