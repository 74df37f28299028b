package streame2e

import (
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/amsrouter/ams/services/gateway/internal/gwtest"
	"github.com/amsrouter/ams/services/internal/linktoken"
)

// Close codes of spec 4.2.
const (
	codeLink      websocket.StatusCode = 4001
	codeCred      websocket.StatusCode = 4002
	codeCap       websocket.StatusCode = 4003
	codeConflict  websocket.StatusCode = 4004
	codeNotFound  websocket.StatusCode = 4005
	codeBad       websocket.StatusCode = 4400
	codeSlow      websocket.StatusCode = 4290
	codeTooBig    websocket.StatusCode = 1009
	codeGoingAway websocket.StatusCode = 1001
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// C21: a connect GET with neither a WebSocket upgrade nor an SSE Accept is
// answered 426 upgrade_required; the Upgrade value is case-insensitive.
func TestC21UpgradeRequired(t *testing.T) {
	t.Parallel()
	sys := gwtest.Start(t, gwtest.Options{})
	_, cred := account(t, sys, "alice")
	r := newRoom(t, sys, cred, "alice", "room")
	u := strings.Replace(connectURLOf(sys, 0, "alice", "room", "t="+r.token(t)), "ws://", "http://", 1)
	for _, h := range []map[string]string{nil, {"Accept": "text/html"}, {"Authorization": "Bearer " + cred}} {
		resp := gwtest.DoResponse(t, http.MethodGet, u, h, "")
		if resp.Status != http.StatusUpgradeRequired {
			t.Errorf("GET with %v: %d, want 426", h, resp.Status)
			continue
		}
		if m := resp.JSON(t); m["error"] != "upgrade_required" {
			t.Errorf("GET with %v: body %s, want error upgrade_required", h, resp.Body)
		}
	}
	// Even a request that would fail every connect check gets 426 first.
	resp := gwtest.DoResponse(t, http.MethodGet, strings.Replace(connectURLOf(sys, 0, "nobody", "nothing", ""), "ws://", "http://", 1), nil, "")
	if resp.Status != http.StatusUpgradeRequired {
		t.Errorf("GET of an unknown conversation without upgrade: %d, want 426", resp.Status)
	}

	// A hand-written handshake with `Upgrade: WebSocket` is upgraded.
	host := strings.TrimPrefix(sys.URL(0), "http://")
	nc, err := net.DialTimeout("tcp", host, wait)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(wait))
	req := "GET /alice/conversations/room/connect?t=" + r.token(t) + " HTTP/1.1\r\nHost: " + host +
		"\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
		"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer " + cred + "\r\n\r\n"
	if _, err := io.WriteString(nc, req); err != nil {
		t.Fatal(err)
	}
	line := make([]byte, 12)
	if _, err := io.ReadFull(nc, line); err != nil || string(line) != "HTTP/1.1 101" {
		t.Errorf("mixed-case Upgrade: status line %q (%v), want HTTP/1.1 101", line, err)
	}
}

