package mcpe2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/coder/websocket"
	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/amsrouter/ams/services/gateway/gatewayd"
	"github.com/amsrouter/ams/services/gateway/internal/gwtest"
)

var anonRe = regexp.MustCompile(`^acc_anon_[0-9a-f]{26}$`)

// linkPath is a magic link's path and query, for a client bound to it.
func linkPath(link string) string {
	i := strings.Index(link, "/acme/")
	if i < 0 {
		i = strings.Index(strings.TrimPrefix(link, "http://"), "/") + len("http://")
	}
	return link[i:]
}

func TestCreateNeedsPersistentAccount_C74(t *testing.T) {
	t.Parallel()
	sys, creds := system(t, 1, "acme")
	hs := hosts(t, sys)
	anon := connect(t, clientOpts{hosts: hs, noPush: true})
	anon.fail("ams_create_conversation", map[string]any{"alias": "x"}, "invalid_credential")

	owner := connect(t, clientOpts{hosts: hs, bearer: creds["acme"], noPush: true})
	m := owner.ok("ams_create_conversation", map[string]any{"alias": "room", "stream_name": "main", "link_expires_in": 3600})
	if diff := cmp.Diff([]string{"conversation_id", "alias", "magic_link", "stream_id", "stream_name", "metadata", "stream_metadata", "created_at", "link_id", "expires_at"},
		gwtest.Keys(t, []byte(owner.call("ams_create_conversation", map[string]any{}).raw))); diff != "" {
		t.Fatalf("create payload keys (-want +got):\n%s", diff)
	}
	owner.fail("ams_create_conversation", map[string]any{"alias": "room"}, "alias_taken")
	owner.fail("ams_create_conversation", map[string]any{"alias": "Bad Alias"}, "invalid_alias")
	owner.fail("ams_create_conversation", map[string]any{"link_expires_in": 5}, "invalid_link_expiry")

	// The link route's anonymous account cannot create either.
	bound := connect(t, clientOpts{hosts: hs, path: linkPath(m["magic_link"].(string)), noPush: true})
	bound.fail("ams_create_conversation", map[string]any{}, "invalid_credential")
}

func TestAnonymousAccounts_C3_C75(t *testing.T) {
	t.Parallel()
	sys, creds := system(t, 2, "acme")
	hs := hosts(t, sys)
	conv := sys.Mint(t, 0, creds["acme"], "acme", `{"alias":"room"}`)
	link := conv["magic_link"].(string)

	a := connect(t, clientOpts{hosts: hs, pick: only(0), noPush: true})
	a.fail("ams_join", map[string]any{}, "invalid_credential")
	a.fail("ams_join", map[string]any{"magic_link": link + "x"}, "invalid_magic_link")
	a.fail("ams_join", map[string]any{"magic_link": strings.Replace(link, "/room?", "/nope?", 1)}, "conversation_not_found")
	ja := a.ok("ams_join", map[string]any{"magic_link": link, "stream_name": "a"})
	accA, _ := ja["account_id"].(string)
	if !anonRe.MatchString(accA) {
		t.Fatalf("account_id %q is not anonymous", accA)
	}
	b := connect(t, clientOpts{hosts: hs, pick: only(1), noPush: true})
	jb := b.ok("ams_join", map[string]any{"magic_link": link, "stream_name": "b"})
	if jb["account_id"] != accA {
		t.Fatalf("two users of one link: %v and %v", jb["account_id"], accA)
	}
	// Another link of the conversation: another anonymous account.
	r := gwtest.DoResponse(t, "POST", sys.URL(0)+"/v1/acme/conversations/room/links", gwtest.Bearer(creds["acme"]), `{}`)
	other := r.JSON(t)["magic_link"].(string)
	c := connect(t, clientOpts{hosts: hs, noPush: true})
	jc := c.ok("ams_join", map[string]any{"magic_link": other, "stream_name": "c"})
	if jc["account_id"] == accA || !anonRe.MatchString(jc["account_id"].(string)) {
		t.Fatalf("second link's account %v, first %v", jc["account_id"], accA)
	}
	// The magic-link route without Bearer: the link's anonymous account.
	d := connect(t, clientOpts{hosts: hs, path: linkPath(link), noPush: true})
	if jd := d.ok("ams_join", map[string]any{"stream_name": "d"}); jd["account_id"] != accA {
		t.Fatalf("bound session account %v, want %v", jd["account_id"], accA)
	}
}

