package streame2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/amsrouter/ams/services/gateway/internal/gwtest"
	"github.com/amsrouter/ams/services/internal/ids"
)

// eventsUntilJoined reads frames until the stream_joined of stream name
// and returns the events (token, stream_metadata) before it as
// "stream_name:data" (or "stream_name:meta"), skipping other membership
// frames. It is the absence proof of these tests: a stream that joins
// after every event was seen on the reader's gateway is announced after
// any event the reader could get.
func eventsUntilJoined(t testing.TB, c *client, name string) []string {
	t.Helper()
	var got []string
	for {
		m := c.nextMsg(wait)
		switch m.m["type"] {
		case "stream_joined":
			if m.m["stream_name"] == name {
				return got
			}
		case "stream_left":
		case "token":
			got = append(got, fmt.Sprintf("%s:%s", m.m["stream_name"], m.m["data"]))
		case "stream_metadata":
			got = append(got, fmt.Sprintf("%s:meta", m.m["stream_name"]))
		default:
			t.Fatalf("unexpected frame %s", m.raw)
		}
	}
}

// wantEvents compares events, in order per stream; streams may
// interleave.
func wantEvents(t testing.TB, who string, got []string, want ...string) {
	t.Helper()
	per := func(evs []string) map[string][]string {
		m := map[string][]string{}
		for _, e := range evs {
			s, _, _ := strings.Cut(e, ":")
			m[s] = append(m[s], e)
		}
		return m
	}
	g, w := per(got), per(want)
	if len(got) != len(want) || fmt.Sprint(g) != fmt.Sprint(w) {
		t.Errorf("%s got events %v, want %v", who, got, want)
	}
}

// settle waits until the sentinels (unfiltered readers, one per gateway)
// have every event in want, so every gateway has delivered them.
func settle(t testing.TB, sentinels []*client, want ...string) {
	t.Helper()
	for _, s := range sentinels {
		var got []string
		for len(got) < len(want) {
			m := s.nextMsg(wait)
			switch m.m["type"] {
			case "token":
				got = append(got, fmt.Sprintf("%s:%s", m.m["stream_name"], m.m["data"]))
			case "stream_metadata":
				got = append(got, fmt.Sprintf("%s:meta", m.m["stream_name"]))
			}
		}
		wantEvents(t, "sentinel", got, want...)
	}
}