// C22, C23: link checks come before everything else, in the 4.2 order,
// and every failure arrives as a close code after a completed upgrade.
func TestC22C23LinkChecks(t *testing.T) {
	t.Parallel()
	sys := gwtest.Start(t, gwtest.Options{})
	_, cred := account(t, sys, "alice")
	r := newRoom(t, sys, cred, "alice", "room")
	other := newRoom(t, sys, cred, "alice", "other")
	tok := r.token(t)
	now := time.Now()
	expired, err := linktoken.Mint(sys.SigningKey(), sys.URL(0), r.convID, "alice", "room", r.linkID, now.Add(-time.Hour), now.Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	expiredOther, err := linktoken.Mint(sys.SigningKey(), sys.URL(0), other.convID, "alice", "other", other.linkID, now.Add(-time.Hour), now.Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	// A token whose signature does not verify.
	tampered := tok[:len(tok)-4] + flip(tok[len(tok)-4:])
	ok := dialOpts{credential: cred}

	cases := []struct {
		name         string
		ns, alias, q string
		o            dialOpts
		code         websocket.StatusCode
		reason       string
	}{
		{"no t", "alice", "room", "", ok, codeLink, "invalid_magic_link"},
		{"empty t", "alice", "room", "t=", ok, codeLink, "invalid_magic_link"},
		{"no t before unknown alias", "alice", "nothing", "", ok, codeLink, "invalid_magic_link"},
		{"unknown alias with a bad token", "alice", "nothing", "t=garbage", ok, codeNotFound, "conversation_not_found"},
		{"unknown alias with a valid token of another conversation", "alice", "nothing", "t=" + tok, ok, codeNotFound, "conversation_not_found"},
		{"unknown namespace", "nobody", "room", "t=" + tok, ok, codeNotFound, "conversation_not_found"},
		{"alias not matching its pattern", "alice", "Room", "t=garbage", dialOpts{}, codeNotFound, "conversation_not_found"},
		{"garbage token", "alice", "room", "t=garbage", ok, codeLink, "invalid_magic_link"},
		{"bad signature", "alice", "room", "t=" + tampered, ok, codeLink, "invalid_magic_link"},
		{"another conversation's token", "alice", "other", "t=" + tok, ok, codeLink, "invalid_magic_link"},
		{"expired", "alice", "room", "t=" + expired, ok, codeLink, "link_expired"},
		{"expired token of another conversation", "alice", "room", "t=" + expiredOther, ok, codeLink, "invalid_magic_link"},
		// Order: the link before the credential and the headers.
		{"bad token before missing credential", "alice", "room", "t=garbage", dialOpts{}, codeLink, "invalid_magic_link"},
		{"expired before bad credential", "alice", "room", "t=" + expired, dialOpts{credential: "ams_sk_" + strings.Repeat("A", 43)}, codeLink, "link_expired"},
		{"bad token before bad header", "alice", "room", "t=garbage", dialOpts{credential: cred, streamName: "bad name"}, codeLink, "invalid_magic_link"},
		{"no t before bad header", "alice", "room", "", dialOpts{credential: cred, header: hdr("X-AMS-Stream-Metadata", "!!")}, codeLink, "invalid_magic_link"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			refused(t, connectURLOf(sys, 0, tc.ns, tc.alias, tc.q), tc.o, tc.code, tc.reason)
		})
	}
}

// flip changes every character of a base64url fragment.
func flip(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
	}
	return string(b)
}

// C23, C15: a revoked link refuses connects with 4001 link_revoked and
// closes the connections it admitted with the same code; another link of
// the conversation keeps working.
func TestC23RevokedLink(t *testing.T) {
	t.Parallel()
	sys := gwtest.Start(t, gwtest.Options{})
	_, cred := account(t, sys, "alice")
	r := newRoom(t, sys, cred, "alice", "room")
	second := gwtest.DoResponse(t, http.MethodPost, sys.URL(0)+"/v1/alice/conversations/room/links", gwtest.Bearer(cred), "")
	if second.Status != http.StatusCreated {
		t.Fatalf("create link: %d %s", second.Status, second.Body)
	}
	link2 := second.JSON(t)["magic_link"].(string)

	live, _ := r.join(t, 0, dialOpts{credential: cred, streamName: "a"})
	other := dial(t, link2, dialOpts{credential: cred, streamName: "b"})
	other.expect("joined")
	live.expect("stream_joined")

	resp := gwtest.DoResponse(t, http.MethodDelete, sys.URL(0)+"/v1/alice/conversations/room/links/"+r.linkID, gwtest.Bearer(cred), "")
	if resp.Status != http.StatusOK {
		t.Fatalf("revoke: %d %s", resp.Status, resp.Body)
	}
	start := time.Now()
	live.wantClose(codeLink, "link_revoked")
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("live connection closed %s after the revocation, want within 5 s", d)
	}
	// Peers see the revoked connection's stream leave.
	if m := other.expect("stream_left"); m["stream_name"] != "a" {
		t.Errorf("stream_left %v", m)
	}
	// New connects with the revoked link are refused (within 5 s: poll).
	deadline := time.Now().Add(5 * time.Second)
	for {
		c := dial(t, r.link, dialOpts{credential: cred, streamName: "c"})
		code, reason, frames := c.closeCode(wait)
		if code == codeLink && reason == "link_revoked" && len(frames) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("connect with a revoked link: %d %q (%d frames), want 4001 link_revoked", code, reason, len(frames))
		}
		_ = c.ws.CloseNow()
	}
	// Revocation first, then the credential: a bad credential still gets
	// link_revoked.
	refused(t, connectURL(r.link), dialOpts{credential: "nope"}, codeLink, "link_revoked")
	// The other link is not affected.
	third := dial(t, link2, dialOpts{credential: cred, streamName: "c"})
	third.expect("joined")
	other.expect("stream_joined")
	other.token("still here")
	third.wantToken("b", "still here", 1)
}

