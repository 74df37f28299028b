package frame

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/amsrouter/ams/services/internal/wireerr"
)

func decodeAll(msg string, batch bool) ([]Client, error) {
	var out []Client
	err := Decode([]byte(msg), batch, func(f *Client) error {
		c := *f
		c.Metadata = append([]byte(nil), f.Metadata...)
		out = append(out, c)
		return nil
	})
	return out, err
}

func code(err error) string {
	if we, ok := wireerr.As(err); ok {
		return we.Code.Name
	}
	if err != nil {
		return err.Error()
	}
	return ""
}

// C42, C43, C48: every client-frame error of spec 4.2 with its reason.
func TestC42DecodeErrors(t *testing.T) {
	big := strings.Repeat("a", MaxData+1)
	tests := []struct {
		name, msg string
		batch     bool
		want      string
	}{
		{"not json", `hello`, false, "malformed_frame"},
		{"truncated", `{"type":"token"`, false, "malformed_frame"},
		{"trailing garbage", `{"type":"ping"} x`, false, "malformed_frame"},
		{"string", `"token"`, false, "malformed_frame"},
		{"number", `5`, false, "malformed_frame"},
		{"null", `null`, false, "malformed_frame"},
		{"C48 array without batching", `[{"type":"ping"}]`, false, "malformed_frame"},
		{"empty batch", `[]`, true, "malformed_frame"},
		{"type missing", `{"data":"x"}`, false, "malformed_frame"},
		{"type not string", `{"type":5}`, false, "malformed_frame"},
		{"type case differs", `{"TYPE":"ping"}`, false, "malformed_frame"},
		{"data missing", `{"type":"token"}`, false, "malformed_frame"},
		{"data number", `{"type":"token","data":1}`, false, "malformed_frame"},
		{"data null", `{"type":"token","data":null}`, false, "malformed_frame"},
		{"lone high surrogate", `{"type":"token","data":"a\ud800b"}`, false, "malformed_frame"},
		{"lone low surrogate", `{"type":"token","data":"\udc00"}`, false, "malformed_frame"},
		{"reversed pair", `{"type":"token","data":"\udc00\ud800"}`, false, "malformed_frame"},
		{"invalid utf8", "{\"type\":\"token\",\"data\":\"\xff\"}", false, "malformed_frame"},
		{"metadata not object", `{"type":"set_metadata","metadata":[1]}`, false, "malformed_frame"},
		{"metadata missing", `{"type":"set_metadata"}`, false, "malformed_frame"},
		{"C42 unknown type", `{"type":"hello"}`, false, "unknown_frame_type"},
		{"C42 x_ type", `{"type":"x_custom"}`, false, "unknown_frame_type"},
		{"C43 token too large", `{"type":"token","data":"` + big + `"}`, false, "token_too_large"},
		{"metadata too large", `{"type":"set_metadata","metadata":{"a":"` + strings.Repeat("b", MaxMetadata) + `"}}`, false, "metadata_too_large"},
		{"subscribe missing streams", `{"type":"subscribe"}`, false, "invalid_subscription"},
		{"subscribe bad item", `{"type":"subscribe","streams":["a b"]}`, false, "invalid_subscription"},
		{"subscribe not array", `{"type":"subscribe","streams":"a"}`, false, "invalid_subscription"},
		{"subscribe non-string", `{"type":"subscribe","streams":[1]}`, false, "invalid_subscription"},
		{"batch over 256", "[" + strings.Repeat(`{"type":"ping"},`, 256) + `{"type":"ping"}]`, true, "malformed_frame"},
		{"batch with scalar", `[{"type":"ping"},5]`, true, "malformed_frame"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeAll(tt.msg, tt.batch)
			if got := code(err); got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestDecodeFrames(t *testing.T) {
	exact := MaxData
	fs, err := decodeAll(`{"type":"token","data":"`+strings.Repeat("é", exact/2)+`"}`, false)
	if err != nil || len(fs[0].Data) != exact {
		t.Fatalf("64 KiB token: %v", err)
	}
	fs, err = decodeAll(` { "extra" : {"nested":[1,2,{"x":null}]}, "data" : "a\"\\\u00fc\ud83d\ude00\n", "type" : "token" } `, false)
	if err != nil || fs[0].Type != TypeToken || fs[0].Data != "a\"\\ü😀\n" {
		t.Fatalf("token with escapes: %+v %v", fs, err)
	}
	meta := `{"b": 1,  "a":[2,1], "u":"\u00fc"}`
	fs, err = decodeAll(`{"type":"set_metadata","metadata":`+meta+`}`, false)
	if err != nil || string(fs[0].Metadata) != meta {
		t.Fatalf("metadata not kept byte for byte: %q %v", fs[0].Metadata, err)
	}
	fs, err = decodeAll(`{"type":"subscribe","streams":["b","str_0123456789abcdef0123456789","b"]}`, false)
	if err != nil || len(fs[0].Streams) != 2 || fs[0].All {
		t.Fatalf("subscribe: %+v %v", fs, err)
	}
	fs, err = decodeAll(`{"type":"subscribe","streams":null}`, false)
	if err != nil || !fs[0].All {
		t.Fatalf("subscribe null: %+v %v", fs, err)
	}
	fs, err = decodeAll(`{"type":"token","data":"x","id":"retry-1"}`, false)
	if err != nil || fs[0].Tag != "retry-1" {
		t.Fatalf("tag: %+v %v", fs, err)
	}
}

// C48: a batch acts as its frames one by one; a bad element stops after
// the earlier ones took effect.
func TestC48Batch(t *testing.T) {
	fs, err := decodeAll(`[{"type":"token","data":"1"},{"type":"ping"},{"type":"nope"},{"type":"token","data":"4"}]`, true)
	if code(err) != "unknown_frame_type" || len(fs) != 2 || fs[0].Data != "1" || fs[1].Type != TypePing {
		t.Fatalf("got %+v, %v", fs, err)
	}
	fs, err = decodeAll("["+strings.Repeat(`{"type":"ping"},`, 255)+`{"type":"ping"}]`, true)
	if err != nil || len(fs) != 256 {
		t.Fatalf("256-frame batch: %d %v", len(fs), err)
	}
}

func TestServerFrames(t *testing.T) {
	s := &Stream{ID: "str_0123456789abcdef0123456789", Name: "main", Owner: "acc_X", Metadata: `{"k": 1}`, PeerIdentity: `{"kind":"agent"}`, LastSeq: 7}
	ts := time.Date(2026, 5, 1, 18, 0, 5, 123e6, time.UTC)
	tok := AppendToken(nil, s, ts, "hé\"llo", 42)
	want := `{"type":"token","stream_id":"str_0123456789abcdef0123456789","stream_name":"main","owner_account_id":"acc_X","ts":"2026-05-01T18:00:05.123Z","data":"hé\"llo","peer_identity":{"kind":"agent"},"seq":42}`
	if string(tok) != want {
		t.Fatalf("token frame\n got %s\nwant %s", tok, want)
	}
	if seq, ok := SeqOf(tok); !ok || seq != 42 || KindOf(tok) != KindToken {
		t.Fatalf("SeqOf/KindOf: %d %v", seq, ok)
	}
	md := AppendStreamMetadata(nil, s, `{"z": [1]}`, ts, 43)
	if seq, _ := SeqOf(md); seq != 43 || KindOf(md) != KindMetadata || !json.Valid(md) {
		t.Fatalf("metadata frame %s", md)
	}
	j := AppendJoined(nil, &Joined{ConversationID: "conv_X", Own: s, Peers: []Stream{*s}, AccountID: "acc_X", MaxAgeMs: 900000, MaxEvents: 10000})
	var m map[string]any
	if err := json.Unmarshal(j, &m); err != nil || m["subscription"] != nil || m["last_seq"].(float64) != 7 {
		t.Fatalf("joined %s: %v", j, err)
	}
	if _, ok := m["subscribed_streams"]; ok {
		t.Fatal("subscribed_streams present without a filter")
	}
	obs := AppendJoined(nil, &Joined{ConversationID: "conv_X", Observer: true})
	if !strings.Contains(string(obs), `"stream_id":null`) || !strings.Contains(string(obs), `"observer":true`) {
		t.Fatalf("observer joined %s", obs)
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{`{"type":"token","data":"x"}`, `[{"type":"ping"}]`, `{"type":"set_metadata","metadata":{}}`,
		`{"type":"subscribe","streams":["a"]}`, `{"type":"token","data":"\ud83d\ude00"}`, `{`, `[`, `"\u`, `{"a":[[[[`} {
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, msg []byte, batch bool) {
		err := Decode(msg, batch, func(c *Client) error {
			if c.Type == TypeToken && len(c.Data) > MaxData {
				t.Fatalf("oversized data accepted")
			}
			return nil
		})
		if err == nil && !json.Valid(msg) {
			t.Fatalf("accepted invalid JSON %q", msg)
		}
		if err == nil && !batch {
			var v struct {
				Type string `json:"type"`
				Data string `json:"data"`
			}
			if json.Unmarshal(msg, &v) != nil {
				t.Fatalf("encoding/json rejects accepted %q", msg)
			}
		}
	})
}

func BenchmarkDecodeToken(b *testing.B) {
	msg := []byte(`{"type":"token","data":"The quick brown fox jumps over the lazy dog"}`)
	b.ReportAllocs()
	for b.Loop() {
		_ = Decode(msg, false, func(*Client) error { return nil })
	}
}

func BenchmarkAppendToken(b *testing.B) {
	s := &Stream{ID: "str_0123456789abcdef0123456789", Name: "main", Owner: "acc_01J0000000000000000X"}
	buf := make([]byte, 0, 512)
	ts := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendToken(buf[:0], s, ts, "The quick brown fox jumps over the lazy dog", 12345)
	}
}

func TestDecodeEmitBody(t *testing.T) {
	ok := []struct {
		body string
		want []string
	}{
		{`{"data":"x"}`, []string{"x"}},
		{`{"data":""}`, []string{""}},
		{`{"tokens":["a","\ud83d\ude00",""]}`, []string{"a", "😀", ""}},
		{` {"tokens":["a"],"extra":1} `, []string{"a"}},
		// Members as the WebSocket decoder reads them: keys unescaped, the
		// last of repeated keys winning.
		{`{"d\u0061ta":"x"}`, []string{"x"}},
		{`{"\u0074okens":["a","b"]}`, []string{"a", "b"}},
		{`{"data":"first","data":"last"}`, []string{"last"}},
		{`{"data":1,"d\u0061ta":"ok"}`, []string{"ok"}},
		{`{"tokens":"a","tokens":["b"]}`, []string{"b"}},
	}
	for _, tt := range ok {
		got, err := DecodeEmitBody([]byte(tt.body))
		if err != nil || strings.Join(got, "|") != strings.Join(tt.want, "|") {
			t.Errorf("%s: %q %v", tt.body, got, err)
		}
	}
	bad := []struct{ body, code string }{
		{`nope`, "invalid_json"},
		{`[1]`, "invalid_json"},
		{``, "invalid_json"},
		{`{}`, "invalid_token_data"},
		{`{"data":"a","tokens":["b"]}`, "invalid_token_data"},
		{`{"data":1}`, "invalid_token_data"},
		{`{"data":"\ud800"}`, "invalid_token_data"},
		{`{"tokens":[]}`, "invalid_token_data"},
		{`{"tokens":"a"}`, "invalid_token_data"},
		{`{"tokens":["a",2]}`, "invalid_token_data"},
		{`{"tokens":[` + strings.Repeat(`"a",`, 256) + `"a"]}`, "invalid_token_data"},
		{`{"data":"` + strings.Repeat("a", MaxData+1) + `"}`, "token_too_large"},
		{`{"data":"ok","data":1}`, "invalid_token_data"},
		{`{"data":"x","t\u006fkens":["y"]}`, "invalid_token_data"},
		{`{"d\ud800ata":"x"}`, "invalid_token_data"},
		{`{"Data":"x"}`, "invalid_token_data"},
	}
	for _, tt := range bad {
		_, err := DecodeEmitBody([]byte(tt.body))
		if code(err) != tt.code {
			t.Errorf("%.40s: got %q, want %q", tt.body, code(err), tt.code)
		}
	}
	if TypeOf([]byte(`{"type":"stream_left","x":1}`)) != "stream_left" || TypeOf([]byte(`{}`)) != "" {
		t.Error("TypeOf")
	}
}

func BenchmarkDecodeIntoToken(b *testing.B) {
	msg := []byte(`{"type":"token","data":"The quick brown fox jumps over the lazy dog"}`)
	var f Client
	fn := func(*Client) error { return nil }
	b.ReportAllocs()
	for b.Loop() {
		_ = DecodeInto(msg, false, &f, fn)
	}
}

func TestDecodeIntoViewsData(t *testing.T) {
	msg := []byte(`{"type":"token","data":"plain"}`)
	var f Client
	var got string
	if err := DecodeInto(msg, false, &f, func(c *Client) error { got = c.Data; return nil }); err != nil || got != "plain" {
		t.Fatalf("%q %v", got, err)
	}
	esc := []byte(`{"type":"token","data":"a\nb"}`)
	if err := DecodeInto(esc, false, &f, func(c *Client) error { got = c.Data; return nil }); err != nil || got != "a\nb" {
		t.Fatalf("%q %v", got, err)
	}
}

func TestDecodeString(t *testing.T) {
	ok := map[string]string{`""`: "", `"a\nb"`: "a\nb", `"\ud83d\ude00"`: "😀", `"\u00fc"`: "ü", "\"ü\"": "ü"}
	for lit, want := range ok {
		if got, ok := DecodeString([]byte(lit)); !ok || got != want {
			t.Errorf("DecodeString(%s) = %q, %v; want %q", lit, got, ok, want)
		}
	}
	for _, lit := range []string{`"\ud800"`, `"\udc00"`, `"\ud83d\u0041"`, `"\ud83dx"`, "\"\xff\"", "\"\x01\"", `"a" `, `"a`, `1`, ``, `"\x"`} {
		if got, ok := DecodeString([]byte(lit)); ok {
			t.Errorf("DecodeString(%q) = %q, accepted", lit, got)
		}
	}
}

// ValidMetadata accepts exactly the metadata a set_metadata frame does:
// the frame's object counts toward the nesting bound.
func TestValidMetadata(t *testing.T) {
	nested := func(n int) string { return strings.Repeat(`{"a":`, n) + "1" + strings.Repeat("}", n) }
	for _, tt := range []struct {
		md   string
		want bool
	}{
		{`{}`, true}, {`{"a":[1,{"b":"\ud800"}]}`, true}, {`{"n":1e999999999}`, true},
		{nested(maxDepth - 1), true}, {nested(maxDepth), false}, {`[]`, false},
		{`{"a":1}{}`, false}, {"{\"a\":\"\xff\"}", false}, {`{"a":}`, false}, {``, false},
	} {
		if got := ValidMetadata([]byte(tt.md)); got != tt.want {
			t.Errorf("ValidMetadata(%.40s) = %v, want %v", tt.md, got, tt.want)
		}
		msg := `{"type":"set_metadata","metadata":` + tt.md + `}`
		err := Decode([]byte(msg), false, func(*Client) error { return nil })
		if (err == nil) != tt.want {
			t.Errorf("a set_metadata frame with %.40s: %v, want accepted %v", tt.md, err, tt.want)
		}
	}
	if ValidMetadata([]byte(" {}")) || ValidMetadata([]byte("{} ")) {
		t.Error("metadata with space around it accepted: callers trim it")
	}
}

// BenchmarkDecodeIntoBatch decodes an array of 16 tokens of 64 bytes, what
// a writer streaming at a fixed rate sends in one message.
func BenchmarkDecodeIntoBatch(b *testing.B) {
	msg := []byte{'['}
	for i := range 16 {
		if i > 0 {
			msg = append(msg, ',')
		}
		msg = append(msg, `{"type":"token","data":"`...)
		msg = append(msg, strings.Repeat("abcdefgh", 8)...)
		msg = append(msg, `"}`...)
	}
	msg = append(msg, ']')
	var f Client
	n := 0
	fn := func(c *Client) error { n += len(c.Data); return nil }
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if err := DecodeInto(msg, true, &f, fn); err != nil {
			b.Fatal(err)
		}
	}
	if n == 0 {
		b.Fatal("no data")
	}
}
