package streame2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/amsrouter/ams/services/gateway/gatewayd"
	"github.com/amsrouter/ams/services/gateway/internal/gwtest"
)

// replaysCompleted is the sample of /metrics that counts the replays a
// gateway finished and handed over to live delivery.
const replaysCompleted = `ams_resumes_finished_total{result="completed"}`

// resume dials the room on gateway gw with a cursor in o, waits for its
// joined, then until the gateway reports the replay finished, and returns
// the client, its joined frame and every frame queued for it by then: the
// replay was queued before the pong of a ping sent after it finished.
// Only one replay may run on gw at a time.
func (r *room) resume(t testing.TB, gw int, o dialOpts) (*client, map[string]any, []msg) {
	t.Helper()
	before := r.sys.Metric(t, gw, replaysCompleted)
	c, j := r.join(t, gw, o)
	deadline := time.Now().Add(wait)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for r.sys.Metric(t, gw, replaysCompleted) < before+1 {
		if time.Now().After(deadline) {
			t.Fatalf("the replay did not finish within %s", wait)
		}
		select {
		case <-c.done:
			t.Fatalf("connection ended during the replay: %v", c.closeErr)
		case <-tick.C:
		}
	}
	return c, j, c.sync()
}

// perStream renders a connection's frames by stream name, in arrival
// order: the seq of each token and stream_metadata, "left" for a
// stream_left, "gap:<requested>-<first available>" for a replay_gap.
// Other frames fail the test.
func perStream(t testing.TB, frames []msg) map[string][]string {
	t.Helper()
	got := map[string][]string{}
	for _, f := range frames {
		name, _ := f.m["stream_name"].(string)
		switch f.m["type"] {
		case "token", "stream_metadata":
			got[name] = append(got[name], member(t, f.raw, "seq"))
		case "stream_left":
			got[name] = append(got[name], "left")
		case "replay_gap":
			got[name] = append(got[name], fmt.Sprintf("gap:%s-%s", member(t, f.raw, "requested_seq"), member(t, f.raw, "first_available_seq")))
		default:
			t.Errorf("unexpected frame %.300s", f.raw)
		}
	}
	return got
}

// wantPerStream compares perStream renderings; streams may interleave.
func wantPerStream(t testing.TB, who string, got, want map[string][]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: replayed %v, want %v", who, got, want)
		return
	}
	for name, w := range want {
		if !slices.Equal(got[name], w) {
			t.Errorf("%s: replayed %v, want %v", who, got, want)
			return
		}
	}
}

// seqs is "1".."n" as perStream renders them.
func seqs(from, to int) []string {
	var s []string
	for i := from; i <= to; i++ {
		s = append(s, strconv.Itoa(i))
	}
	return s
}

// record reads frames of c until it has n events (token, stream_metadata),
// skipping membership frames, and returns each event's bytes by stream
// name and seq; each stream's events must come in seq order from 1.
func record(t testing.TB, c *client, n int) map[string]map[string][]byte {
	t.Helper()
	got := map[string]map[string][]byte{}
	for seen := 0; seen < n; {
		m := c.nextMsg(wait)
		switch m.m["type"] {
		case "stream_joined", "stream_left":
			continue
		case "token", "stream_metadata":
		default:
			t.Fatalf("unexpected frame %.300s", m.raw)
		}
		name := m.m["stream_name"].(string)
		if got[name] == nil {
			got[name] = map[string][]byte{}
		}
		seq := member(t, m.raw, "seq")
		if want := strconv.Itoa(len(got[name]) + 1); seq != want {
			t.Fatalf("live event %.300s: seq %s, want %s", m.raw, seq, want)
		}
		got[name][seq] = m.raw
		seen++
	}
	return got
}

// sameAsLive checks every replayed event equals the live original byte
// for byte.
func sameAsLive(t testing.TB, who string, frames []msg, orig map[string]map[string][]byte) {
	t.Helper()
	for _, f := range frames {
		if f.m["type"] != "token" && f.m["type"] != "stream_metadata" {
			continue
		}
		name, _ := f.m["stream_name"].(string)
		if o := orig[name][member(t, f.raw, "seq")]; string(o) != string(f.raw) {
			t.Errorf("%s: replayed %s\nwhile the live frame was %s", who, f.raw, o)
		}
	}
}