// C24: a missing or invalid credential, or the bearer subprotocol offered
// without ams.v1, closes 4002 invalid_credential.
func TestC24Credential(t *testing.T) {
	t.Parallel()
	sys := gwtest.Start(t, gwtest.Options{})
	_, cred := account(t, sys, "alice")
	r := newRoom(t, sys, cred, "alice", "room")
	u := connectURL(r.link)
	unknown := "ams_sk_" + strings.Repeat("A", 43)
	cases := []struct {
		name string
		o    dialOpts
	}{
		{"missing", dialOpts{}},
		{"unknown credential", dialOpts{credential: unknown}},
		{"garbage credential", dialOpts{credential: "garbage"}},
		{"empty bearer", dialOpts{header: hdr("Authorization", "Bearer ")}},
		{"other scheme", dialOpts{header: hdr("Authorization", "Basic "+b64("alice:"+cred))}},
		{"bearer subprotocol without ams.v1", dialOpts{protocols: []string{"ams.bearer." + cred}}},
		{"bearer subprotocol without ams.v1, with a valid header", dialOpts{credential: cred, protocols: []string{"ams.bearer." + cred}}},
		{"ams.v1 without a bearer", dialOpts{protocols: []string{"ams.v1"}}},
		{"unknown credential in the subprotocol", dialOpts{protocols: []string{"ams.v1", "ams.bearer." + unknown}}},
		{"unknown bearer query", dialOpts{query: "&bearer=" + unknown}},
		{"observer with an invalid credential", dialOpts{observe: true, credential: unknown}},
		{"credential before bad headers", dialOpts{streamName: "bad name", header: hdr("X-AMS-Stream-Metadata", "!!")}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			refused(t, u+tc.o.query, tc.o, codeCred, "invalid_credential")
		})
	}
}

