package jsonw

import (
	"encoding/binary"
	"encoding/json"
	"strings"
	"testing"
)

func TestObjectOrderAndRaw(t *testing.T) {
	o := Begin(nil)
	o.Str("b", "x\"y\n")
	o.Raw("meta", []byte(`{"z": 1,  "a":[2, 1]}`))
	o.Int("n", -3)
	o.Bool("ok", true)
	o.StrOrNull("none", nil)
	o.StrArray("arr", []string{"p", "q"})
	got := string(o.End())
	want := `{"b":"x\"y\n","meta":{"z": 1,  "a":[2, 1]},"n":-3,"ok":true,"none":null,"arr":["p","q"]}`
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain", "ü∑😀", "\x00\x1f\"\\", "<script>&", "\xff\xfe", "\u2028"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		enc := AppendString(nil, s)
		var back string
		if err := json.Unmarshal(enc, &back); err != nil {
			t.Fatalf("invalid JSON %q: %v", enc, err)
		}
		std, _ := json.Marshal(s)
		var stdBack string
		_ = json.Unmarshal(std, &stdBack)
		if back != stdBack {
			t.Fatalf("decodes to %q, encoding/json gives %q", back, stdBack)
		}
	})
}

func BenchmarkAppendString(b *testing.B) {
	s := "The quick brown fox jumps over the lazy dog, \"quoted\" and ünïcode."
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendString(buf[:0], s)
	}
}

func TestPlain8(t *testing.T) {
	t.Parallel()
	for c := 0; c < 256; c++ {
		for pos := range 8 {
			w := []byte("abcdefgh")
			w[pos] = byte(c)
			want := c != '"' && c != '\\' && c >= 0x20 && c < 0x80
			if got := Plain8(binary.LittleEndian.Uint64(w)); got != want {
				t.Fatalf("Plain8 with byte %#x at %d = %v, want %v", c, pos, got, want)
			}
			if got := Plain8(load8(string(w), 0)); got != want {
				t.Fatalf("load8 with byte %#x at %d = %v, want %v", c, pos, got, want)
			}
		}
	}
}

// TestAppendStringEscapesAtEveryOffset: a byte that must be escaped, or a
// multi-byte rune, is found wherever it sits relative to the eight-byte
// steps of AppendString, and the text around it is kept.
func TestAppendStringEscapesAtEveryOffset(t *testing.T) {
	t.Parallel()
	for _, special := range []string{"\"", "\\", "\n", "\x01", "\x7f", "ü", "😀", "\xff", "\u2028"} {
		for n := range 24 {
			s := strings.Repeat("a", n) + special + strings.Repeat("b", 17-n%9)
			enc := AppendString(nil, s)
			var back string
			if err := json.Unmarshal(enc, &back); err != nil {
				t.Fatalf("%q: invalid JSON %q: %v", s, enc, err)
			}
			std, _ := json.Marshal(s)
			var want string
			_ = json.Unmarshal(std, &want)
			if back != want {
				t.Fatalf("%q decodes to %q, want %q", s, back, want)
			}
		}
	}
}

// BenchmarkAppendStringPlain: a token of 64 plain ASCII bytes, the common
// case on the token path.
func BenchmarkAppendStringPlain(b *testing.B) {
	s := strings.Repeat("abcdefgh", 8)
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendString(buf[:0], s)
	}
}