// firstEvents reads c's next events, skipping membership frames, until
// it has one of each stream in want, and checks each is a token with the
// wanted seq: a second event of a stream first, or any other event,
// fails.
func firstEvents(t testing.TB, who string, c *client, want map[string]string) {
	t.Helper()
	got := map[string]string{}
	for len(got) < len(want) {
		m := c.nextMsg(wait)
		switch m.m["type"] {
		case "stream_joined", "stream_left":
			continue
		case "token":
		default:
			t.Fatalf("%s: got %s, want live tokens", who, m.raw)
		}
		name := m.m["stream_name"].(string)
		if _, dup := got[name]; dup {
			t.Fatalf("%s: a second event of %s before every stream's first: %s", who, name, m.raw)
		}
		got[name] = member(t, m.raw, "seq")
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%s: first events by stream %v, want %v", who, got, want)
	}
}

// C52: every token and stream_metadata carries an integer seq, 1, 2, 3,
// … per stream over both kinds, however it was emitted (frames or HTTP)
// and however it is read (live over WebSocket, SSE, observer, own stream
// with self_subscribe, replay); every joined carries the deployment's
// retention bounds, which are the ones replay applies.
func TestC52SeqAndRetention(t *testing.T) {
	t.Parallel()
	const maxEvents = 4
	sys := gwtest.Start(t, gwtest.Options{Gateways: 2, Gateway: func(_ int, cfg *gatewayd.Config) {
		cfg.Data.MaxAge = 7 * time.Minute
		cfg.Data.MaxEvents = maxEvents
	}})
	const retention = `{"max_age_ms":420000,"max_events":4}`
	_, credA := account(t, sys, "alice")
	_, credB := account(t, sys, "bob")
	_, credC := account(t, sys, "carol")
	r := newRoom(t, sys, credA, "alice", "room")

	a := dial(t, r.linkAt(0), dialOpts{credential: credA, streamName: "a", selfSubscribe: true})
	ja := a.expectMsg("joined")
	rd := dial(t, r.linkAt(1), dialOpts{credential: credB, streamName: "r"})
	jr := rd.expectMsg("joined")
	obs := dial(t, r.linkAt(1), dialOpts{observe: true})
	jo := obs.expectMsg("joined")
	s, resp := dialSSE(t, r.linkAt(0), map[string]string{"Authorization": "Bearer " + credC, "X-AMS-Stream-Name": "s"})
	if s == nil {
		t.Fatalf("SSE connect: %d", resp.StatusCode)
	}
	js := s.nextEvent(wait)
	if js.event != "joined" {
		t.Fatalf("SSE first event %+v, want joined", js)
	}
	for who, raw := range map[string][]byte{"writer": ja.raw, "reader": jr.raw, "observer": jo.raw, "SSE reader": []byte(js.data)} {
		if got := member(t, raw, "retention"); got != retention {
			t.Errorf("%s: joined.retention %s, want %s", who, got, retention)
		}
	}

	// Six events of a: frames and HTTP, tokens and metadata.
	kinds := []string{"token", "stream_metadata", "token", "token", "stream_metadata", "token"}
	check := func(who string, raw []byte, i int) {
		t.Helper()
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("%s: %v", who, err)
		}
		if m["type"] != kinds[i] {
			t.Errorf("%s: event %d is %s, want %s", who, i+1, raw, kinds[i])
		}
		keys := tokenKeys
		if kinds[i] == "stream_metadata" {
			keys = metaKeys
		}
		wantKeys(t, raw, keys...)
		if got := member(t, raw, "seq"); got != strconv.Itoa(i+1) {
			t.Errorf("%s: event %s has seq %s, want %d", who, raw, got, i+1)
		}
	}
	live := map[int][]byte{}
	readUpTo := func(n int) { // the reader's events up to seq n
		t.Helper()
		for i := len(live); i < n; i++ {
			m := rd.nextOf("a")
			check("reader", m.raw, i)
			live[i+1] = m.raw
		}
	}
	a.token("1")
	a.send(map[string]any{"type": "set_metadata", "metadata": map[string]any{"m": 2}})
	readUpTo(2) // the frames took effect before the HTTP calls
	if e := emitHTTP(t, r.linkAt(1), credA, "a", `{"tokens":["3","4"]}`, nil); e.Status != http.StatusAccepted {
		t.Fatalf("HTTP emit: %d %s", e.Status, e.Body)
	}
	if p := putMetadata(t, r.linkAt(0), credA, "a", `{"m":5}`); p.Status != http.StatusOK {
		t.Fatalf("HTTP set metadata: %d %s", p.Status, p.Body)
	}
	a.token("6")
	readUpTo(len(kinds))
	for who, c := range map[string]*client{"writer (self_subscribe)": a, "observer": obs} {
		for i := range kinds {
			check(who, c.nextOf("a").raw, i)
		}
	}
	for i := 0; i < len(kinds); {
		ev := s.nextEvent(wait)
		if ev.event == "stream_joined" || ev.event == "stream_left" {
			continue
		}
		if ev.event != kinds[i] {
			t.Fatalf("SSE event %+v, want %s", ev, kinds[i])
		}
		check("SSE reader", []byte(ev.data), i)
		i++
	}

	// Replay: joined.retention's max_events is the bound applied; the
	// retained events carry their seq and equal the live frames.
	rp := dial(t, r.linkAt(0), dialOpts{credential: credC, streamName: "late", resume: "*"})
	jp := rp.expectMsg("joined")
	if got := member(t, jp.raw, "retention"); got != retention {
		t.Errorf("replaying reader: joined.retention %s, want %s", got, retention)
	}
	var ret struct {
		MaxEvents int `json:"max_events"`
	}
	if err := json.Unmarshal([]byte(member(t, jp.raw, "retention")), &ret); err != nil || ret.MaxEvents != maxEvents {
		t.Fatalf("retention %s: %v", member(t, jp.raw, "retention"), err)
	}
	first := len(kinds) - ret.MaxEvents + 1
	gap := rp.nextOf("a")
	if gap.m["type"] != "replay_gap" || member(t, gap.raw, "requested_seq") != "1" || member(t, gap.raw, "first_available_seq") != strconv.Itoa(first) {
		t.Fatalf("got %s, want replay_gap from 1 to %d", gap.raw, first)
	}
	for i := first; i <= len(kinds); i++ {
		m := rp.nextOf("a")
		check("replaying reader", m.raw, i-1)
		if string(m.raw) != string(live[i]) {
			t.Errorf("replayed %s\nwhile the live frame was %s", m.raw, live[i])
		}
	}
	// And live after the replay, over both gateways.
	a.token("7")
	for who, c := range map[string]*client{"replaying reader": rp, "reader": rd} {
		if m := c.nextOf("a"); m.m["type"] != "token" || m.m["data"] != "7" || member(t, m.raw, "seq") != "7" {
			t.Errorf("%s: got %s, want token 7 with seq 7", who, m.raw)
		}
	}
}