// C25: each bad header closes 4400 with its own reason, checks 5, 6, 7
// in that order; good values of the same headers are accepted.
func TestC25BadHeaders(t *testing.T) {
	t.Parallel()
	sys := gwtest.Start(t, gwtest.Options{})
	_, cred := account(t, sys, "alice")
	r := newRoom(t, sys, cred, "alice", "room")
	u := connectURL(r.link)
	sid := "str_" + strings.Repeat("a", 26)
	sid2 := "str_" + strings.Repeat("b", 26)
	big := `{"k":"` + strings.Repeat("x", 16<<10-8+1) + `"}` // 16 KiB + 1
	var many, manyPos []string
	for i := 0; i <= 100; i++ {
		many = append(many, fmt.Sprintf("n%d", i))
		manyPos = append(manyPos, fmt.Sprintf("str_%026x:1", i))
	}
	const (
		name = "X-AMS-Stream-Name"
		meta = "X-AMS-Stream-Metadata"
		pi   = "X-AMS-Peer-Identity"
		sub  = "X-AMS-Subscribe-Streams"
		res  = "X-AMS-Resume"
	)
	cases := []struct {
		name   string
		h      []string
		reason string
	}{
		{"name with a space", []string{name, "bad name"}, "invalid_stream_name_header"},
		{"name with a leading dash", []string{name, "-a"}, "invalid_stream_name_header"},
		{"name with a slash", []string{name, "a/b"}, "invalid_stream_name_header"},
		{"name of 64 chars", []string{name, strings.Repeat("a", 64)}, "invalid_stream_name_header"},
		{"name with a star", []string{name, "a*"}, "invalid_stream_name_header"},
		{"metadata not base64", []string{meta, "!!not base64!!"}, "invalid_stream_metadata_header"},
		{"metadata not JSON", []string{meta, b64("not json")}, "invalid_stream_metadata_header"},
		{"metadata an array", []string{meta, b64(`[1,2]`)}, "invalid_stream_metadata_header"},
		{"metadata a string", []string{meta, b64(`"s"`)}, "invalid_stream_metadata_header"},
		{"metadata null", []string{meta, b64(`null`)}, "invalid_stream_metadata_header"},
		{"metadata a number", []string{meta, b64(`1`)}, "invalid_stream_metadata_header"},
		{"metadata truncated JSON", []string{meta, b64(`{"a":`)}, "invalid_stream_metadata_header"},
		{"metadata two objects", []string{meta, b64(`{}{}`)}, "invalid_stream_metadata_header"},
		{"metadata not UTF-8", []string{meta, b64("{\"a\":\"\xff\"}")}, "invalid_stream_metadata_header"},
		{"metadata over 16 KiB", []string{meta, b64(big)}, "invalid_stream_metadata_header"},
		{"peer identity not base64", []string{pi, "!!"}, "invalid_peer_identity_header"},
		{"peer identity not JSON", []string{pi, b64("agent")}, "invalid_peer_identity_header"},
		{"peer identity an array", []string{pi, b64(`[]`)}, "invalid_peer_identity_header"},
		{"peer identity without kind", []string{pi, b64(`{"model":"m"}`)}, "invalid_peer_identity_header"},
		{"peer identity with another kind", []string{pi, b64(`{"kind":"robot"}`)}, "invalid_peer_identity_header"},
		{"peer identity kind not a string", []string{pi, b64(`{"kind":1}`)}, "invalid_peer_identity_header"},
		{"peer identity model not a string", []string{pi, b64(`{"kind":"agent","model":1}`)}, "invalid_peer_identity_header"},
		{"peer identity model of 129 chars", []string{pi, b64(`{"kind":"agent","model":"` + strings.Repeat("é", 129) + `"}`)}, "invalid_peer_identity_header"},
		{"peer identity client of 129 chars", []string{pi, b64(`{"kind":"human","client":"` + strings.Repeat("c", 129) + `"}`)}, "invalid_peer_identity_header"},
		{"subscribe with a bad name", []string{sub, "ok, bad name"}, "invalid_subscribe_streams_header"},
		{"subscribe with an empty item", []string{sub, "a,,b"}, "invalid_subscribe_streams_header"},
		{"subscribe with 101 items", []string{sub, strings.Join(many, ",")}, "invalid_subscribe_streams_header"},
		{"resume garbage", []string{res, "garbage"}, "invalid_resume_header"},
		{"resume with a bad id", []string{res, "str_XYZ:1"}, "invalid_resume_header"},
		{"resume without seq", []string{res, sid + ":"}, "invalid_resume_header"},
		{"resume without colon", []string{res, sid}, "invalid_resume_header"},
		{"resume with a negative seq", []string{res, sid + ":-1"}, "invalid_resume_header"},
		{"resume with a non-digit seq", []string{res, sid + ":1a"}, "invalid_resume_header"},
		{"resume with a seq of 2^53", []string{res, sid + ":9007199254740992"}, "invalid_resume_header"},
		{"resume with a duplicate", []string{res, sid + ":1," + sid + ":2"}, "invalid_resume_header"},
		{"resume with a semicolon", []string{res, sid + ":1;" + sid2 + ":2"}, "invalid_resume_header"},
		{"resume with 101 positions", []string{res, strings.Join(manyPos, ",")}, "invalid_resume_header"},
		{"resume with * and a position", []string{res, "*," + sid + ":1"}, "invalid_resume_header"},
		// First failing check wins: 5, then 6, then 7 (identity, filter,
		// cursor).
		{"name before metadata", []string{name, "bad name", meta, "!!"}, "invalid_stream_name_header"},
		{"metadata before identity", []string{meta, b64("[]"), pi, "!!"}, "invalid_stream_metadata_header"},
		{"identity before subscribe", []string{pi, "!!", sub, "bad name", res, "x"}, "invalid_peer_identity_header"},
		{"subscribe before resume", []string{sub, "bad name", res, "x"}, "invalid_subscribe_streams_header"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			refused(t, u, dialOpts{credential: cred, header: hdr(tc.h...)}, codeBad, tc.reason)
		})
	}

	// Good values, each on its own stream.
	exact := `{"k":"` + strings.Repeat("x", 16<<10-8) + `"}` // exactly 16 KiB
	goods := []struct {
		name  string
		h     []string
		check func(t *testing.T, joined msg)
	}{
		{"empty name is the default", []string{name, ""}, func(t *testing.T, j msg) {
			if !defaultRe.MatchString(j.m["stream_name"].(string)) {
				t.Errorf("stream_name %v, want a default name", j.m["stream_name"])
			}
		}},
		{"name of 63 chars with dots", []string{name, "A" + strings.Repeat("._-9", 15) + "zz"}, nil},
		{"metadata of exactly 16 KiB", []string{name, "big", meta, b64(exact)}, func(t *testing.T, j msg) {
			if got := member(t, j.raw, "metadata"); got != exact {
				t.Errorf("metadata of %d bytes, want the %d sent", len(got), len(exact))
			}
		}},
		{"metadata URL-safe without padding", []string{name, "urlsafe", meta, strings.TrimRight(base64.URLEncoding.EncodeToString([]byte(`{"q":"???>>>"}`)), "=")}, func(t *testing.T, j msg) {
			if got := member(t, j.raw, "metadata"); got != `{"q":"???>>>"}` {
				t.Errorf("metadata %s", got)
			}
		}},
		{"metadata standard without padding", []string{name, "nopad", meta, strings.TrimRight(b64(`{"a":1}`), "=")}, func(t *testing.T, j msg) {
			if got := member(t, j.raw, "metadata"); got != `{"a":1}` {
				t.Errorf("metadata %s", got)
			}
		}},
		{"peer identity of 128 chars", []string{name, "pi", pi, b64(`{"kind":"human","model":"` + strings.Repeat("é", 128) + `","client":"c"}`)}, func(t *testing.T, j msg) {
			if got := member(t, j.raw, "peer_identity"); got != `{"kind":"human","model":"`+strings.Repeat("é", 128)+`","client":"c"}` {
				t.Errorf("peer_identity %s", got)
			}
		}},
		{"subscribe with 100 items", []string{name, "sub", sub, strings.Join(many[:100], " , ")}, func(t *testing.T, j msg) {
			if got := j.m["subscription"].([]any); len(got) != 100 {
				t.Errorf("subscription has %d items, want 100", len(got))
			}
		}},
		{"resume with spaces", []string{name, "res", res, sid + ":0 ,\t" + sid2 + ":7"}, nil},
		{"resume *", []string{name, "star", res, "*"}, nil},
	}
	for _, tc := range goods {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := dialURL(t, u, dialOpts{credential: cred, header: hdr(tc.h...)})
			j := c.expectMsg("joined")
			if tc.check != nil {
				tc.check(t, j)
			}
		})
	}
}

