package streame2e

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/coder/websocket"

	"github.com/amsrouter/ams/services/gateway/internal/gwtest"
)

// C41: ping is answered with pong, to the sender only.
func TestC41Ping(t *testing.T) {
	t.Parallel()
	sys := gwtest.Start(t, gwtest.Options{})
	_, credA := account(t, sys, "alice")
	_, credB := account(t, sys, "bob")
	r := newRoom(t, sys, credA, "alice", "room")
	a, _ := r.join(t, 0, dialOpts{credential: credA, streamName: "a"})
	b, _ := r.join(t, 0, dialOpts{credential: credB, streamName: "b", selfSubscribe: true})
	a.expect("stream_joined")

	a.sendRaw([]byte(`{"type":"ping","data":"ignored","x":[1]}`))
	if m := a.expectMsg("pong"); string(m.raw) != `{"type":"pong"}` {
		t.Errorf("pong = %s", m.raw)
	}
	a.token("after ping")
	b.wantToken("a", "after ping", 1) // no pong before it
	b.send(map[string]any{"type": "ping"})
	b.expect("pong")
	b.token("b")
	b.wantToken("b", "b", 1) // self-subscribed: its own token, no other pong
	a.wantToken("b", "b", 1)
}

// C42: malformed and unknown frames close the connection 4400 with their
// reason; everything else the sender wrote before still took effect.
func TestC42BadFrames(t *testing.T) {
	t.Parallel()
	sys := gwtest.Start(t, gwtest.Options{})
	_, credA := account(t, sys, "alice")
	_, credB := account(t, sys, "bob")
	r := newRoom(t, sys, credA, "alice", "room")
	bigMeta := `{"k":"` + strings.Repeat("m", 16<<10-8+1) + `"}`
	var sub101 []string
	for i := 0; i <= 100; i++ {
		sub101 = append(sub101, fmt.Sprintf(`"n%d"`, i))
	}
	const malformed, unknown, subscription = "malformed_frame", "unknown_frame_type", "invalid_subscription"
	cases := []struct {
		name, msg, reason string
	}{
		{"not JSON", `hello`, malformed},
		{"empty message", ``, malformed},
		{"truncated object", `{"type":"ping"`, malformed},
		{"trailing data", `{"type":"ping"} {}`, malformed},
		{"trailing comma", `{"type":"ping",}`, malformed},
		{"single quotes", `{'type':'ping'}`, malformed},
		{"invalid UTF-8", "{\"type\":\"token\",\"data\":\"\xff\"}", malformed},
		{"raw control character", "{\"type\":\"token\",\"data\":\"a\x01b\"}", malformed},
		{"bad escape", `{"type":"token","data":"\x41"}`, malformed},
		{"number", `42`, malformed},
		{"string", `"ping"`, malformed},
		{"null", `null`, malformed},
		{"true", `true`, malformed},
		{"array without batching", `[{"type":"ping"}]`, malformed},
		{"empty array without batching", `[]`, malformed},
		{"no type", `{"data":"x"}`, malformed},
		{"empty object", `{}`, malformed},
		{"type a number", `{"type":1}`, malformed},
		{"type null", `{"type":null}`, malformed},
		{"type an object", `{"type":{"t":"token"}}`, malformed},
		{"token without data", `{"type":"token"}`, malformed},
		{"data a number", `{"type":"token","data":1}`, malformed},
		{"data null", `{"type":"token","data":null}`, malformed},
		{"data an object", `{"type":"token","data":{"a":1}}`, malformed},
		{"data an array", `{"type":"token","data":["a"]}`, malformed},
		{"unpaired high surrogate", `{"type":"token","data":"\ud800"}`, malformed},
		{"unpaired low surrogate", `{"type":"token","data":"x\udc00"}`, malformed},
		{"high surrogate then letter", `{"type":"token","data":"\ud83d\u0041"}`, malformed},
		{"reversed surrogates", `{"type":"token","data":"\ude00\ud83d"}`, malformed},
		{"set_metadata without metadata", `{"type":"set_metadata"}`, malformed},
		{"metadata an array", `{"type":"set_metadata","metadata":[]}`, malformed},
		{"metadata a string", `{"type":"set_metadata","metadata":"{}"}`, malformed},
		{"metadata null", `{"type":"set_metadata","metadata":null}`, malformed},
		{"unknown type", `{"type":"nope"}`, unknown},
		{"x_ type", `{"type":"x_custom","data":"x"}`, unknown},
		{"type in another case", `{"type":"Token","data":"x"}`, unknown},
		{"type with a space", `{"type":"token ","data":"x"}`, unknown},
		{"server frame type", `{"type":"joined"}`, unknown},
		{"empty type", `{"type":""}`, unknown},
		{"metadata over 16 KiB", `{"type":"set_metadata","metadata":` + bigMeta + `}`, "metadata_too_large"},
		{"data over 64 KiB", `{"type":"token","data":"` + strings.Repeat("d", 65537) + `"}`, "token_too_large"},
		{"subscribe without streams", `{"type":"subscribe"}`, subscription},
		{"subscribe to a string", `{"type":"subscribe","streams":"a"}`, subscription},
		{"subscribe to an object", `{"type":"subscribe","streams":{}}`, subscription},
		{"subscribe to a number item", `{"type":"subscribe","streams":[1]}`, subscription},
		{"subscribe to a null item", `{"type":"subscribe","streams":[null]}`, subscription},
		{"subscribe to a bad name", `{"type":"subscribe","streams":["ok","bad name"]}`, subscription},
		{"subscribe to an empty name", `{"type":"subscribe","streams":[""]}`, subscription},
		{"subscribe to 101 items", `{"type":"subscribe","streams":[` + strings.Join(sub101, ",") + `]}`, subscription},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, _ := r.join(t, 0, dialOpts{credential: credB, streamName: fmt.Sprintf("m%d", i)})
			c.token("first") // takes effect before the bad frame
			c.sendRaw([]byte(tc.msg))
			c.wantCloseAfter(codeBad, tc.reason)
		})
	}
	t.Run("binary message", func(t *testing.T) {
		t.Parallel()
		c, _ := r.join(t, 0, dialOpts{credential: credB, streamName: "binary"})
		if err := c.ws.Write(context.Background(), websocket.MessageBinary, []byte(`{"type":"ping"}`)); err != nil {
			t.Fatal(err)
		}
		c.wantCloseAfter(codeBad, malformed)
	})
	t.Run("message over 1 MiB", func(t *testing.T) {
		t.Parallel()
		c, _ := r.join(t, 0, dialOpts{credential: credB, streamName: "huge"})
		_ = c.ws.Write(context.Background(), websocket.MessageText, []byte(`{"type":"token","data":"`+strings.Repeat("h", 1<<20)+`"}`))
		c.wantCloseAfter(codeTooBig, "message_too_large")
	})
	t.Run("fragments over 1 MiB", func(t *testing.T) {
		t.Parallel()
		c, _ := r.join(t, 0, dialOpts{credential: credB, streamName: "fragments"})
		w, err := c.ws.Writer(context.Background(), websocket.MessageText)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = w.Write([]byte(`{"type":"token","data":"`))
		for i := 0; i < 3; i++ {
			if _, err := w.Write([]byte(strings.Repeat("f", 400<<10))); err != nil {
				break
			}
		}
		_ = w.Close()
		c.wantCloseAfter(codeTooBig, "message_too_large")
	})
	t.Run("fragmented frame", func(t *testing.T) {
		t.Parallel()
		r := newRoom(t, sys, credA, "alice", "fragmented") // alone: no membership frames
		c, _ := r.join(t, 0, dialOpts{credential: credB, streamName: "fragmented", selfSubscribe: true})
		w, err := c.ws.Writer(context.Background(), websocket.MessageText)
		if err != nil {
			t.Fatal(err)
		}
		for _, part := range []string{`{"type":"tok`, `en","data":"in `, `parts"}`} {
			if _, err := w.Write([]byte(part)); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		c.wantToken("fragmented", "in parts", 1)
	})
	t.Run("escaped member names", func(t *testing.T) {
		t.Parallel()
		r := newRoom(t, sys, credA, "alice", "escaped") // alone: no membership frames
		c, _ := r.join(t, 0, dialOpts{credential: credB, streamName: "escaped", selfSubscribe: true})
		c.sendRaw([]byte(`{"\u0074ype":"p\u0069ng"}`))
		c.expect("pong")
	})
}

