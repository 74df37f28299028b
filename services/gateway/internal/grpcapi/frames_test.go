package grpcapi

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	amsv1 "github.com/amsrouter/ams/proto/gen/go/ams/v1"
	"github.com/amsrouter/ams/services/gateway/internal/frame"
	"github.com/amsrouter/ams/services/internal/timefmt"
	"github.com/amsrouter/ams/services/internal/wireerr"
)

// Every server frame package frame encodes converts to the message with
// the same fields; objects keep their exact bytes.
func TestServerFrame(t *testing.T) {
	t.Parallel()
	ts := time.Date(2026, 5, 1, 18, 0, 5, 123e6, time.UTC)
	tsText := timefmt.Format(ts)
	const md = `{"b": 1,  "a":[2,1], "s":"\u00e9\"}"}`
	w := &frame.Stream{ID: "str_0123456789abcdef0123456789", Name: "w", Owner: "acc_01M8AB2B92MWYWC8NBJR", Metadata: md,
		PeerIdentity: `{"kind":"agent","model":"m","client":"c"}`, LastSeq: 7}
	wID := &amsv1.PeerIdentity{Kind: "agent", Model: "m", Client: "c"}
	plain := &frame.Stream{ID: "str_abcdefabcdefabcdefabcdefab", Name: "p", Owner: "acc_01M8AB2B94SGA4JWST6R", Metadata: "{}", LastSeq: 0}

	cases := []struct {
		name string
		json []byte
		want *amsv1.ServerFrame
	}{
		{"token", frame.AppendToken(nil, w, ts, "hé \"x\"\n\u2028", 8), &amsv1.ServerFrame{Frame: &amsv1.ServerFrame_Token{Token: &amsv1.TokenEvent{
			StreamId: w.ID, StreamName: "w", OwnerAccountId: w.Owner, Ts: tsText, Data: "hé \"x\"\n\u2028", PeerIdentity: wID, Seq: 8}}}},
		{"token without identity", frame.AppendToken(nil, plain, ts, "", 1), &amsv1.ServerFrame{Frame: &amsv1.ServerFrame_Token{Token: &amsv1.TokenEvent{
			StreamId: plain.ID, StreamName: "p", OwnerAccountId: plain.Owner, Ts: tsText, Seq: 1}}}},
		{"stream_metadata", frame.AppendStreamMetadata(nil, w, md, ts, 9), &amsv1.ServerFrame{Frame: &amsv1.ServerFrame_StreamMetadata{
			StreamMetadata: &amsv1.StreamMetadata{StreamId: w.ID, StreamName: "w", OwnerAccountId: w.Owner, MetadataJson: md, Ts: tsText,
				PeerIdentity: wID, Seq: 9}}}},
		{"stream_joined", frame.AppendStreamJoined(nil, w), &amsv1.ServerFrame{Frame: &amsv1.ServerFrame_StreamJoined{StreamJoined: &amsv1.StreamJoined{
			StreamId: w.ID, StreamName: "w", OwnerAccountId: w.Owner, MetadataJson: md, PeerIdentity: wID, LastSeq: 7}}}},
		{"stream_left", frame.AppendStreamLeft(nil, plain), &amsv1.ServerFrame{Frame: &amsv1.ServerFrame_StreamLeft{StreamLeft: &amsv1.StreamLeft{
			StreamId: plain.ID, StreamName: "p", OwnerAccountId: plain.Owner}}}},
		{"replay_gap", frame.AppendReplayGap(nil, w, 3, 5), &amsv1.ServerFrame{Frame: &amsv1.ServerFrame_ReplayGap{ReplayGap: &amsv1.ReplayGap{
			StreamId: w.ID, StreamName: "w", OwnerAccountId: w.Owner, RequestedSeq: 3, FirstAvailableSeq: 5}}}},
		{"pong", frame.Pong, &amsv1.ServerFrame{Frame: &amsv1.ServerFrame_Pong{Pong: &amsv1.Pong{}}}},
		{"subscribed to all", frame.AppendSubscribed(nil, nil, []string{w.ID}), &amsv1.ServerFrame{Frame: &amsv1.ServerFrame_Subscribed{
			Subscribed: &amsv1.Subscribed{SubscriptionAll: true, SubscribedStreams: []string{w.ID}}}}},
		{"subscribed to none", frame.AppendSubscribed(nil, []string{}, []string{}), &amsv1.ServerFrame{Frame: &amsv1.ServerFrame_Subscribed{
			Subscribed: &amsv1.Subscribed{}}}},
		{"joined", frame.AppendJoined(nil, &frame.Joined{ConversationID: "conv_01M8AB2B96EWD3PAHEXP", Own: w, SelfSubscribe: true,
			Peers: []frame.Stream{*plain, *w}, Resumed: true, AccountID: w.Owner, Subscription: []string{"p", w.ID},
			SubscribedStreams: []string{plain.ID}, MaxAgeMs: 900000, MaxEvents: 10000}),
			&amsv1.ServerFrame{Frame: &amsv1.ServerFrame_Joined{Joined: &amsv1.Joined{
				ConversationId: "conv_01M8AB2B96EWD3PAHEXP", StreamId: w.ID, StreamName: "w", MetadataJson: md, SelfSubscribe: true,
				Peers: []*amsv1.StreamInfo{
					{StreamId: plain.ID, StreamName: "p", OwnerAccountId: plain.Owner, MetadataJson: "{}"},
					{StreamId: w.ID, StreamName: "w", OwnerAccountId: w.Owner, MetadataJson: md, PeerIdentity: wID, LastSeq: 7},
				},
				PeerIdentity: wID, Resumed: true, AccountId: w.Owner, LastSeq: 7, Subscription: []string{"p", w.ID},
				SubscribedStreams: []string{plain.ID}, RetentionMaxAgeMs: 900000, RetentionMaxEvents: 10000}}}},
		{"joined without peers or filter", frame.AppendJoined(nil, &frame.Joined{ConversationID: "conv_01M8AB2B96EWD3PAHEXP", Own: plain,
			AccountID: plain.Owner, MaxAgeMs: 1, MaxEvents: 2}),
			&amsv1.ServerFrame{Frame: &amsv1.ServerFrame_Joined{Joined: &amsv1.Joined{
				ConversationId: "conv_01M8AB2B96EWD3PAHEXP", StreamId: plain.ID, StreamName: "p", MetadataJson: "{}", Peers: []*amsv1.StreamInfo{},
				AccountId: plain.Owner, SubscriptionAll: true, RetentionMaxAgeMs: 1, RetentionMaxEvents: 2}}}},
		{"observer joined", frame.AppendJoined(nil, &frame.Joined{ConversationID: "conv_01M8AB2B96EWD3PAHEXP", Peers: []frame.Stream{*plain},
			MaxAgeMs: 1, MaxEvents: 2, Observer: true}),
			&amsv1.ServerFrame{Frame: &amsv1.ServerFrame_Joined{Joined: &amsv1.Joined{
				ConversationId:  "conv_01M8AB2B96EWD3PAHEXP",
				Peers:           []*amsv1.StreamInfo{{StreamId: plain.ID, StreamName: "p", OwnerAccountId: plain.Owner, MetadataJson: "{}"}},
				SubscriptionAll: true, RetentionMaxAgeMs: 1, RetentionMaxEvents: 2, Observer: true}}}},
	}
	for _, tc := range cases {
		got, err := serverFrame(tc.json)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if diff := cmp.Diff(tc.want, got, protocmp.Transform()); diff != "" {
			t.Errorf("%s: (-want +got)\n%s", tc.name, diff)
		}
	}
	for _, bad := range []string{``, `[]`, `{"type":"cursor","cursor":""}`, `{"type":"token","seq":"x"}`} {
		if _, err := serverFrame([]byte(bad)); err == nil {
			t.Errorf("serverFrame(%s) converted", bad)
		}
	}
}