func TestInvalidBearerNoFallback_C76(t *testing.T) {
	t.Parallel()
	sys, creds := system(t, 1, "acme")
	hs := hosts(t, sys)
	conv := sys.Mint(t, 0, creds["acme"], "acme", `{"alias":"room"}`)
	link := conv["magic_link"].(string)
	bad := "ams_sk_" + strings.Repeat("Z", 43)
	c := connect(t, clientOpts{hosts: hs, bearer: bad, noPush: true})
	c.fail("ams_join", map[string]any{"magic_link": link}, "invalid_credential")
	c.fail("ams_send", map[string]any{"data": "x", "magic_link": link}, "invalid_credential")
	c.fail("ams_create_conversation", map[string]any{}, "invalid_credential")
	// Later Authorization headers are ignored: the account was fixed at
	// initialize.
	c.obs.bearer = creds["acme"]
	c.fail("ams_join", map[string]any{"magic_link": link}, "invalid_credential")
	// On the magic-link route an invalid Bearer is refused by HTTP.
	r := gwtest.DoResponse(t, "POST", sys.URL(0)+linkPath(link), mcpHeaders("Authorization", "Bearer "+bad), initBody)
	expectHTTPError(t, r, http.StatusUnauthorized, "invalid_credential")
}

func TestSelfSubscribeAndMetadata_C78_C79(t *testing.T) {
	t.Parallel()
	sys, creds := system(t, 2, "acme")
	hs := hosts(t, sys)
	conv := sys.Mint(t, 0, creds["acme"], "acme", `{"alias":"room"}`)
	link := conv["magic_link"].(string)
	self := connect(t, clientOpts{hosts: hs, pick: only(0), bearer: creds["acme"]})
	peer := connect(t, clientOpts{hosts: hs, pick: only(1)})
	js := self.ok("ams_join", map[string]any{"magic_link": link, "stream_name": "echo", "self_subscribe": true,
		"stream_metadata": map[string]any{"role": "writer"}, "peer_identity": map[string]any{"kind": "agent", "model": "m1"}})
	if js["self_subscribe"] != true {
		t.Fatalf("joined self_subscribe %v", js["self_subscribe"])
	}
	own := js["stream_id"].(string)
	jp := peer.ok("ams_join", map[string]any{"magic_link": link, "peer_identity": map[string]any{"kind": "human", "client": "Claude Desktop!"}})
	if name := jp["stream_name"].(string); !regexp.MustCompile(`^claude-desktop-[0-9a-f]{4}$`).MatchString(name) {
		t.Fatalf("auto stream name %q", name)
	}
	self.ok("ams_send", map[string]any{"data": "to myself too"})
	got := self.notes.waitFor(t, "own token", func(l []note) bool { return len(tokens(l, own)) == 1 })
	if tokens(got, own)[0] != "to myself too" {
		t.Fatalf("own tokens %v", tokens(got, own))
	}
	peer.notes.waitFor(t, "peer gets the token", func(l []note) bool { return len(tokens(l, own)) == 1 })

	r := self.ok("ams_set_metadata", map[string]any{"metadata": json.RawMessage(`{"status":"thinking","n":1}`)})
	if r["seq"].(json.Number).String() != "2" {
		t.Fatalf("set_metadata payload %v", r)
	}
	l := peer.notes.waitFor(t, "stream_metadata", func(l []note) bool {
		return has(l, "notifications/ams/stream_metadata", func(p map[string]any) bool { return p["stream_id"] == own })
	})
	for _, x := range l {
		if x.Method == "notifications/ams/stream_metadata" {
			if !strings.Contains(string(x.Raw), `"metadata":{"status":"thinking","n":1}`) {
				t.Fatalf("stream_metadata params %s", x.Raw)
			}
			if _, typed := x.Params["type"]; typed {
				t.Fatalf("params keep type: %s", x.Raw)
			}
		}
	}
}

// wsPeer joins a conversation over WebSocket and emits tokens fast.
type wsPeer struct {
	c        *websocket.Conn
	streamID string
}