// C43: data over 65 536 bytes closes 4400 token_too_large and none of it
// is delivered; 65 536 bytes pass (C31 has the exact boundary cases).
func TestC43TokenTooLarge(t *testing.T) {
	t.Parallel()
	sys := gwtest.Start(t, gwtest.Options{})
	_, credA := account(t, sys, "alice")
	_, credB := account(t, sys, "bob")
	r := newRoom(t, sys, credA, "alice", "room")
	reader, _ := r.join(t, 0, dialOpts{credential: credA, streamName: "reader"})
	for i, msg := range []string{
		`{"type":"token","data":"` + strings.Repeat("x", 65537) + `"}`,
		`{"type":"token","data":"` + strings.Repeat(`\u00e9`, 65536/2) + `x"}`,
		`{"type":"token","data":"` + strings.Repeat("😀", 65536/4) + `x"}`,
	} {
		name := fmt.Sprintf("w%d", i)
		w, _ := r.join(t, 0, dialOpts{credential: credB, streamName: name})
		reader.expectOf(name, "stream_joined")
		w.token("ok")
		w.sendRaw([]byte(msg))
		w.wantCloseAfter(codeBad, "token_too_large")
		reader.wantTokenOf(name, "ok", 1)
		sl := reader.expectOf(name, "stream_left") // and no token in between
		if sl["stream_name"] != name || num(t, sl, "last_seq") != 1 {
			t.Errorf("stream_left %v, want %s at last_seq 1", sl, name)
		}
	}
}