// C54: a stream that is live and absent from the cursor, or every live
// stream with a `*` cursor, is replayed from seq 1: all retained events,
// byte-identical to the live ones, then live from the next seq; streams
// in the cursor continue after their position; unknown ids are ignored.
// Header and query forms, both gateways, and an SSE `*` Last-Event-ID.
func TestC54ReplayAbsentStreamsAndStar(t *testing.T) {
	t.Parallel()
	sys := gwtest.Start(t, gwtest.Options{Gateways: 2})
	_, credA := account(t, sys, "alice")
	_, credB := account(t, sys, "bob")
	_, credC := account(t, sys, "carol")
	r := newRoom(t, sys, credA, "alice", "room")
	s, _ := r.join(t, 1, dialOpts{credential: credB, streamName: "s"}) // sees everything live
	a, ja := r.join(t, 0, dialOpts{credential: credA, streamName: "a"})
	b, jb := r.join(t, 1, dialOpts{credential: credB, streamName: "b", metadata: `{"v":0}`})
	idA, idB := ja["stream_id"].(string), jb["stream_id"].(string)
	unknown := fmt.Sprintf("str_%026x", 0xC54)

	a.token("a1")
	a.send(map[string]any{"type": "set_metadata", "metadata": map[string]any{"v": 1}})
	a.token("a3")
	b.token("b1")
	b.token("b2")
	orig := record(t, s, 5)

	all := map[string][]string{"a": seqs(1, 3), "b": seqs(1, 2)}
	cases := []struct {
		name string
		gw   int
		o    dialOpts
		want map[string][]string
	}{
		{"star", 1, dialOpts{resume: "*"}, all},
		{"star by query", 0, dialOpts{query: "&resume=" + q(" * ")}, all},
		{"b absent", 0, dialOpts{resume: idA + ":2"}, map[string][]string{"a": {"3"}, "b": seqs(1, 2)}},
		{"a absent, an unknown id", 1, dialOpts{resume: idB + ":1 ,\t" + unknown + ":9"}, map[string][]string{"a": seqs(1, 3), "b": {"2"}}},
		{"both absent, an unknown id by query", 1, dialOpts{query: "&resume=" + q(unknown+":0")}, all},
		{"a at 0", 0, dialOpts{resume: idA + ":0"}, all},
		{"both caught up", 0, dialOpts{resume: idB + ":2," + idA + ":3"}, map[string][]string{}},
	}
	var readers []*client
	for i, tc := range cases {
		tc.o.credential, tc.o.streamName = credC, fmt.Sprintf("r%d", i)
		c, j, frames := r.resume(t, tc.gw, tc.o)
		if j["resumed"] != nil {
			t.Errorf("%s: joined %v, want no resumed", tc.name, j)
		}
		wantPerStream(t, tc.name, perStream(t, frames), tc.want)
		sameAsLive(t, tc.name, frames, orig)
		readers = append(readers, c)
	}
	sse, resp := dialSSE(t, r.linkAt(0), map[string]string{"Authorization": "Bearer " + credC, "X-AMS-Stream-Name": "sse", "Last-Event-ID": "*"})
	if sse == nil {
		t.Fatalf("SSE connect: %d", resp.StatusCode)
	}
	if j := sse.nextEvent(wait); j.event != "joined" {
		t.Fatalf("SSE first event %+v, want joined", j)
	}

	// Then live, each stream from its next seq: nothing twice, no gap.
	a.token("a4")
	b.token("b3")
	for i, c := range readers {
		firstEvents(t, cases[i].name, c, map[string]string{"a": "4", "b": "3"})
	}
	// Over SSE, each stream's events up to its live one are exactly the
	// retained ones then it.
	got := map[string][]string{}
	for len(got["a"]) < 4 || len(got["b"]) < 3 {
		ev := sse.nextEvent(wait)
		switch ev.event {
		case "token", "stream_metadata":
			name := ev.m["stream_name"].(string)
			got[name] = append(got[name], member(t, []byte(ev.data), "seq"))
			if o := orig[name][member(t, []byte(ev.data), "seq")]; o != nil && string(o) != ev.data {
				t.Errorf("SSE replayed %s\nwhile the live frame was %s", ev.data, o)
			}
			if len(got[name]) > 4 {
				t.Fatalf("SSE events %v, want a 1..4 and b 1..3", got)
			}
		case "stream_joined", "stream_left":
		default:
			t.Fatalf("SSE event %+v", ev)
		}
	}
	wantPerStream(t, "SSE *", got, map[string][]string{"a": seqs(1, 4), "b": seqs(1, 3)})
}