func dialPeer(t *testing.T, link, credential, name string) *wsPeer {
	t.Helper()
	u := strings.Replace(link, "http://", "ws://", 1)
	i := strings.Index(u, "?")
	u = u[:i] + "/connect" + u[i:]
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c, _, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPHeader: http.Header{
		"Authorization": {"Bearer " + credential}, "X-Ams-Stream-Name": {name}}})
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadLimit(-1)
	_, msg, err := c.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var j map[string]any
	_ = json.Unmarshal(msg, &j)
	p := &wsPeer{c: c, streamID: j["stream_id"].(string)}
	go func() {
		for {
			if _, _, err := c.Read(context.Background()); err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { _ = c.Close(websocket.StatusNormalClosure, "") })
	return p
}

func (p *wsPeer) send(t *testing.T, n int, prefix string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	for i := range n {
		b, _ := json.Marshal(map[string]string{"type": "token", "data": fmt.Sprintf("%s%d", prefix, i)})
		if err := p.c.Write(ctx, websocket.MessageText, b); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRideAlong_C81(t *testing.T) {
	t.Parallel()
	sys, creds := system(t, 1, "acme")
	conv := sys.Mint(t, 0, creds["acme"], "acme", `{"alias":"room"}`)
	link := conv["magic_link"].(string)
	peer := dialPeer(t, link, creds["acme"], "writer")
	s := connect(t, clientOpts{hosts: hosts(t, sys)})
	s.ok("ams_join", map[string]any{"magic_link": link, "stream_name": "reader"})
	peer.send(t, 100, "t")
	// The push leg has a copy of all 100: they are buffered.
	s.notes.waitFor(t, "100 tokens on the push leg", func(l []note) bool { return len(tokens(l, peer.streamID)) == 100 })
	before, _ := s.notes.snapshot()
	s.ok("ams_send", map[string]any{"data": "mine"})
	after, _ := s.notes.snapshot()
	var ride []string
	for _, x := range after[len(before):] {
		if x.Via == "post" && x.Method == "notifications/ams/token" {
			ride = append(ride, x.Params["data"].(string))
		}
	}
	if len(ride) != 64 || ride[0] != "t0" || ride[63] != "t63" {
		t.Fatalf("ride-along carried %d tokens (%v…), want t0..t63", len(ride), ride[:min(3, len(ride))])
	}
	m := s.ok("ams_recv", map[string]any{"wait_ms": 0})
	frames := recvFrames(t, m)
	if len(frames) != 36 || frames[0]["params"].(map[string]any)["data"] != "t64" || m["truncated"] != false {
		t.Fatalf("ams_recv after ride-along: %d frames, first %v, truncated %v", len(frames), frames[0], m["truncated"])
	}
	if m = s.ok("ams_recv", map[string]any{"wait_ms": 0}); len(recvFrames(t, m)) != 0 {
		t.Fatalf("ams_recv did not clear the buffer: %v", m)
	}
}

func TestTruncation_C82(t *testing.T) {
	t.Parallel()
	// The session's outbound queue holds the whole burst: this test is
	// about the ams_recv buffer, and a push leg the machine's load slows
	// down must not overflow the default 1,024 frames (a slow consumer).
	sys := gwtest.Start(t, gwtest.Options{Gateways: 1, Gateway: func(_ int, cfg *gatewayd.Config) {
		cfg.Hub.QueueFrames = 4096
	}})
	_, cred := sys.CreateAccount(t, 0, "acme")
	creds := map[string]string{"acme": cred}
	conv := sys.Mint(t, 0, creds["acme"], "acme", `{"alias":"room"}`)
	link := conv["magic_link"].(string)
	peer := dialPeer(t, link, creds["acme"], "writer")
	s := connect(t, clientOpts{hosts: hosts(t, sys)})
	s.ok("ams_join", map[string]any{"magic_link": link, "stream_name": "reader"})
	peer.send(t, 1100, "t")
	s.notes.waitFor(t, "1100 tokens on the push leg", func(l []note) bool { return len(tokens(l, peer.streamID)) == 1100 })
	m := s.ok("ams_recv", map[string]any{"wait_ms": 0})
	frames := recvFrames(t, m)
	if m["truncated"] != true || m["dropped"].(json.Number).String() != "100" {
		t.Fatalf("truncated %v dropped %v, want true 100", m["truncated"], m["dropped"])
	}
	if len(frames) != 1001 {
		t.Fatalf("%d frames, want the marker and 1000 tokens", len(frames))
	}
	if frames[0]["method"] != "notifications/ams/truncated" || frames[0]["params"].(map[string]any)["dropped"].(json.Number).String() != "100" {
		t.Fatalf("first frame %v, want the truncation marker", frames[0])
	}
	if p := frames[1]["params"].(map[string]any); p["data"] != "t100" || p["seq"].(json.Number).String() != "101" {
		t.Fatalf("first token after the gap %v, want t100 (seq 101)", p)
	}
	if m = s.ok("ams_recv", map[string]any{"wait_ms": 0}); m["truncated"] != false || m["dropped"].(json.Number).String() != "0" {
		t.Fatalf("next ams_recv %v", m)
	}
}

func TestRehydration_C83(t *testing.T) {
	t.Parallel()
	sys, creds := system(t, 2, "acme")
	hs := hosts(t, sys)
	conv := sys.Mint(t, 0, creds["acme"], "acme", `{"alias":"room"}`)
	link := conv["magic_link"].(string)

	// No conversation known: not_joined; ams_recv is empty.
	fresh := connect(t, clientOpts{hosts: hs, bearer: creds["acme"], noPush: true})
	fresh.fail("ams_send", map[string]any{"data": "x"}, "not_joined")
	if m := fresh.ok("ams_recv", map[string]any{"wait_ms": 100}); len(recvFrames(t, m)) != 0 {
		t.Fatalf("recv %v", m)
	}
	// A magic_link on ams_send binds the session (D0030).
	r := fresh.ok("ams_send", map[string]any{"data": "first", "magic_link": link, "stream_name": "late"})
	want := r["stream_id"]

	// Joined on gateway 0, then every call on gateway 1: same stream.
	n := 0
	mover := connect(t, clientOpts{hosts: hs, bearer: creds["acme"], noPush: true, pick: func(int) int { return n }})
	j := mover.ok("ams_join", map[string]any{"magic_link": link, "stream_name": "mover", "stream_metadata": map[string]any{"v": 1}})
	n = 1
	s1 := mover.ok("ams_send", map[string]any{"data": "a"})
	if s1["stream_id"] != j["stream_id"] || s1["seq"].(json.Number).String() != "1" {
		t.Fatalf("send on the other gateway: %v, joined %v", s1, j["stream_id"])
	}
	// The re-join kept the metadata.
	res, err := fresh.cs.ReadResource(context.Background(), &mcp.ReadResourceParams{URI: "ams://conversations/" + conv["conversation_id"].(string)})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(res.Contents[0].Text, `"stream_name":"mover","owner_account_id"`) || !strings.Contains(res.Contents[0].Text, `"metadata":{"v":1}`) {
		t.Fatalf("conversation resource %s", res.Contents[0].Text)
	}
	if want == nil {
		t.Fatal("no stream id")
	}
}

func TestConversationResource_C84(t *testing.T) {
	t.Parallel()
	sys, creds := system(t, 1, "acme")
	hs := hosts(t, sys)
	conv := sys.Mint(t, 0, creds["acme"], "acme", `{"alias":"room","metadata":{"k":[1,2]}}`)
	link := conv["magic_link"].(string)
	id := conv["conversation_id"].(string)
	a := connect(t, clientOpts{hosts: hs, bearer: creds["acme"], noPush: true})
	ja := a.ok("ams_join", map[string]any{"magic_link": link, "stream_name": "a"})
	b := connect(t, clientOpts{hosts: hs, noPush: true})
	jb := b.ok("ams_join", map[string]any{"magic_link": link, "stream_name": "b"})
	ctx := context.Background()
	res, err := a.cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: "ams://conversations/" + id})
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(res.Contents[0].Text)
	if diff := cmp.Diff([]string{"conversation_id", "alias", "namespace", "created_at", "metadata", "streams"}, gwtest.Keys(t, body)); diff != "" {
		t.Fatalf("resource keys (-want +got):\n%s", diff)
	}
	m := decode(t, body)
	streams := m["streams"].([]any)
	if len(streams) != 2 || streams[0].(map[string]any)["stream_id"] != ja["stream_id"] || streams[1].(map[string]any)["stream_id"] != jb["stream_id"] ||
		m["namespace"] != "acme" || m["alias"] != "room" || !strings.Contains(string(body), `"metadata":{"k":[1,2]}`) {
		t.Fatalf("resource %s", body)
	}
	res, err = a.cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: "ams://conversations/" + id + "/peers"})
	if err != nil {
		t.Fatal(err)
	}
	peers := decode(t, []byte(res.Contents[0].Text))["peers"].([]any)
	if len(peers) != 1 || peers[0].(map[string]any)["stream_id"] != jb["stream_id"] {
		t.Fatalf("peers %s", res.Contents[0].Text)
	}
	if _, err := a.cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: "ams://conversations/conv_00000000000000000000"}); err == nil {
		t.Fatal("an unknown conversation was readable")
	}
	for _, uri := range []string{"ams://protocol", "ams://conventions/v1"} {
		r, err := a.cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: uri})
		if err != nil || r.Contents[0].Text == "" {
			t.Fatalf("%s: %v", uri, err)
		}
	}
	if r, _ := a.cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: "ams://conventions/v1"}); r.Contents[0].MIMEType != "text/uri-list" {
		t.Fatalf("conventions MIME type %q", r.Contents[0].MIMEType)
	}
	tpl, err := a.cs.ListResourceTemplates(ctx, nil)
	if err != nil || len(tpl.ResourceTemplates) == 0 || tpl.ResourceTemplates[0].URITemplate != "ams://conversations/{conversation_id}" {
		t.Fatalf("templates %v %v", tpl, err)
	}
}