// C26: a name live under another account closes 4004
// stream_name_owner_conflict and the existing stream carries on; once it
// left, the other account may use the name.
func TestC26OwnerConflict(t *testing.T) {
	t.Parallel()
	sys := gwtest.Start(t, gwtest.Options{Gateways: 2})
	accA, credA := account(t, sys, "alice")
	accB, credB := account(t, sys, "bob")
	r := newRoom(t, sys, credA, "alice", "room")

	a, ja := r.join(t, 0, dialOpts{credential: credA, streamName: "shared"})
	b, _ := r.join(t, 1, dialOpts{credential: credB, streamName: "bob"})
	a.expect("stream_joined")
	a.token("1")
	b.wantToken("shared", "1", 1)

	for gw := 0; gw < 2; gw++ {
		refused(t, connectURL(r.linkAt(gw)), dialOpts{credential: credB, streamName: "shared"}, codeConflict, "stream_name_owner_conflict")
		// Headers are checked before ownership.
		refused(t, connectURL(r.linkAt(gw)), dialOpts{credential: credB, streamName: "shared", header: hdr("X-AMS-Resume", "x")}, codeBad, "invalid_resume_header")
	}
	// The existing stream is untouched: same writer, seq goes on, nobody
	// saw it leave or join.
	a.token("2")
	b.wantToken("shared", "2", 2)
	b.token("x")
	m := a.nextMsg(wait)
	if m.m["type"] != "token" || m.m["data"] != "x" {
		t.Fatalf("a got %s, want b's token (no membership frame from the refused connects)", m.raw)
	}

	// After a leaves, the name is free for b's account, with another id.
	a.close()
	if m := b.expect("stream_left"); m["stream_name"] != "shared" || m["owner_account_id"] != accA {
		t.Fatalf("stream_left %v", m)
	}
	b2, jb2 := r.join(t, 1, dialOpts{credential: credB, streamName: "shared"})
	if jb2["stream_id"] == ja["stream_id"] || jb2["account_id"] != accB {
		t.Errorf("bob's shared stream %v (account %v), alice's was %v", jb2["stream_id"], jb2["account_id"], ja["stream_id"])
	}
	b2.close()
}