// FuzzServerFrame: any token data and any metadata object survive the
// conversion exactly; any input at all is converted or refused without a
// panic.
func FuzzServerFrame(f *testing.F) {
	for _, s := range []struct{ data, md string }{
		{"", "{}"}, {"hello", `{"a":1}`}, {"\u2028\u2029<>&'\"\\", `{ "x" : [1, 2.50, -0, 1e3], "y":{"z":null} }`},
		{"\x00\x1f\x7f", `{"\u00e9":"\ud83d\ude00"}`}, {"é😀", `{"a":"b","a":"c"}`},
	} {
		f.Add(s.data, s.md)
	}
	s := &frame.Stream{ID: "str_0123456789abcdef0123456789", Name: "w", Owner: "acc_01M8AB2B92MWYWC8NBJR"}
	f.Fuzz(func(t *testing.T, data, md string) {
		// Anything at all is refused or converted, never a panic.
		_, _ = serverFrame([]byte(data))
		_, _ = serverFrame([]byte(md))
		if !utf8.ValidString(data) {
			return // the hub never holds such data: frames and proto refuse it
		}
		tok, err := serverFrame(frame.AppendToken(nil, s, time.Unix(0, 0), data, 1))
		if err != nil || tok.GetToken().GetData() != data {
			t.Fatalf("token %q: %v %v", data, tok, err)
		}
		if !isObject(md) || !utf8.ValidString(md) {
			return
		}
		m, err := serverFrame(frame.AppendStreamMetadata(nil, s, md, time.Unix(0, 0), 2))
		if err != nil || m.GetStreamMetadata().GetMetadataJson() != md {
			t.Fatalf("metadata %q: %v %v", md, m, err)
		}
	})
}

