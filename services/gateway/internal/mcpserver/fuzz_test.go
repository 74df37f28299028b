package mcpserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"

	"github.com/amsrouter/ams/services/gateway/internal/connreq"
	"github.com/amsrouter/ams/services/gateway/internal/frame"
	"github.com/amsrouter/ams/services/internal/ids"
	"github.com/amsrouter/ams/services/internal/wireerr"
)

// FuzzDecodeMessages: a POST body (spec 5.5) is accepted only as one
// JSON-RPC object or a non-empty array of them, with nothing before or
// after it but JSON whitespace: one message per object, in order, each a
// request (with its method) or a response, and each re-encodes to a
// message that decodes to the same kind, method and id.
func FuzzDecodeMessages(f *testing.F) {
	for _, s := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}`,
		`[{"jsonrpc":"2.0","method":"notifications/initialized"},{"jsonrpc":"2.0","id":"a","result":{}}]`,
		`[]`, `[1]`, `{}`, `{"jsonrpc":"1.0","id":1,"method":"x"}`, `{"jsonrpc":"2.0","id":{},"method":"x"}`, ` [ {"jsonrpc":"2.0","id":null,"error":{"code":1,"message":"m"}} ] `,
		`{"jsonrpc":"2.0","method":"x"}{"jsonrpc":"2.0","method":"y"}`, "\u00a0{\"jsonrpc\":\"2.0\",\"method\":\"x\"}",
		`{"jsonrpc":"2.0","method":"ping","id":1} x`, `[{"jsonrpc":"2.0","method":"x"},]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		msgs, ok := decodeMessages(body)
		if !ok {
			return
		}
		if !json.Valid(body) {
			t.Fatalf("accepted %q, which is not one JSON value", body)
		}
		var elems []json.RawMessage
		if trimmed := bytes.Trim(body, " \t\r\n"); trimmed[0] == '[' {
			if err := json.Unmarshal(trimmed, &elems); err != nil {
				t.Fatal(err)
			}
		} else {
			elems = []json.RawMessage{trimmed}
		}
		if len(msgs) == 0 || len(msgs) != len(elems) {
			t.Fatalf("accepted %q as %d messages, it holds %d values", body, len(msgs), len(elems))
		}
		for i, m := range msgs {
			if elems[i][0] != '{' {
				t.Fatalf("message %d of %q is %q, not an object", i, body, elems[i])
			}
			enc, err := jsonrpc.EncodeMessage(m)
			if err != nil {
				continue // a value the SDK cannot re-encode (a huge float id): not ours to check
			}
			again, err := jsonrpc.DecodeMessage(enc)
			switch m := m.(type) {
			case *jsonrpc.Request:
				r, ok := again.(*jsonrpc.Request)
				if m.Method == "" {
					continue // the SDK encodes an empty method by leaving it out
				}
				if err != nil || !ok || r.Method != m.Method || r.ID != m.ID {
					t.Fatalf("request %q re-encoded as %s: %v", elems[i], enc, err)
				}
			case *jsonrpc.Response:
				r, ok := again.(*jsonrpc.Response)
				if err != nil || !ok || r.ID != m.ID {
					t.Fatalf("response %q re-encoded as %s: %v", elems[i], enc, err)
				}
			default:
				t.Fatalf("message %d of %q is a %T", i, body, m)
			}
		}
	})
}

// stubHost records what a tool asked the session to do.
type stubHost struct {
	buf    *buffer
	calls  []string
	create *createArgs
	sent   *string
	md     *string
	wait   time.Duration
	join   *joinArgs
	target *target
}