// C59, C60: with X-AMS-Subscribe-Streams only the matched streams' events
// arrive (by id or by name, later joiners included, unknown items kept);
// an empty filter reads nothing; membership frames and peers are not
// filtered; joined carries subscription and subscribed_streams.
func TestC59C60SubscribeHeader(t *testing.T) {
	t.Parallel()
	sys := gwtest.Start(t, gwtest.Options{Gateways: 2})
	_, credA := account(t, sys, "alice")
	_, credB := account(t, sys, "bob")
	_, credC := account(t, sys, "carol")
	accD, credD := account(t, sys, "dave")
	r := newRoom(t, sys, credA, "alice", "room")
	futureID := ids.NewDeriver(sys.DerivationPepper).StreamID(r.convID, accD, "future")

	a, ja := r.join(t, 0, dialOpts{credential: credA, streamName: "w"})
	b, jb := r.join(t, 1, dialOpts{credential: credB, streamName: "x"})
	idA, idB := ja["stream_id"].(string), jb["stream_id"].(string)
	u0, _ := r.join(t, 0, dialOpts{credential: credB, streamName: "u0"})
	u1, _ := r.join(t, 1, dialOpts{credential: credB, streamName: "u1"})
	sentinels := []*client{u0, u1}

	type reader struct {
		name   string
		gw     int
		o      dialOpts
		sub    string // joined.subscription
		subbed string // joined.subscribed_streams
		want   []string
		c      *client
	}
	readers := []*reader{
		{name: "by-id", gw: 0, o: dialOpts{subscribe: ptr(idB)}, sub: `["` + idB + `"]`, subbed: `["` + idB + `"]`,
			want: []string{"x:1", "x:2"}},
		{name: "by-name", gw: 1, o: dialOpts{subscribe: ptr(" w ,late,w")}, sub: `["w","late"]`, subbed: `["` + idA + `"]`,
			want: []string{"w:1", "w:meta", "w:2", "late:1"}},
		{name: "by-query", gw: 0, o: dialOpts{query: "&subscribe=" + q("x,"+futureID)}, sub: `["x","` + futureID + `"]`, subbed: `["` + idB + `"]`,
			want: []string{"x:1", "x:2", "future:1"}},
		{name: "future-id", gw: 1, o: dialOpts{subscribe: ptr(futureID)}, sub: `["` + futureID + `"]`, subbed: `[]`,
			want: []string{"future:1"}},
		{name: "empty", gw: 0, o: dialOpts{subscribe: ptr("")}, sub: `[]`, subbed: `[]`},
		{name: "empty-query", gw: 1, o: dialOpts{query: "&subscribe="}, sub: `[]`, subbed: `[]`},
		{name: "blank", gw: 1, o: dialOpts{subscribe: ptr("  ")}, sub: `[]`, subbed: `[]`},
		{name: "own-name", gw: 0, o: dialOpts{subscribe: ptr("own-name,x")}, sub: `["own-name","x"]`, subbed: `["` + idB + `"]`,
			want: []string{"x:1", "x:2"}},
		{name: "own-self", gw: 1, o: dialOpts{subscribe: ptr("own-self"), selfSubscribe: true}, sub: `["own-self"]`, want: []string{"own-self:1"}},
	}
	for _, rd := range readers {
		rd.o.credential, rd.o.streamName = credC, rd.name
		rd.c = dial(t, r.linkAt(rd.gw), rd.o)
		j := rd.c.expectMsg("joined")
		if got := member(t, j.raw, "subscription"); got != rd.sub {
			t.Errorf("%s: subscription %s, want %s", rd.name, got, rd.sub)
		}
		if rd.subbed == "" {
			rd.subbed = `["` + j.m["stream_id"].(string) + `"]` // own-self reads itself
		}
		if got := member(t, j.raw, "subscribed_streams"); got != rd.subbed {
			t.Errorf("%s: subscribed_streams %s, want %s", rd.name, got, rd.subbed)
		}
		// Peers are not filtered.
		if got := peerNames(t, j.m); len(got) < 4 || !slices.Equal(got[:4], []string{"w", "x", "u0", "u1"}) {
			t.Errorf("%s: peers %v", rd.name, got)
		}
	}
	// The unfiltered sentinels have subscription null and no
	// subscribed_streams (C60).
	_, ju := r.join(t, 0, dialOpts{credential: credC, streamName: "plain"})
	if ju["subscription"] != nil {
		t.Errorf("unfiltered joined subscription %v", ju["subscription"])
	}
	if _, ok := ju["subscribed_streams"]; ok {
		t.Errorf("unfiltered joined has subscribed_streams")
	}

	// Round 1: the streams live at connect time.
	a.token("1")
	a.send(map[string]any{"type": "set_metadata", "metadata": map[string]any{}})
	b.token("1")
	for _, rd := range readers {
		if rd.name == "own-self" {
			rd.c.token("1")
		}
	}
	settle(t, sentinels, "w:1", "w:meta", "x:1", "own-self:1")
	// Later joiners: matched by name and by id.
	late, _ := r.join(t, 0, dialOpts{credential: credD, streamName: "late"})
	future, jf := r.join(t, 1, dialOpts{credential: credD, streamName: "future"})
	if jf["stream_id"] != futureID {
		t.Fatalf("future stream id %v, want %s", jf["stream_id"], futureID)
	}
	other, _ := r.join(t, 0, dialOpts{credential: credD, streamName: "other"})
	late.token("1")
	future.token("1")
	other.token("1")
	a.token("2")
	b.token("2")
	settle(t, sentinels, "late:1", "future:1", "other:1", "w:2", "x:2")
	r.join(t, 1, dialOpts{credential: credD, streamName: "end"})
	for _, rd := range readers {
		wantEvents(t, rd.name, eventsUntilJoined(t, rd.c, "end"), rd.want...)
	}
}

