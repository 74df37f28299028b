package streame2e

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/amsrouter/ams/services/gateway/gatewayd"
	"github.com/amsrouter/ams/services/gateway/internal/gwtest"
)

// C87: an observer connects with the link alone, gets joined with
// observer:true and null stream fields, reads every stream, and appears to
// nobody: no stream_joined or stream_left, not in peers nor in inspect.
func TestC87Observer(t *testing.T) {
	t.Parallel()
	sys := gwtest.Start(t, gwtest.Options{Gateways: 2})
	_, credA := account(t, sys, "alice")
	accB, credB := account(t, sys, "bob")
	r := newRoom(t, sys, credA, "alice", "room")
	a, _ := r.join(t, 0, dialOpts{credential: credA, streamName: "a", metadata: `{"m":1}`})
	b, _ := r.join(t, 1, dialOpts{credential: credB, streamName: "b"})
	a.expect("stream_joined")

	// Without a credential, by header; with one, by query; stream inputs
	// are ignored.
	o1 := dial(t, r.linkAt(0), dialOpts{observe: true, streamName: "ignored", metadata: `{"x":1}`, selfSubscribe: true})
	j1 := o1.expectMsg("joined")
	wantKeys(t, j1.raw, "type", "conversation_id", "stream_id", "stream_name", "metadata", "self_subscribe", "peers",
		"account_id", "last_seq", "subscription", "retention", "observer")
	for k, want := range map[string]string{
		"conversation_id": `"` + r.convID + `"`, "stream_id": "null", "stream_name": "null", "metadata": "null",
		"account_id": "null", "last_seq": "0", "subscription": "null", "observer": "true", "retention": defaultRetention,
	} {
		if got := member(t, j1.raw, k); got != want {
			t.Errorf("observer joined %s = %s, want %s", k, got, want)
		}
	}
	if got := fmt.Sprint(peerNames(t, j1.m)); got != "[a b]" {
		t.Errorf("observer peers %s, want [a b]", got)
	}
	o2 := dial(t, r.linkAt(1), dialOpts{credential: credB, query: "&observe=1"})
	j2 := o2.expectMsg("joined")
	if j2.m["observer"] != true || j2.m["account_id"] != accB || j2.m["stream_id"] != nil {
		t.Errorf("observer with a credential: %s", j2.raw)
	}

	// Nobody saw them: b's token is a's next frame; peers and inspect do
	// not list them.
	b.token("b1")
	a.wantToken("b", "b1", 1)
	_, jc := r.join(t, 1, dialOpts{credential: credB, streamName: "c"})
	if got := fmt.Sprint(peerNames(t, jc)); got != "[a b]" {
		t.Errorf("peers %s, want [a b]", got)
	}
	resp := gwtest.DoResponse(t, http.MethodGet, sys.URL(1)+"/v1/alice/conversations/room?t="+r.token(t), nil, "")
	if n := len(resp.JSON(t)["streams"].([]any)); n != 3 {
		t.Errorf("inspect lists %d streams, want 3: %s", n, resp.Body)
	}

	// They read every stream, and see membership.
	for _, o := range []*client{o1, o2} {
		o.wantToken("b", "b1", 1)
		if m := o.expect("stream_joined"); m["stream_name"] != "c" {
			t.Errorf("observer got %v", m)
		}
	}
	a.token("a1")
	a.send(map[string]any{"type": "set_metadata", "metadata": map[string]any{"m": 2}})
	for _, o := range []*client{o1, o2} {
		got := []string{}
		for len(got) < 2 {
			m := o.next(wait)
			got = append(got, fmt.Sprint(m["type"], ":", m["stream_name"]))
		}
		if fmt.Sprint(got) != "[token:a stream_metadata:a]" {
			t.Errorf("observer got %v", got)
		}
	}
	// Pings and subscribe are allowed.
	o1.send(map[string]any{"type": "ping"})
	o1.expect("pong")
	o1.send(map[string]any{"type": "subscribe", "streams": []string{"b"}})
	if m := o1.expectMsg("subscribed"); member(t, m.raw, "subscription") != `["b"]` {
		t.Errorf("subscribed %s", m.raw)
	}
	a.token("a2")
	b.token("b2")
	o1.wantToken("b", "b2", 2)
	o2.until("token", wait)

	// An observer leaving is not announced: a's next frame is b's token.
	o2.close()
	b.token("b3")
	a.expect("stream_joined") // c
	a.wantToken("b", "b2", 2)
	a.wantToken("b", "b3", 3)
}