func (h *stubHost) CreateConversation(_ context.Context, a *createArgs) ([]byte, error) {
	h.calls, h.create = append(h.calls, ToolCreate), a
	return []byte(`{}`), nil
}
func (h *stubHost) Join(_ context.Context, a *joinArgs) ([]byte, error) {
	h.calls, h.join = append(h.calls, ToolJoin), a
	return []byte(`{}`), nil
}
func (h *stubHost) Send(_ context.Context, data string, t *target) ([]byte, error) {
	h.calls, h.sent, h.target = append(h.calls, ToolSend), &data, t
	return []byte(`{}`), nil
}
func (h *stubHost) SetMetadata(_ context.Context, md string, t *target) ([]byte, error) {
	h.calls, h.md, h.target = append(h.calls, ToolSetMetadata), &md, t
	return []byte(`{}`), nil
}
func (h *stubHost) Leave(context.Context) ([]byte, error) {
	h.calls = append(h.calls, ToolLeave)
	return []byte(`{}`), nil
}
func (h *stubHost) Recv(_ context.Context, wait time.Duration, t *target) ([]byte, error) {
	h.calls, h.wait, h.target = append(h.calls, ToolRecv), wait, t
	return []byte(`{}`), nil
}
func (h *stubHost) Buffer() *buffer { return h.buf }
func (h *stubHost) Conversation(context.Context, string) ([]byte, bool, error) {
	return nil, false, nil
}
func (h *stubHost) Peers(context.Context, string) ([]byte, bool, error) { return nil, false, nil }

// refString is the reference reading of an optional string argument.
func refString(args map[string]json.RawMessage, k string) string {
	var s string
	_ = json.Unmarshal(args[k], &s)
	return s
}

// refWait is the reference reading of recv's wait: wait_ms, else
// max_wait_ms capped at 25 s, else 0.
func refWait(args map[string]json.RawMessage) time.Duration {
	ms := func(k string) (float64, bool) {
		var f float64
		raw, ok := args[k]
		if !ok || string(raw) == "null" {
			return 0, false
		}
		_ = json.Unmarshal(raw, &f)
		return f, true
	}
	if w, ok := ms("wait_ms"); ok {
		return time.Duration(w) * time.Millisecond
	}
	if m, ok := ms("max_wait_ms"); ok {
		return time.Duration(min(m, MaxWaitMS)) * time.Millisecond
	}
	return 0
}

// toolCodes are the domain errors of a tool's argument checks.
var toolCodes = map[string]bool{"invalid_arguments": true, wireerr.InvalidStreamName.Name: true,
	wireerr.TokenTooLarge.Name: true, wireerr.MetadataTooLarge.Name: true}