// C47: a bad frame, a refused connect or a closed connection affects no
// other connection nor the stream's stored state.
func TestC47Isolation(t *testing.T) {
	t.Parallel()
	sys := gwtest.Start(t, gwtest.Options{Gateways: 2})
	_, credA := account(t, sys, "alice")
	_, credB := account(t, sys, "bob")
	r := newRoom(t, sys, credA, "alice", "room")
	a, _ := r.join(t, 0, dialOpts{credential: credA, streamName: "a"})
	b, _ := r.join(t, 1, dialOpts{credential: credB, streamName: "b", metadata: `{"kept":1}`})
	c, _ := r.join(t, 0, dialOpts{credential: credB, streamName: "c"})
	a.expect("stream_joined")
	a.expect("stream_joined")
	b.expect("stream_joined")
	b.token("b1")
	b.token("b2")
	a.wantToken("b", "b1", 1)
	a.wantToken("b", "b2", 2)
	c.wantToken("b", "b1", 1)
	c.wantToken("b", "b2", 2)

	// A refused connect with the same name by another account, a bad
	// header and a bad frame.
	refused(t, connectURL(r.linkAt(0)), dialOpts{credential: credA, streamName: "b"}, codeConflict, "stream_name_owner_conflict")
	refused(t, connectURL(r.linkAt(1)), dialOpts{credential: credB, streamName: "b", peerIdentity: `{"kind":"x"}`}, codeBad, "invalid_peer_identity_header")
	b.sendRaw([]byte(`{"type":"token","data":"b3"`))
	b.wantCloseAfter(codeBad, "malformed_frame")
	for _, x := range []*client{a, c} {
		if sl := x.expect("stream_left"); sl["stream_name"] != "b" || num(t, sl, "last_seq") != 2 {
			t.Errorf("stream_left %v", sl)
		}
	}
	// The others carry on.
	a.token("a1")
	c.wantToken("a", "a1", 1)
	c.token("c1")
	a.wantToken("c", "c1", 1)
	// b's stream kept its seq; a rejoin without a metadata header starts
	// from {} (spec 4.1: kept only on resume).
	b2, jb := r.join(t, 1, dialOpts{credential: credB, streamName: "b"})
	if num(t, jb, "last_seq") != 2 || fmt.Sprint(jb["metadata"]) != "map[]" || jb["resumed"] != nil {
		t.Errorf("rejoined b: %v", jb)
	}
	b2.token("b3")
	a.expect("stream_joined")
	a.wantToken("b", "b3", 3)
}

