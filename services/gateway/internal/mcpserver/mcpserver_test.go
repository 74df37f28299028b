package mcpserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/amsrouter/ams/services/gateway/internal/frame"
)

func TestNotificationIsFrameMinusType(t *testing.T) {
	t.Parallel()
	cases := []struct{ frame, method, params string }{
		{`{"type":"token","stream_id":"s","data":"{\"a\":1}","seq":3}`, "notifications/ams/token", `{"stream_id":"s","data":"{\"a\":1}","seq":3}`},
		{`{"type":"stream_metadata","metadata":{"z":1,"a":[2]},"seq":1}`, "notifications/ams/stream_metadata", `{"metadata":{"z":1,"a":[2]},"seq":1}`},
		{`{"type":"pong"}`, "notifications/ams/pong", `{}`},
	}
	for _, c := range cases {
		e, ok := notification([]byte(c.frame))
		if !ok || e.method != c.method || string(e.params) != c.params {
			t.Errorf("%s: got %q %s, want %q %s", c.frame, e.method, e.params, c.method, c.params)
		}
	}
	if _, ok := notification([]byte(`["x"]`)); ok {
		t.Error("a non-frame converted")
	}
}

func TestJoinedPayload(t *testing.T) {
	t.Parallel()
	got := string(joinedPayload([]byte(`{"type":"joined","conversation_id":"c","peers":[]}`)))
	if want := `{"ok":true,"conversation_id":"c","peers":[]}`; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

func token(i int) entry {
	return entry{method: "notifications/ams/token", params: []byte(fmt.Sprintf(`{"data":"t%d"}`, i))}
}

func TestBufferTruncatesOldestWithMarker_C82(t *testing.T) {
	t.Parallel()
	b := newBuffer()
	for i := range MaxBufferFrames + 150 {
		b.add(token(i))
	}
	es := b.take(0)
	if len(es) != MaxBufferFrames+1 || !es[0].marker || string(es[0].params) != `{"dropped":150}` {
		t.Fatalf("%d entries, first %s %s", len(es), es[0].method, es[0].params)
	}
	if string(es[1].params) != `{"data":"t150"}` || string(es[len(es)-1].params) != fmt.Sprintf(`{"data":"t%d"}`, MaxBufferFrames+149) {
		t.Fatalf("kept %s .. %s", es[1].params, es[len(es)-1].params)
	}
	if b.dropped != 150 {
		t.Fatalf("dropped %d", b.dropped)
	}
}

func TestBufferByteBound(t *testing.T) {
	t.Parallel()
	b := newBuffer()
	big := strings.Repeat("x", 200<<10)
	for i := range 8 {
		b.add(entry{method: "m", params: []byte(fmt.Sprintf(`{"i":%d,"d":"%s"}`, i, big))})
	}
	es := b.take(0)
	total := 0
	for _, e := range es[1:] {
		total += e.size()
	}
	if !es[0].marker || total > MaxBufferBytes || len(es) != 6 {
		t.Fatalf("%d entries, %d bytes, marker %v %s", len(es), total, es[0].marker, es[0].params)
	}
}

func TestRideAlongTakesAtMost64_C81(t *testing.T) {
	t.Parallel()
	b := newBuffer()
	for i := range 100 {
		b.add(token(i))
	}
	if n := len(b.take(MaxRideAlong)); n != 64 {
		t.Fatalf("took %d", n)
	}
	if n := b.len(); n != 36 {
		t.Fatalf("left %d", n)
	}
}

func TestRecvPayload(t *testing.T) {
	t.Parallel()
	got := recvPayload([]entry{token(1), {method: methodTruncated, params: []byte(`{"dropped":2}`), marker: true}}, 2)
	want := `{"ok":true,"frames":[{"method":"notifications/ams/token","params":{"data":"t1"}},{"method":"notifications/ams/truncated","params":{"dropped":2}}],"truncated":true,"dropped":2}`
	if string(got) != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	if !json.Valid(recvPayload(nil, 0)) {
		t.Fatal("empty payload is not JSON")
	}
}

func TestWithIsError(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		`{"content":[],"structuredContent":{}}`:                `{"content":[],"structuredContent":{},"isError":false}`,
		`{"content":[],"structuredContent":{},"isError":true}`: `{"content":[],"structuredContent":{},"isError":true}`,
		`{}`: `{"isError":false}`,
	}
	for in, want := range cases {
		if got := string(withIsError(json.RawMessage(in))); got != want {
			t.Errorf("%s: got %s, want %s", in, got, want)
		}
	}
}

func TestAutoSlug(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		`{"kind":"agent"}`: "agent",
		`{"kind":"human","client":"Claude Desktop!"}`:                  "claude-desktop",
		`{"kind":"agent","client":"--"}`:                               "peer",
		`{"kind":"agent","client":"` + strings.Repeat("ab", 20) + `"}`: strings.Repeat("ab", 12),
	}
	for in, want := range cases {
		if got := autoSlug(in); got != want {
			t.Errorf("%s: got %q, want %q", in, got, want)
		}
	}
}