// C57: replay skips the reader's own stream unless it self-subscribes
// (fresh join or resume, cursor `*` or naming it), and streams its filter
// leaves out, live or no longer live; another stream of the same account
// is replayed like any peer. Without a cursor nothing is replayed: each
// stream's first event is the live one after its announced last_seq.
func TestC57ReplayExclusionAndFilter(t *testing.T) {
	t.Parallel()
	sys := gwtest.Start(t, gwtest.Options{Gateways: 2})
	_, credA := account(t, sys, "alice")
	_, credB := account(t, sys, "bob")
	_, credC := account(t, sys, "carol")
	r := newRoom(t, sys, credA, "alice", "room")
	s, _ := r.join(t, 1, dialOpts{credential: credB, streamName: "s"}) // on the readers' gateway
	a, ja := r.join(t, 0, dialOpts{credential: credA, streamName: "a"})
	b, jb := r.join(t, 1, dialOpts{credential: credB, streamName: "b"})
	own, jo := r.join(t, 1, dialOpts{credential: credC, streamName: "r"})
	g, jg := r.join(t, 0, dialOpts{credential: credA, streamName: "g"})
	idA, idB, idR, idG := ja["stream_id"].(string), jb["stream_id"].(string), jo["stream_id"].(string), jg["stream_id"].(string)

	a.token("a1")
	a.token("a2")
	b.token("b1")
	own.token("r1")
	own.token("r2")
	g.token("g1")
	orig := record(t, s, 6)
	// r and g leave; the readers' gateway has seen it.
	own.close()
	g.close()
	for gone := map[string]bool{}; len(gone) < 2; {
		m := s.nextMsg(wait)
		if m.m["type"] != "stream_left" {
			t.Fatalf("got %s, want the stream_left of r and g", m.raw)
		}
		gone[m.m["stream_name"].(string)] = true
	}

	cases := []struct {
		name string
		o    dialOpts
		want map[string][]string
	}{
		// The own stream r: rejoined, then resumed (displacing).
		{"own, *", dialOpts{streamName: "r", resume: "*"},
			map[string][]string{"a": seqs(1, 2), "b": {"1"}}},
		{"own with self_subscribe, *", dialOpts{streamName: "r", resume: "*", selfSubscribe: true},
			map[string][]string{"a": seqs(1, 2), "b": {"1"}, "r": seqs(1, 2)}},
		{"own in the cursor", dialOpts{streamName: "r", resume: idR + ":0," + idA + ":1"},
			map[string][]string{"a": {"2"}, "b": {"1"}}},
		{"own in the cursor with self_subscribe", dialOpts{streamName: "r", resume: idR + ":1", selfSubscribe: true},
			map[string][]string{"a": seqs(1, 2), "b": {"1"}, "r": {"2"}}},
		// Filters, with the left stream g in the cursor.
		{"filter by name, *", dialOpts{streamName: "f1", subscribe: ptr("a"), resume: "*"},
			map[string][]string{"a": seqs(1, 2)}},
		{"filter by id, left stream filtered out", dialOpts{streamName: "f2", subscribe: ptr(idB), resume: idG + ":0," + idA + ":0"},
			map[string][]string{"b": {"1"}}},
		{"filter by name, left stream filtered in", dialOpts{streamName: "f3", subscribe: ptr("g, b"), resume: idG + ":0"},
			map[string][]string{"b": {"1"}, "g": {"1", "left"}}},
		{"no filter, left stream", dialOpts{streamName: "f4", resume: idG + ":0"},
			map[string][]string{"a": seqs(1, 2), "b": {"1"}, "r": seqs(1, 2), "g": {"1", "left"}}},
		{"empty filter", dialOpts{streamName: "f5", subscribe: ptr(""), resume: idG + ":0," + idA + ":0"},
			map[string][]string{}},
	}
	var holder *client // the connection holding r
	for _, tc := range cases {
		tc.o.credential = credC
		c, j, frames := r.resume(t, 1, tc.o)
		if tc.o.streamName == "r" {
			if j["stream_id"] != idR || num(t, j, "last_seq") != 2 {
				t.Errorf("%s: joined %v, want stream %s at last_seq 2", tc.name, j, idR)
			}
			if holder != nil {
				holder.wantCloseAfter(codeLink, "stream_displaced")
			}
			holder = c
		}
		wantPerStream(t, tc.name, perStream(t, frames), tc.want)
		sameAsLive(t, tc.name, frames, orig)
	}

	// No cursor, no replay: the first event of each stream is its next
	// live one, for a peer of another account, one of the own account,
	// and the own stream with self_subscribe.
	n, jn := r.join(t, 1, dialOpts{credential: credC, streamName: "n"})
	for _, p := range peersOf(t, jn) {
		if want := map[string]int{"a": 2, "b": 1, "r": 2}[p["stream_name"].(string)]; num(t, p, "last_seq") != want {
			t.Errorf("peer %v, want last_seq %d", p, want)
		}
	}
	self, _ := r.join(t, 0, dialOpts{credential: credC, streamName: "r", selfSubscribe: true})
	holder.wantCloseAfter(codeLink, "stream_displaced")
	a.token("a3")
	b.token("b2")
	self.token("r3")
	firstEvents(t, "no cursor", n, map[string]string{"a": "3", "b": "2", "r": "3"})
	firstEvents(t, "own, no cursor", self, map[string]string{"a": "3", "b": "2", "r": "3"})
}