// C61: a subscribe frame replaces the filter and is answered with
// subscribed; afterwards no event of a removed stream arrives and added
// streams deliver from their next seq.
func TestC61SubscribeFrame(t *testing.T) {
	t.Parallel()
	sys := gwtest.Start(t, gwtest.Options{Gateways: 2})
	_, credA := account(t, sys, "alice")
	_, credB := account(t, sys, "bob")
	_, credC := account(t, sys, "carol")
	r := newRoom(t, sys, credA, "alice", "room")
	a, ja := r.join(t, 0, dialOpts{credential: credA, streamName: "w"})
	b, jb := r.join(t, 1, dialOpts{credential: credB, streamName: "x"})
	idA, idB := ja["stream_id"].(string), jb["stream_id"].(string)
	u0, _ := r.join(t, 0, dialOpts{credential: credC, streamName: "u0"})
	u1, _ := r.join(t, 1, dialOpts{credential: credC, streamName: "u1"})
	sentinels := []*client{u0, u1}
	rd, jr := r.join(t, 1, dialOpts{credential: credC, streamName: "reader", selfSubscribe: true})
	idR := jr["stream_id"].(string)
	n := 0
	end := func() string {
		n++
		name := fmt.Sprintf("end%d", n)
		r.join(t, n%2, dialOpts{credential: credB, streamName: name})
		return name
	}
	subscribed := func(streams any, sub, subbed string) {
		t.Helper()
		rd.send(map[string]any{"type": "subscribe", "streams": streams})
		for {
			m := rd.nextMsg(wait)
			if m.m["type"] == "stream_joined" || m.m["type"] == "stream_left" {
				continue
			}
			if m.m["type"] != "subscribed" {
				t.Fatalf("got %s, want subscribed", m.raw)
			}
			wantKeys(t, m.raw, "type", "subscription", "subscribed_streams")
			if got := member(t, m.raw, "subscription"); got != sub {
				t.Errorf("subscription %s, want %s", got, sub)
			}
			if got := member(t, m.raw, "subscribed_streams"); got != subbed {
				t.Errorf("subscribed_streams %s, want %s", got, subbed)
			}
			return
		}
	}

	// Everything, then only x (by name, with a duplicate and an unknown).
	a.token("1")
	b.token("1")
	settle(t, sentinels, "w:1", "x:1")
	wantEvents(t, "reader", eventsUntilJoined(t, rd, end()), "w:1", "x:1")
	subscribed([]string{"x", "zz", "x"}, `["x","zz"]`, `["`+idB+`"]`)
	a.token("2")
	b.token("2")
	rd.token("own")
	settle(t, sentinels, "w:2", "x:2", "reader:own")
	wantEvents(t, "reader", eventsUntilJoined(t, rd, end()), "x:2")

	// Add w by id: from its next seq, nothing of what came before.
	a.token("3")
	settle(t, sentinels, "w:3")
	subscribed([]string{idA, "x"}, `["`+idA+`","x"]`, `["`+idA+`","`+idB+`"]`)
	a.token("4")
	b.token("3")
	settle(t, sentinels, "w:4", "x:3")
	wantEvents(t, "reader", eventsUntilJoined(t, rd, end()), "w:4", "x:3")

	// An unknown name that joins later is read.
	subscribed([]string{"zz"}, `["zz"]`, `[]`)
	zz, _ := r.join(t, 0, dialOpts{credential: credA, streamName: "zz"})
	zz.token("1")
	a.token("5")
	settle(t, sentinels, "zz:1", "w:5")
	wantEvents(t, "reader", eventsUntilJoined(t, rd, end()), "zz:1")

	// Empty: membership only. Own stream with self_subscribe by id.
	subscribed([]string{}, `[]`, `[]`)
	a.token("6")
	zz.token("2")
	rd.token("own2")
	settle(t, sentinels, "w:6", "zz:2", "reader:own2")
	wantEvents(t, "reader", eventsUntilJoined(t, rd, end()))
	subscribed([]string{idR}, `["`+idR+`"]`, `["`+idR+`"]`)
	rd.token("own3")
	a.token("7")
	settle(t, sentinels, "reader:own3", "w:7")
	wantEvents(t, "reader", eventsUntilJoined(t, rd, end()), "reader:own3")

	// null: everything again, each stream from its next seq.
	rd.send(map[string]any{"type": "subscribe", "streams": nil})
	for {
		m := rd.nextMsg(wait)
		if m.m["type"] == "subscribed" {
			if m.m["subscription"] != nil {
				t.Errorf("subscribed %s, want subscription null", m.raw)
			}
			got := m.m["subscribed_streams"].([]any)
			if len(got) < 6 || !slices.Contains(got, any(idA)) || !slices.Contains(got, any(idR)) {
				t.Errorf("subscribed_streams %v, want every live stream", got)
			}
			break
		}
		if m.m["type"] != "stream_joined" && m.m["type"] != "stream_left" {
			t.Fatalf("got %s, want subscribed", m.raw)
		}
	}
	a.token("8")
	b.token("4")
	settle(t, sentinels, "w:8", "x:4")
	wantEvents(t, "reader", eventsUntilJoined(t, rd, end()), "w:8", "x:4")

	// A bad subscribe frame closes the connection.
	rd.sendRaw([]byte(`{"type":"subscribe","streams":["ok","not ok"]}`))
	rd.wantCloseAfter(codeBad, "invalid_subscription")
}