// C48: with X-AMS-Batch an array of frames acts as its frames one by one,
// a bad element closing the connection after the earlier ones took
// effect; without it an array is malformed.
func TestC48Batching(t *testing.T) {
	t.Parallel()
	sys := gwtest.Start(t, gwtest.Options{})
	_, credA := account(t, sys, "alice")
	_, credB := account(t, sys, "bob")
	r := newRoom(t, sys, credA, "alice", "room")
	plain, _ := r.join(t, 0, dialOpts{credential: credA, streamName: "plain"})
	batched, _ := r.join(t, 0, dialOpts{credential: credA, streamName: "batched", batch: true})
	plain.expect("stream_joined")

	p, _ := r.join(t, 0, dialOpts{credential: credB, streamName: "p", batch: true})
	for _, x := range []*client{plain, batched} {
		x.expect("stream_joined")
	}
	p.sendRaw([]byte(` [ {"type":"token","data":"1"}, {"type":"ping"}, {"type":"set_metadata","metadata":{"m":1}},{"type":"token","data":"2"} ] `))
	p.expect("pong")
	for _, x := range []*client{plain, batched} {
		x.wantToken("p", "1", 1)
		if m := x.expect("stream_metadata"); num(t, m, "seq") != 2 {
			t.Errorf("stream_metadata %v", m)
		}
		x.wantToken("p", "2", 3)
	}
	// A single object is fine with batching too; 256 elements are.
	p.token("3")
	var many []string
	for i := 0; i < 256; i++ {
		many = append(many, fmt.Sprintf(`{"type":"token","data":"n%d"}`, i))
	}
	p.sendRaw([]byte("[" + strings.Join(many, ",") + "]"))
	for _, x := range []*client{plain, batched} {
		x.wantToken("p", "3", 4)
		for i := 0; i < 256; i++ {
			x.wantToken("p", fmt.Sprintf("n%d", i), 5+i)
		}
	}
	if n := plain.arrays.Load(); n != 0 {
		t.Errorf("a connection without batching got %d arrays", n)
	}
	// A bad element ends the batch after the elements before it.
	p.sendRaw([]byte(`[{"type":"token","data":"last"},{"type":"x_nope"},{"type":"token","data":"never"}]`))
	p.wantCloseAfter(codeBad, "unknown_frame_type")
	for _, x := range []*client{plain, batched} {
		x.wantToken("p", "last", 261)
		if sl := x.expect("stream_left"); num(t, sl, "last_seq") != 261 {
			t.Errorf("stream_left %v", sl)
		}
	}

	for _, tc := range []struct {
		name, msg, reason string
		delivered         bool // the element before the bad one took effect
	}{
		{"empty array", `[]`, "malformed_frame", false},
		{"257 elements", "[" + strings.Join(append(many, `{"type":"ping"}`), ",") + "]", "malformed_frame", false},
		{"nested array", `[[{"type":"ping"}]]`, "malformed_frame", false},
		{"invalid JSON later on", `[{"type":"token","data":"x"},{]`, "malformed_frame", false},
		{"non-object element", `[{"type":"token","data":"x"},1]`, "malformed_frame", true},
		{"too large element", `[{"type":"token","data":"x"},{"type":"token","data":"` + strings.Repeat("y", 65537) + `"}]`, "token_too_large", true},
		{"bad subscribe element", `[{"type":"token","data":"x"},{"type":"subscribe","streams":5}]`, "invalid_subscription", true},
	} {
		name := "q-" + strings.ReplaceAll(tc.name, " ", "-")
		t.Run(tc.name, func(t *testing.T) {
			c, _ := r.join(t, 0, dialOpts{credential: credB, streamName: name, batch: true})
			plain.expectOf(name, "stream_joined")
			c.sendRaw([]byte(tc.msg))
			c.wantCloseAfter(codeBad, tc.reason)
			if tc.delivered {
				plain.wantTokenOf(name, "x", 1)
			}
			plain.expectOf(name, "stream_left")
		})
	}
}