// C58: a malformed cursor closes a WebSocket 4400 invalid_resume_header
// right after the upgrade, header or query, and answers an SSE connect
// 400 invalid_resume_header, from X-AMS-Resume, resume or Last-Event-ID;
// the refused connections join nothing. Well-formed edge cases join.
func TestC58MalformedCursor(t *testing.T) {
	t.Parallel()
	sys := gwtest.Start(t, gwtest.Options{})
	_, credA := account(t, sys, "alice")
	_, credB := account(t, sys, "bob")
	r := newRoom(t, sys, credA, "alice", "room")
	p, jp := r.join(t, 0, dialOpts{credential: credA, streamName: "p"})
	sid := jp["stream_id"].(string)
	sid2 := fmt.Sprintf("str_%026x", 0xC58)

	bad := []string{
		"garbage",
		"**",
		"*,*",
		sid,
		sid + ":",
		":1",
		sid + ":x",
		sid + ":+1",
		sid + ":1.0",
		sid + ":-0",
		sid + ":9007199254740992",
		sid + ":1,",
		"," + sid + ":1",
		sid + ":1 " + sid2 + ":2",
		sid + ":1;" + sid2 + ":2",
		sid + ":1," + sid + ":1",
		strings.ToUpper(sid[:4]) + sid[4:] + ":1",
		"str_" + strings.ToUpper(sid[4:]) + ":1",
		"str_" + sid[5:] + ":1",
		sid + "0:1",
		"*," + sid + ":1",
		sid2 + ":1,*",
	}
	u := connectURL(r.link)
	for i, cur := range bad {
		name := fmt.Sprintf("x%d", i)
		for _, o := range []dialOpts{
			{credential: credB, streamName: name, resume: cur},
			{credential: credB, streamName: name, query: "&resume=" + q(cur)},
		} {
			c := dialURL(t, u+o.query, o)
			if c.resp.StatusCode != http.StatusSwitchingProtocols {
				t.Errorf("cursor %q: handshake %d, want 101", cur, c.resp.StatusCode)
			}
			c.wantClose(codeBad, "invalid_resume_header")
		}
		for _, tc := range []struct {
			how    string
			link   string
			header map[string]string
		}{
			{"X-AMS-Resume", r.link, map[string]string{"X-AMS-Resume": cur}},
			{"resume", r.link + "&resume=" + q(cur), nil},
			{"Last-Event-ID", r.link, map[string]string{"Last-Event-ID": cur}},
		} {
			h := map[string]string{"Authorization": "Bearer " + credB, "X-AMS-Stream-Name": name}
			for k, v := range tc.header {
				h[k] = v
			}
			s, resp := dialSSE(t, tc.link, h)
			if s != nil {
				t.Errorf("SSE with cursor %q in %s: connected, want 400", cur, tc.how)
				continue
			}
			var body map[string]any
			err := json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest || err != nil || body["error"] != "invalid_resume_header" {
				t.Errorf("SSE with cursor %q in %s: %d %v (%v), want 400 invalid_resume_header", cur, tc.how, resp.StatusCode, body, err)
			}
		}
	}

	// Well-formed edges are accepted.
	for i, cur := range []string{"*", " * ", sid + ":0", sid + ":9007199254740991", sid + ":1 ,\t" + sid2 + ":0", sid2 + ":000"} {
		c := dialURL(t, u, dialOpts{credential: credB, streamName: fmt.Sprintf("ok%d", i), resume: cur})
		c.expect("joined")
		c.close()
	}

	// None of the refused connects joined: p's membership frames up to
	// the stream_joined of a later stream are those of the accepted ones.
	r.join(t, 0, dialOpts{credential: credB, streamName: "after"})
	joined := map[string]bool{}
	for {
		m := p.nextMsg(wait)
		name, _ := m.m["stream_name"].(string)
		if m.m["type"] == "stream_joined" && name == "after" {
			break
		}
		if (m.m["type"] != "stream_joined" && m.m["type"] != "stream_left") || !strings.HasPrefix(name, "ok") {
			t.Fatalf("p got %s, want only membership frames of the accepted connects", m.raw)
		}
		if m.m["type"] == "stream_joined" {
			joined[name] = true
		}
	}
	if len(joined) != 6 {
		t.Errorf("p saw %v join, want ok0..ok5", joined)
	}
}