func TestParseMagicLink(t *testing.T) {
	t.Parallel()
	cases := []struct{ link, ns, alias, token string }{
		{"https://ams.example/acme/conversations/room?t=abc.def.ghi", "acme", "room", "abc.def.ghi"},
		{"http://127.0.0.1:8080/acme/conversations/room/?t=x", "acme", "room", "x"},
		{"http://h/acme/conversations/room/connect?t=x", "acme", "room", "x"},
		{"http://h/acme/conversations/connect?t=x", "acme", "connect", "x"},
		{"http://h/base/path/acme/conversations/room?t=x&other=1", "acme", "room", "x"},
		{" https://h/a/conversations/b?t=x ", "a", "b", "x"},
		{"https://h/acme/conversations/room", "acme", "room", ""},
		{"https://h/acme/rooms/room?t=x", "", "", "x"},
		{"https://h/?t=x", "", "", "x"},
		{"", "", "", ""},
		{"::", "", "", ""},
		{"https://h/acme/conversations/room?t=%zz", "acme", "room", ""},
	}
	for _, tc := range cases {
		ns, alias, token := parseMagicLink(tc.link)
		if ns != tc.ns || alias != tc.alias || token != tc.token {
			t.Errorf("parseMagicLink(%q) = %q, %q, %q; want %q, %q, %q", tc.link, ns, alias, token, tc.ns, tc.alias, tc.token)
		}
	}
}

// FuzzParseMagicLink: a link built as the control plane builds them reads
// back as its parts, whatever the base.
func FuzzParseMagicLink(f *testing.F) {
	f.Add("https://ams.example", "acme", "room", "eyJ.eyJ.sig")
	f.Add("http://127.0.0.1:8080/prefix", "a", "conversations", "x-y_z")
	f.Fuzz(func(t *testing.T, base, ns, alias, token string) {
		_, _, _ = parseMagicLink(base + ns + alias + token) // never panics
		if strings.ContainsAny(ns+alias, "/?#%") || ns == "" || alias == "" || strings.ContainsAny(base, "?#%") ||
			!strings.HasPrefix(base, "https://h") || strings.ContainsAny(token, "&#%+; ") || !utf8.ValidString(ns+alias+token+base) {
			return
		}
		link := base + "/" + ns + "/conversations/" + alias + "?t=" + token
		if u, err := url.Parse(link); err != nil || u.Path != link[len("https://")+strings.Index(link[len("https://"):], "/"):strings.Index(link, "?")] {
			return // not a URL, or one whose host took part of the path
		}
		gotNS, gotAlias, gotToken := parseMagicLink(link)
		if gotNS != ns || gotAlias != alias || gotToken != token {
			t.Fatalf("parseMagicLink(%q) = %q, %q, %q", link, gotNS, gotAlias, gotToken)
		}
	})
}

func TestIsObject(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]bool{`{}`: true, `{"a":[1]}`: true, ` {}`: false, `{} `: false, `[]`: false, `{`: false,
		`{}{}`: false, `null`: false, ``: false, `"{}"`: false, `{"a":}`: false,
		// The WebSocket frame's nesting bound of 256 counts the frame's object.
		strings.Repeat(`{"a":`, 255) + "1" + strings.Repeat("}", 255): true,
		strings.Repeat(`{"a":`, 256) + "1" + strings.Repeat("}", 256): false} {
		if got := isObject(s); got != want {
			t.Errorf("isObject(%q) = %v", s, got)
		}
	}
}

// A set_metadata frame's metadata nested deeper than a WebSocket frame
// allows is refused as over WebSocket: malformed_frame.
func TestSetMetadataNesting(t *testing.T) {
	t.Parallel()
	nested := func(n int) string { return strings.Repeat(`{"a":`, n) + "1" + strings.Repeat("}", n) }
	b, err := proto.Marshal(&amsv1.ClientFrame{Frame: &amsv1.ClientFrame_SetMetadata{
		SetMetadata: &amsv1.SetMetadata{MetadataJson: nested(256)}}})
	if err != nil {
		t.Fatal(err)
	}
	err = (&call{}).handle(context.Background(), b)
	if we, ok := wireerr.As(err); !ok || we.Code.Name != wireerr.MalformedFrame.Name {
		t.Fatalf("got %v, want malformed_frame", err)
	}
	msg := `{"type":"set_metadata","metadata":` + nested(256) + `}`
	if werr := frame.Decode([]byte(msg), false, func(*frame.Client) error { return nil }); codeName(werr) != wireerr.MalformedFrame.Name {
		t.Fatalf("WebSocket: %v", werr)
	}
}

func codeName(err error) string {
	if we, ok := wireerr.As(err); ok {
		return we.Code.Name
	}
	return ""
}

func BenchmarkServerFrameToken(b *testing.B) {
	s := &frame.Stream{ID: "str_0123456789abcdef0123456789", Name: "writer", Owner: "acc_01M8AB2B92MWYWC8NBJR"}
	f := frame.AppendToken(nil, s, time.Now(), "hello world,\na token of moderate size", 42)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := serverFrame(f); err != nil {
			b.Fatal(err)
		}
	}
}
