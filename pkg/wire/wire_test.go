package wire_test

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/amsrouter/ams/pkg/wire"
)

const sid = "str_0123456789abcdef0123456789"

func TestDecodeMessage(t *testing.T) {
	t.Parallel()
	ts := time.Date(2026, 5, 1, 18, 0, 5, 123e6, time.UTC)
	for _, tc := range []struct {
		in   string
		want []wire.Event
	}{
		{`{"type":"token","stream_id":"` + sid + `","stream_name":"a","owner_account_id":"acc_1","ts":"2026-05-01T18:00:05.123Z","data":"x","seq":7,"future":1}`,
			[]wire.Event{wire.Token{StreamID: sid, StreamName: "a", OwnerAccountID: "acc_1", TS: ts, Data: "x", Seq: 7}}},
		{`[{"type":"pong"},{"type":"stream_left","stream_id":"` + sid + `","stream_name":"a","owner_account_id":"acc_1","peer_identity":{"kind":"human"},"last_seq":3}]`,
			[]wire.Event{wire.Pong{}, wire.StreamLeft{StreamID: sid, StreamName: "a", OwnerAccountID: "acc_1", PeerIdentity: &wire.PeerIdentity{Kind: "human"}, LastSeq: 3}}},
		{`{"type":"stream_joined","stream_id":"` + sid + `","stream_name":"a","owner_account_id":"acc_1","metadata":{"k": [1]},"last_seq":0}`,
			[]wire.Event{wire.StreamJoined{Stream: wire.Stream{StreamID: sid, StreamName: "a", OwnerAccountID: "acc_1", Metadata: json.RawMessage(`{"k": [1]}`)}}}},
		{`{"type":"subscribed","subscription":null,"subscribed_streams":[]}`,
			[]wire.Event{wire.Subscribed{SubscribedStreams: []string{}}}},
		{`{"type":"x_new","a":1}`, []wire.Event{wire.Unknown{Type: "x_new", Raw: json.RawMessage(`{"type":"x_new","a":1}`)}}},
	} {
		got, err := wire.DecodeMessage([]byte(tc.in))
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.in, diff)
		}
	}
	for _, bad := range []string{``, `[1]`, `{"type":1}`, `{"a":1}`, `{"type":"token","seq":"x"}`} {
		if _, err := wire.DecodeMessage([]byte(bad)); !errors.Is(err, wire.ErrMalformedFrame) {
			t.Errorf("%q: %v, want ErrMalformedFrame", bad, err)
		}
	}
}

func TestJoinedSubscription(t *testing.T) {
	t.Parallel()
	for in, want := range map[string][]string{`null`: nil, `[]`: {}, `["a"]`: {"a"}} {
		evs, err := wire.DecodeMessage([]byte(`{"type":"joined","subscription":` + in + `}`))
		if err != nil {
			t.Fatal(err)
		}
		got := evs[0].(wire.Joined).Subscription
		if (got == nil) != (want == nil) || !cmp.Equal(got, want) {
			t.Errorf("%s: %#v, want %#v", in, got, want)
		}
	}
}

func TestClientFrames(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ got, want string }{
		{string(wire.AppendTokenFrame(nil, "<a & \"b\">\n")), `{"type":"token","data":"<a & \"b\">\n"}`},
		{string(wire.AppendSetMetadataFrame(nil, json.RawMessage(`{"z":1,"a":2}`))), `{"type":"set_metadata","metadata":{"z":1,"a":2}}`},
		{string(wire.AppendSubscribeFrame(nil, nil)), `{"type":"subscribe","streams":null}`},
		{string(wire.AppendSubscribeFrame(nil, []string{})), `{"type":"subscribe","streams":[]}`},
		{string(wire.AppendSubscribeFrame(nil, []string{sid, "bob"})), `{"type":"subscribe","streams":["` + sid + `","bob"]}`},
	} {
		if tc.got != tc.want {
			t.Errorf("got %s, want %s", tc.got, tc.want)
		}
	}
}

func TestCursor(t *testing.T) {
	t.Parallel()
	other := "str_ffffffffffffffffffffffffff"
	c := wire.Cursor{other: 3, sid: 12}
	if got := c.String(); got != sid+":12,"+other+":3" {
		t.Errorf("String = %s", got)
	}
	back, err := wire.ParseCursor(sid + ":12 , " + other + ":3")
	if err != nil || !cmp.Equal(back, c) {
		t.Errorf("parse = %v, %v", back, err)
	}
	if got := (wire.Cursor{}).String(); got != "*" {
		t.Errorf("empty = %s", got)
	}
	for _, bad := range []string{"", "x:1", sid + ":", sid + ":-1", sid + ":+1", sid + ":1," + sid + ":2"} {
		if _, err := wire.ParseCursor(bad); !errors.Is(err, wire.ErrInvalidCursor) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestRetryable(t *testing.T) {
	t.Parallel()
	for code, want := range map[int]bool{1000: false, 1001: true, 1006: true, 4001: false, 4002: false, 4003: false, 4004: false, 4005: false, 4290: true, 4400: false, 4500: true} {
		if wire.Retryable(code) != want {
			t.Errorf("Retryable(%d) = %v", code, !want)
		}
	}
}