func TestDisplacement_C85(t *testing.T) {
	t.Parallel()
	sys, creds := system(t, 2, "acme")
	hs := hosts(t, sys)
	conv := sys.Mint(t, 0, creds["acme"], "acme", `{"alias":"room"}`)
	link := conv["magic_link"].(string)
	first := connect(t, clientOpts{hosts: hs, pick: only(0), bearer: creds["acme"]})
	second := connect(t, clientOpts{hosts: hs, pick: only(1), bearer: creds["acme"]})
	j1 := first.ok("ams_join", map[string]any{"magic_link": link, "stream_name": "same"})
	first.ok("ams_send", map[string]any{"data": "one"})
	j2 := second.ok("ams_join", map[string]any{"magic_link": link, "stream_name": "same"})
	if j2["stream_id"] != j1["stream_id"] || j2["resumed"] != true {
		t.Fatalf("second join %v", j2)
	}
	closed := func(p map[string]any) bool {
		return p["code"] == json.Number("4001") && p["reason"] == "stream_displaced" && p["conversation_id"] == conv["conversation_id"]
	}
	first.notes.waitFor(t, "closed 4001 stream_displaced", func(l []note) bool { return has(l, "notifications/ams/closed", closed) })
	// ams_recv only drains: the closed frame, at once.
	m := first.ok("ams_recv", map[string]any{"wait_ms": 20000})
	fr := recvFrames(t, m)
	if len(fr) != 1 || fr[0]["method"] != "notifications/ams/closed" {
		t.Fatalf("drained %v", fr)
	}
	r := first.fail("ams_send", map[string]any{"data": "again"}, "wire_closed")
	if r["message"] != "4001 stream_displaced" {
		t.Fatalf("message %q", r["message"])
	}
	first.fail("ams_set_metadata", map[string]any{"metadata": map[string]any{}}, "wire_closed")
	// It did not re-dial: the second keeps the stream.
	s := second.ok("ams_send", map[string]any{"data": "two"})
	if s["seq"].(json.Number).String() != "2" {
		t.Fatalf("second send %v", s)
	}
	if l, _ := second.notes.snapshot(); has(l, "notifications/ams/closed", nil) {
		t.Fatal("the second session was displaced by the first")
	}
	// Until ams_join, which displaces the second.
	first.ok("ams_join", map[string]any{"magic_link": link, "stream_name": "same"})
	second.notes.waitFor(t, "second displaced", func(l []note) bool { return has(l, "notifications/ams/closed", closed) })
	if s := first.ok("ams_send", map[string]any{"data": "three"}); s["seq"].(json.Number).String() != "3" {
		t.Fatalf("send after re-join %v", s)
	}
}