// FuzzToolArguments: any tool arguments either fail as a domain error of
// the argument checks, reaching nothing, or reach the session's one
// operation of that tool checked: arguments other than an object (or
// null) refused; data exactly the string sent, within 64 KiB, and read as
// a WebSocket token frame reads it (so never from an unpaired surrogate
// escape or invalid UTF-8); metadata the exact text of a JSON object
// within 16 KiB that a set_metadata frame takes too; the wait as asked,
// within 25 s; a target's and a join's stream name valid; a join's
// identity in its own normal form and its filter at most 100 distinct
// valid items.
func FuzzToolArguments(f *testing.F) {
	for _, s := range []string{
		`{"data":"hi"}`, `{"metadata":{"a":1}}`, `{"wait_ms":10}`, `{"max_wait_ms":30000}`, `{"wait_ms":-1}`,
		`{"magic_link":"http://h/ns/conversations/a?t=x","stream_name":"s","self_subscribe":true,"peer_identity":{"kind":"agent"},"subscribe_streams":["a"]}`,
		`{"stream_name":"bad name"}`, `{"peer_identity":{"kind":"robot"}}`, `null`, `[]`, `{"data":1}`, `{"metadata":[]}`,
		`{"wait_ms":1.5}`, `{"wait_ms":25000,"max_wait_ms":1}`, `{"max_wait_ms":1e3}`, `{"data":"x","stream_name":null}`,
		`{"stream_metadata":{ "a" : 1 } ,"subscribe_streams":["a","a"],"peer_identity":{"kind":"human","model":null}}`,
		`{"data":"\ud800"}`, `{"data":"\ud83d\ude00","d\u0061ta":"\udc00x"}`, "{\"data\":\"\xff\"}",
		`{"metadata":` + strings.Repeat(`{"a":`, 256) + "1" + strings.Repeat("}", 256) + `}`, "{\"metadata\":{\"a\":\"\xff\"}}",
	} {
		for tool := range uint8(6) {
			f.Add(tool, []byte(s))
		}
	}
	names := []string{ToolCreate, ToolJoin, ToolSend, ToolSetMetadata, ToolLeave, ToolRecv}
	f.Fuzz(func(t *testing.T, tool uint8, args []byte) {
		h := &stubHost{buf: newBuffer()}
		name := names[int(tool)%len(names)]
		_, err := runTool(context.Background(), h, name, args)

		var ref map[string]json.RawMessage
		trimmed := bytes.TrimSpace(args)
		isObject := len(trimmed) == 0 || string(trimmed) == "null" || (trimmed[0] == '{' && json.Unmarshal(trimmed, &ref) == nil)
		if err != nil {
			var te *toolError
			if !errors.As(err, &te) || !toolCodes[te.Code] {
				t.Fatalf("error %v is not a domain error of the checks", err)
			}
			if len(h.calls) != 0 {
				t.Fatalf("refused arguments reached %v", h.calls)
			}
			return
		}
		if !isObject {
			t.Fatalf("%s accepted arguments %q", name, args)
		}
		if len(h.calls) != 1 || h.calls[0] != name {
			t.Fatalf("%s ran %v", name, h.calls)
		}
		if tg := h.target; tg != nil {
			if tg.StreamName != "" && !ids.ValidStreamName(tg.StreamName) {
				t.Fatalf("target stream name %q", tg.StreamName)
			}
			if tg.StreamName != refString(ref, "stream_name") || tg.MagicLink != refString(ref, "magic_link") {
				t.Fatalf("target %+v from %q", tg, args)
			}
		}
		switch name {
		case ToolCreate:
			if len(h.create.Body) != len(ref) {
				t.Fatalf("create got %d members of %d", len(h.create.Body), len(ref))
			}
		case ToolSend:
			if len(*h.sent) > frame.MaxData || *h.sent != refString(ref, "data") {
				t.Fatalf("sent %d bytes %q from %q", len(*h.sent), *h.sent, args)
			}
			// The WebSocket decoder reads the same data the same way.
			msg := append(append([]byte(`{"type":"token","data":`), ref["data"]...), '}')
			err := frame.Decode(msg, false, func(c *frame.Client) error {
				if c.Data != *h.sent {
					t.Fatalf("sent %q, a token frame reads %q", *h.sent, c.Data)
				}
				return nil
			})
			if err != nil {
				t.Fatalf("sent %q from %q, a token frame is refused: %v", *h.sent, args, err)
			}
		case ToolSetMetadata:
			md := *h.md
			if len(md) > frame.MaxMetadata || md == "" || md[0] != '{' || !json.Valid([]byte(md)) || md != string(bytes.TrimSpace(ref["metadata"])) {
				t.Fatalf("metadata %q from %q", md, args)
			}
			// A WebSocket set_metadata frame takes the same metadata.
			msg := append(append([]byte(`{"type":"set_metadata","metadata":`), md...), '}')
			if err := frame.Decode(msg, false, func(*frame.Client) error { return nil }); err != nil {
				t.Fatalf("metadata %q from %q, a set_metadata frame is refused: %v", md, args, err)
			}
		case ToolRecv:
			if h.wait < 0 || h.wait > MaxWaitMS*time.Millisecond || h.wait != refWait(ref) {
				t.Fatalf("wait %s from %q", h.wait, args)
			}
		case ToolJoin:
			a := h.join
			if (a.StreamName != "" && !ids.ValidStreamName(a.StreamName)) || a.StreamName != refString(ref, "stream_name") {
				t.Fatalf("stream name %q", a.StreamName)
			}
			if a.MetadataSet && (len(a.Metadata) > frame.MaxMetadata || !json.Valid([]byte(a.Metadata)) ||
				a.Metadata != string(bytes.TrimSpace(ref["stream_metadata"]))) || (!a.MetadataSet && a.Metadata != "{}") {
				t.Fatalf("join metadata %q (set %v)", a.Metadata, a.MetadataSet)
			}
			if a.PeerIdentity != "" {
				var v map[string]json.RawMessage
				again, ok := "", json.Unmarshal([]byte(a.PeerIdentity), &v) == nil
				if ok {
					again, ok = connreq.NormalizeIdentity(v)
				}
				if !ok || again != a.PeerIdentity {
					t.Fatalf("identity %q normalizes to %q", a.PeerIdentity, again)
				}
			}
			seen := map[string]bool{}
			for _, it := range a.Filter {
				if seen[it] || !(ids.ValidStreamID(it) || ids.ValidStreamName(it)) {
					t.Fatalf("filter %q", a.Filter)
				}
				seen[it] = true
			}
			if len(a.Filter) > 100 || a.FilterSet != (len(ref["subscribe_streams"]) > 0 && string(ref["subscribe_streams"]) != "null") {
				t.Fatalf("filter %q (set %v)", a.Filter, a.FilterSet)
			}
		}
	})
}