// Magic links read as over gRPC (x-ams-magic-link): the public URL may
// have a path prefix (spec 2.3: {base} is the configured public URL).
func TestParseMagicLink(t *testing.T) {
	t.Parallel()
	ns, alias, tok, ok := parseMagicLink("http://h:1/acme/conversations/room?t=abc")
	if diff := cmp.Diff([]any{"acme", "room", "abc", true}, []any{ns, alias, tok, ok}); diff != "" {
		t.Fatal(diff)
	}
	for _, tc := range []struct{ link, ns, alias, token string }{
		{"https://host/prefix/acme/conversations/room?t=abc", "acme", "room", "abc"},
		{"https://host/a/b/acme/conversations/room/?t=x&other=1", "acme", "room", "x"},
		{" https://h/a/conversations/b?t=x ", "a", "b", "x"},
		{"https://h/acme/conversations/room", "acme", "room", ""},
		{"http://h/acme/conversations/connect?t=x", "acme", "connect", "x"},
	} {
		ns, alias, tok, ok := parseMagicLink(tc.link)
		if diff := cmp.Diff([]any{tc.ns, tc.alias, tc.token, true}, []any{ns, alias, tok, ok}); diff != "" {
			t.Errorf("%q: %s", tc.link, diff)
		}
	}
	for _, link := range []string{"http://h/acme/conversations/room/connect?t=x", "https://h/prefix/acme/conversations/room/streams/s/tokens?t=x",
		"https://h/acme/rooms/room?t=x", "https://h/conversations/room?t=x", "https://h//conversations/room?t=x",
		"https://h/acme/conversations/room//?t=x", "acme/conversations/room?t=x", "", "::"} {
		if ns, alias, tok, ok := parseMagicLink(link); ok || ns+alias+tok != "" {
			t.Errorf("%q parsed as a magic link: %q %q %q", link, ns, alias, tok)
		}
	}
}

// The stdio server derives its URLs from a magic link by inserting a path
// suffix, keeping the public URL's prefix.
func TestParseLinkKeepsPrefix(t *testing.T) {
	t.Parallel()
	l, ok := parseLink("https://host/pre%20fix/acme/conversations/room/?t=a+b")
	if !ok {
		t.Fatal("refused")
	}
	if got, want := l.path("/connect"), "https://host/pre%20fix/acme/conversations/room/connect?t=a+b"; got != want {
		t.Fatalf("path = %q, want %q", got, want)
	}
	if l, ok := parseLink("http://h:1/acme/conversations/room?t=x"); !ok || l.base != "http://h:1" {
		t.Fatalf("base %q %v", l.base, ok)
	}
	if _, ok := parseLink("/acme/conversations/room?t=x"); ok {
		t.Fatal("a link without a host accepted")
	}
}

// ams_send reads data as a WebSocket token frame's data is read: an
// unpaired surrogate escape, which encoding/json would turn into U+FFFD,
// is refused (invalid_arguments, the tool form of malformed_frame).
func TestSendRefusesLoneSurrogates(t *testing.T) {
	t.Parallel()
	for _, args := range []string{`{"data":"\ud800"}`, `{"data":"a\udc00"}`, `{"data":"\ud83d\u0041"}`, `{"data":"\ud83d"}`, "{\"data\":\"\xff\"}"} {
		h := &stubHost{buf: newBuffer()}
		_, err := runTool(context.Background(), h, ToolSend, json.RawMessage(args))
		var te *toolError
		if !errors.As(err, &te) || te.Code != "invalid_arguments" || len(h.calls) != 0 {
			t.Errorf("%s: %v, calls %v; want invalid_arguments", args, err, h.calls)
		}
		msg := append([]byte(`{"type":"token","data":`), args[len(`{"data":`):]...)
		if werr := frame.Decode(msg, false, func(*frame.Client) error { return nil }); werr == nil {
			t.Errorf("%s: the WebSocket decoder accepts it", msg)
		}
	}
	h := &stubHost{buf: newBuffer()}
	if _, err := runTool(context.Background(), h, ToolSend, json.RawMessage(`{"data":"\ud83d\ude00 \u00fc"}`)); err != nil || *h.sent != "😀 ü" {
		t.Fatalf("a surrogate pair: %v, sent %v", err, h.sent)
	}
}

// ams_set_metadata takes the metadata a set_metadata frame takes: valid
// UTF-8, nested at most 255 deep (the frame's object counting toward the
// frame decoder's bound of 256); anything else is invalid_arguments.
func TestSetMetadataAsFrame(t *testing.T) {
	t.Parallel()
	nested := func(n int) string { return strings.Repeat(`{"a":`, n) + "1" + strings.Repeat("}", n) }
	for _, tc := range []struct {
		md   string
		code string
	}{
		{nested(255), ""}, {`{"n":1e999999999}`, ""}, {`{"a":"\ud800"}`, ""},
		{nested(256), "invalid_arguments"}, {"{\"a\":\"\xff\"}", "invalid_arguments"},
	} {
		h := &stubHost{buf: newBuffer()}
		_, err := runTool(context.Background(), h, ToolSetMetadata, json.RawMessage(`{"metadata":`+tc.md+`}`))
		var te *toolError
		switch {
		case tc.code == "" && (err != nil || *h.md != tc.md):
			t.Errorf("%.40s: %v", tc.md, err)
		case tc.code != "" && (!errors.As(err, &te) || te.Code != tc.code || len(h.calls) != 0):
			t.Errorf("%.40s: %v, want %s", tc.md, err, tc.code)
		}
		werr := frame.Decode([]byte(`{"type":"set_metadata","metadata":`+tc.md+`}`), false, func(*frame.Client) error { return nil })
		if (werr == nil) != (tc.code == "") {
			t.Errorf("%.40s: the WebSocket decoder says %v", tc.md, werr)
		}
	}
}

func TestNegotiate(t *testing.T) {
	t.Parallel()
	for _, v := range protocolVersions {
		if negotiate(v) != v {
			t.Errorf("%s not kept", v)
		}
	}
	if negotiate("2099-01-01") != "2025-11-25" || negotiate("") != "2025-11-25" {
		t.Error("unknown versions do not negotiate the newest")
	}
}
