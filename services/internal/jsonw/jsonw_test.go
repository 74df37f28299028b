package jsonw

import (
	"encoding/json"
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
