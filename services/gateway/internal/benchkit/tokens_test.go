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