// C27: an account's 11th live stream in a conversation closes 4003
// stream_limit_exceeded and the 101st stream of a conversation 4003
// conversation_full; a resume does not count, the account check comes
// first, observers count toward neither, and caps are of live streams.
func TestC27Caps(t *testing.T) {
	t.Parallel()
	sys := gwtest.Start(t, gwtest.Options{Gateways: 2})
	creds := make([]string, 11)
	for i := range creds {
		_, creds[i] = account(t, sys, fmt.Sprintf("acct%d", i))
	}
	r := newRoom(t, sys, creds[0], "acct0", "room")
	// A watcher (an observer) on each gateway shows when both gateways
	// know every stream: caps count the streams a gateway knows of.
	watchers := []*client{nil, nil}
	for gw := range watchers {
		watchers[gw], _ = r.join(t, gw, dialOpts{observe: true})
	}

	var conns [][]*client
	open := func(acct, n int) *client {
		t.Helper()
		gw := n % 2
		c, _ := r.join(t, gw, dialOpts{credential: creds[acct], streamName: fmt.Sprintf("a%d-s%d", acct, n)})
		for _, w := range watchers {
			w.expect("stream_joined")
		}
		return c
	}
	conns = append(conns, nil)
	for n := 0; n < 10; n++ {
		conns[0] = append(conns[0], open(0, n))
	}
	for gw := 0; gw < 2; gw++ {
		refused(t, connectURL(r.linkAt(gw)), dialOpts{credential: creds[0], streamName: "eleventh"}, codeCap, "stream_limit_exceeded")
	}
	// Another account is not limited by it.
	other := open(1, 0)
	// A resume of a live stream does not count.
	again, j := r.join(t, 0, dialOpts{credential: creds[0], streamName: "a0-s0"})
	if j["resumed"] != true {
		t.Errorf("resume at the cap: joined %v, want resumed", j)
	}
	conns[0][0].wantCloseAfter(codeLink, "stream_displaced")
	conns[0][0] = again
	// Live streams count: after one leaves, another may join.
	conns[0][9].close()
	for _, w := range watchers {
		w.until("stream_left", wait)
	}
	conns[0][9] = open(0, 10)

	// Fill the conversation to 100 streams.
	conns = append(conns, []*client{other})
	for n := 1; n < 10; n++ {
		conns[1] = append(conns[1], open(1, n))
	}
	for acct := 2; acct < 10; acct++ {
		conns = append(conns, nil)
		for n := 0; n < 10; n++ {
			conns[acct] = append(conns[acct], open(acct, n))
		}
	}
	for gw := 0; gw < 2; gw++ {
		refused(t, connectURL(r.linkAt(gw)), dialOpts{credential: creds[10], streamName: "one-too-many"}, codeCap, "conversation_full")
		// Check 9 before check 10.
		refused(t, connectURL(r.linkAt(gw)), dialOpts{credential: creds[0], streamName: "eleventh"}, codeCap, "stream_limit_exceeded")
		// Check 8 before check 10.
		refused(t, connectURL(r.linkAt(gw)), dialOpts{credential: creds[10], streamName: "a0-s1"}, codeConflict, "stream_name_owner_conflict")
	}
	// Observers do not count (C88), with or without a credential.
	obs, jo := r.join(t, 0, dialOpts{observe: true, credential: creds[0]})
	if len(peersOf(t, jo)) != 100 {
		t.Errorf("observer of a full conversation sees %d peers, want 100", len(peersOf(t, jo)))
	}
	obs.close()
	_, _ = r.join(t, 1, dialOpts{observe: true})
	// A full conversation still resumes.
	_, j = r.join(t, 1, dialOpts{credential: creds[5], streamName: "a5-s3"})
	if j["resumed"] != true {
		t.Errorf("resume in a full conversation: joined %v", j)
	}
	conns[5][3].wantCloseAfter(codeLink, "stream_displaced")
}