// FuzzParseMagicLink: a magic_link argument is split into its path's
// namespace and alias and its token (which admission then checks), as the
// gRPC x-ams-magic-link is: ok only for a URL (space around it ignored)
// whose path, less one trailing slash, ends /{ns}/conversations/{alias}
// after any prefix; never an empty or multi-segment name; and the parts
// rebuilt into a link, with or without a prefix, read back the same.
func FuzzParseMagicLink(f *testing.F) {
	for _, s := range []string{"http://h/ns/conversations/room?t=tok", "https://h/base/ns/conversations/room/?t=x",
		"ns/conversations/room?t=x", "http://h/ns/conversations/room", "http://h/NS/conversations/room?t=x", "%zz", "",
		"http://h/a%2Fb/conversations/c?t=x", "http://h//conversations/c?t=x", "http://h/a/conversations/c?t=a%2Bb&t=2",
		"http://h/ns/conversations/room/connect?t=x", " http://h/p/q/ns/conversations/room//?t=x "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, link string) {
		ns, alias, token, ok := parseMagicLink(link)
		// The model: the last "/conversations/" of the path less one
		// trailing slash, a non-empty segment before it that follows a
		// slash, one non-empty segment after it.
		var wantNS, wantAlias, wantToken string
		wantOK := false
		if u, err := url.Parse(strings.TrimSpace(link)); err == nil {
			path := strings.TrimSuffix(u.Path, "/")
			if i := strings.LastIndex(path, "/conversations/"); i > 0 {
				j := strings.LastIndex(path[:i], "/")
				wantNS, wantAlias = path[j+1:i], path[i+len("/conversations/"):]
				wantOK = j >= 0 && wantNS != "" && wantAlias != "" && !strings.Contains(wantAlias, "/")
				wantToken = u.Query().Get("t")
			}
		}
		if !wantOK {
			wantNS, wantAlias, wantToken = "", "", ""
		}
		if ok != wantOK || ns != wantNS || alias != wantAlias || token != wantToken {
			t.Fatalf("%q: %q %q %q %v, want %q %q %q %v", link, ns, alias, token, ok, wantNS, wantAlias, wantToken, wantOK)
		}
		if !ok {
			return
		}
		if ns == "" || alias == "" || strings.Contains(ns+alias, "/") {
			t.Fatalf("%q parsed as %q %q %q", link, ns, alias, token)
		}
		for _, base := range []string{"https://ams.example", "https://ams.example/prefix/ams"} {
			rebuilt := base + "/" + url.PathEscape(ns) + "/conversations/" + url.PathEscape(alias) + "?t=" + url.QueryEscape(token)
			ns2, alias2, token2, ok := parseMagicLink(rebuilt)
			if !ok || ns2 != ns || alias2 != alias || token2 != token {
				t.Fatalf("%q rebuilt as %q reads %q %q %q", link, rebuilt, ns2, alias2, token2)
			}
		}
	})
}