// C88: an observer may send only ping and subscribe: a token or
// set_metadata closes it 4400 read_only and writes nothing.
func TestC88ReadOnly(t *testing.T) {
	t.Parallel()
	sys := gwtest.Start(t, gwtest.Options{})
	_, credA := account(t, sys, "alice")
	r := newRoom(t, sys, credA, "alice", "room")
	a, _ := r.join(t, 0, dialOpts{credential: credA, streamName: "a"})
	for _, tc := range []struct{ name, msg string }{
		{"token", `{"type":"token","data":"x"}`},
		{"set_metadata", `{"type":"set_metadata","metadata":{}}`},
		{"token with a credential", `{"type":"token","data":"x"}`},
		{"token in a batch", `[{"type":"ping"},{"type":"token","data":"x"}]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := dialOpts{observe: true, batch: true}
			if tc.name == "token with a credential" {
				o.credential = credA
			}
			obs, _ := r.join(t, 0, o)
			obs.sendRaw([]byte(tc.msg))
			frames := obs.wantCloseAfter(codeBad, "read_only")
			// The batch's ping took effect, but a close is not held up
			// behind queued frames: its pong may or may not come first.
			for _, f := range frames {
				if f.m["type"] != "pong" || tc.name != "token in a batch" {
					t.Errorf("frame before the close: %s", f.raw)
				}
			}
		})
	}
	// Nothing was written and nobody saw the observers: inspect lists a
	// alone, and a's next frame is the stream_joined of a later stream.
	resp := gwtest.DoResponse(t, http.MethodGet, sys.URL(0)+"/v1/alice/conversations/room?t="+r.token(t), nil, "")
	if n := len(resp.JSON(t)["streams"].([]any)); n != 1 {
		t.Errorf("inspect lists %d streams, want 1: %s", n, resp.Body)
	}
	r.join(t, 0, dialOpts{credential: credA, streamName: "a2"})
	if m := a.expect("stream_joined"); m["stream_name"] != "a2" {
		t.Errorf("a got %v", m)
	}
}

// C88: observers have their own cap, 1000 per conversation by default
// (lowered here): one more closes 4003 observers_full; stream caps do not
// apply to them and they do not use up stream places.
func TestC88ObserverCap(t *testing.T) {
	t.Parallel()
	sys := gwtest.Start(t, gwtest.Options{Gateway: func(_ int, cfg *gatewayd.Config) {
		cfg.Hub.MaxObservers = 3
		cfg.Hub.MaxStreamsPerConversation = 2
	}})
	_, credA := account(t, sys, "alice")
	r := newRoom(t, sys, credA, "alice", "room")
	var obs []*client
	for i := 0; i < 3; i++ {
		o, _ := r.join(t, 0, dialOpts{observe: true})
		obs = append(obs, o)
	}
	refused(t, connectURL(r.link), dialOpts{observe: true}, codeCap, "observers_full")
	refused(t, connectURL(r.link), dialOpts{observe: true, credential: credA}, codeCap, "observers_full")
	// Streams are not counted against observers, nor observers against
	// streams.
	r.join(t, 0, dialOpts{credential: credA, streamName: "s1"})
	r.join(t, 0, dialOpts{credential: credA, streamName: "s2"})
	refused(t, connectURL(r.link), dialOpts{credential: credA, streamName: "s3"}, codeCap, "conversation_full")
	// The cap counts live observers: once one closed, another gets in
	// (the server forgets it right after the close handshake: retry).
	obs[0].close()
	joinEventually(t, connectURL(r.link), dialOpts{observe: true})
}

// C88: the observer cap is per conversation, across replicas.
func TestC88ObserverCapAcrossGateways(t *testing.T) {
	t.Parallel()
	sys := gwtest.Start(t, gwtest.Options{Gateways: 2, Gateway: func(_ int, cfg *gatewayd.Config) {
		cfg.Hub.MaxObservers = 2
	}})
	_, credA := account(t, sys, "alice")
	r := newRoom(t, sys, credA, "alice", "room")
	r.join(t, 0, dialOpts{observe: true})
	r.join(t, 0, dialOpts{observe: true})
	refused(t, connectURL(r.linkAt(1)), dialOpts{observe: true}, codeCap, "observers_full")
}

// C87, C15: revoking the link an observer connected with closes it
// 4001 link_revoked.
func TestC87ObserverRevoked(t *testing.T) {
	t.Parallel()
	sys := gwtest.Start(t, gwtest.Options{})
	_, credA := account(t, sys, "alice")
	r := newRoom(t, sys, credA, "alice", "room")
	o, _ := r.join(t, 0, dialOpts{observe: true})
	resp := gwtest.DoResponse(t, http.MethodDelete, sys.URL(0)+"/v1/alice/conversations/room/links/"+r.linkID, gwtest.Bearer(credA), "")
	if resp.Status != http.StatusOK {
		t.Fatalf("revoke: %d %s", resp.Status, resp.Body)
	}
	o.wantClose(codeLink, "link_revoked")
}
