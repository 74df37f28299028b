package benchkit

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestDataRoundTrip(t *testing.T) {
	t.Parallel()
	now := time.Now().UnixNano()
	for _, size := range []int{MinTokenSize, 64, 1000} {
		d := AppendData([]byte("prefix"), 12, 987654321, now, size)
		d = d[len("prefix"):]
		if len(d) != size {
			t.Errorf("size %d: data is %d bytes", size, len(d))
		}
		w, k, ts, ok := ParseData(d)
		if !ok || w != 12 || k != 987654321 || ts != now {
			t.Errorf("ParseData = %d %d %d %v", w, k, ts, ok)
		}
	}
	if _, _, _, ok := ParseData([]byte("0001x")); ok {
		t.Errorf("ParseData accepted a short data")
	}
	if _, _, _, ok := ParseData([]byte(strings.Repeat("y", 40))); ok {
		t.Errorf("ParseData accepted non-digits")
	}
}

func TestEachFrame(t *testing.T) {
	t.Parallel()
	var got []string
	collect := func(f []byte) bool { got = append(got, string(f)); return true }
	EachFrame([]byte(`{"type":"pong"}`), collect)
	EachFrame([]byte(` [{"type":"a","data":"}]\"{"},{"type":"b","x":{"y":[1,{"z":2}]}} , {"type":"c","d":"\\\\","e":"\\\"}"}]`), collect)
	want := []string{`{"type":"pong"}`, `{"type":"a","data":"}]\"{"}`, `{"type":"b","x":{"y":[1,{"z":2}]}}`, `{"type":"c","d":"\\\\","e":"\\\"}"}`}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("frames (-want +got):\n%s", diff)
	}
	n := 0
	EachFrame([]byte(`[{"a":1},{"b":2}]`), func([]byte) bool { n++; return false })
	if n != 1 {
		t.Errorf("EachFrame went on after false: %d calls", n)
	}
}

// TestEachFrameTokens: token frames in the gateway's layout take the
// short path, the others the full walk, and both split alike.
func TestEachFrameTokens(t *testing.T) {
	t.Parallel()
	frames := []string{
		`{"type":"token","stream_id":"s1","stream_name":"w","owner_account_id":"a","ts":"t","data":"plain","seq":7}`,
		`{"type":"token","stream_id":"s1","stream_name":"w\",\"data\":\"x","owner_account_id":"a","ts":"t","data":"}],{","seq":8}`,
		`{"type":"token","stream_id":"s2","stream_name":"w","owner_account_id":"a","ts":"t","data":"q\"","seq":9}`,
		`{"type":"token","stream_id":"s2","stream_name":"w","owner_account_id":"a","ts":"t","data":"d","peer_identity":{"k":"}"},"seq":10}`,
		`{"type":"stream_left","stream_id":"s3","last_seq":4}`,
		`{"type":"token","stream_id":"s2","stream_name":"w","owner_account_id":"a","ts":"t","data":"","seq":11}`,
		`{"type":"token","stream_id":"s4","stream_name":"w","owner_account_id":"a","ts":"t","data":"}],{\\\\","seq":12}`,
	}
	msg := []byte("[" + strings.Join(frames, ",") + "]")
	var got []string
	EachFrame(msg, func(f []byte) bool { got = append(got, string(f)); return true })
	if diff := cmp.Diff(frames, got); diff != "" {
		t.Fatalf("frames (-want +got):\n%s", diff)
	}
	for i, want := range []struct {
		n   bool
		sid string
		seq int64
		d   string
	}{
		{true, "s1", 7, "plain"},
		{false, "", 0, ""}, // an escaped quote in a string: walked in full
		{false, "", 0, ""}, // an escaped quote ends the data: walked in full
		{false, "", 0, ""}, // a peer identity: walked in full
		{false, "", 0, ""},
		{true, "s2", 11, ""},
		{false, "", 0, ""}, // a backslash ends the data: walked in full
	} {
		n, sid, d, seq := tokenLayout([]byte(frames[i]))
		if (n > 0) != want.n || (n > 0 && (n != len(frames[i]) || string(sid) != want.sid || seq != want.seq || string(d) != want.d)) {
			t.Errorf("tokenLayout(%s) = %d %q %q %d", frames[i], n, sid, d, seq)
		}
	}
	// EachToken gives every token its parts, by either path, and nil
	// for the rest; a single frame too.
	type parts struct {
		sid, data string
		seq       int64
	}
	var want, toks []*parts
	for _, f := range frames {
		var p *parts
		if sid, seq, d, ok := ParseToken([]byte(f)); ok {
			p = &parts{string(sid), string(d), seq}
		}
		want = append(want, p)
	}
	collect := func(_ []byte, tok *Token) bool {
		var p *parts
		if tok != nil {
			p = &parts{string(tok.StreamID), string(tok.Data), tok.Seq}
		}
		toks = append(toks, p)
		return true
	}
	EachToken(msg, collect)
	if diff := cmp.Diff(want, toks, cmp.AllowUnexported(parts{})); diff != "" {
		t.Fatalf("tokens (-want +got):\n%s", diff)
	}
	if want[4] != nil || want[0] == nil || want[1] == nil {
		t.Fatalf("ParseToken: %v", want)
	}
	toks = nil
	EachToken([]byte(frames[0]), collect)
	if len(toks) != 1 || toks[0] == nil || *toks[0] != *want[0] {
		t.Fatalf("EachToken of one frame: %v", toks)
	}

	// The full walk still parses what the short path leaves.
	if sid, seq, d, ok := ParseToken([]byte(frames[1])); !ok || string(sid) != "s1" || seq != 8 || string(d) != "}],{" {
		t.Errorf("ParseToken(escaped name) = %q %d %q %v", sid, seq, d, ok)
	}
	if sid, seq, d, ok := ParseToken([]byte(frames[3])); !ok || string(sid) != "s2" || seq != 10 || string(d) != "d" {
		t.Errorf("ParseToken(peer identity) = %q %d %q %v", sid, seq, d, ok)
	}
	// Truncated and malformed token frames are not taken as tokens.
	for _, bad := range []string{
		`{"type":"token","stream_id":"s","data":"d","seq":}`,
		`{"type":"token","stream_id":"s","data":"d","seq":1`,
		`{"type":"token","stream_id":"s","data":"d","seq":1x}`,
		`{"type":"token","stream_id":"s\"","data":"d","seq":1}`,
		`{"type":"token","stream_id":"s","data":"d","seq":1234567890123456789}`,
	} {
		if n, _, _, _ := tokenLayout([]byte(bad)); n != 0 {
			t.Errorf("tokenLayout(%s) = %d", bad, n)
		}
	}
}

func TestParseToken(t *testing.T) {
	t.Parallel()
	data := string(AppendData(nil, 3, 42, 1700000000000000000, 40))
	f := []byte(`{"type":"token","stream_id":"str_0123456789abcdef0123456789","stream_name":"w-3","owner_account_id":"acc_01J00000000000000000","ts":"2026-05-01T18:00:05.123Z","data":"` + data + `","peer_identity":{"kind":"agent"},"seq":42}`)
	sid, seq, d, ok := ParseToken(f)
	if !ok || string(sid) != "str_0123456789abcdef0123456789" || seq != 42 || string(d) != data {
		t.Errorf("ParseToken = %q %d %q %v", sid, seq, d, ok)
	}
	if string(FrameType(f)) != "token" || string(FrameType([]byte(`{"type":"joined","x":1}`))) != "joined" {
		t.Errorf("FrameType")
	}
	for _, bad := range []string{`{"type":"pong"}`, `{"type":"token","stream_id":"s","data":"d"}`, `[]`} {
		if _, _, _, ok := ParseToken([]byte(bad)); ok {
			t.Errorf("ParseToken accepted %s", bad)
		}
	}
	if got := string(AppendTokenFrame(nil, []byte("abc"))); got != `{"type":"token","data":"abc"}` {
		t.Errorf("AppendTokenFrame = %s", got)
	}
}
