package frame

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"unicode/utf8"
)

// skipStringRef is what skipString must answer, from encoding/json: the
// literal ends at the first quote after an even run of backslashes, and
// it is valid when encoding/json says so and it is UTF-8.
func skipStringRef(b []byte) (int, bool) {
	n := 0 // backslashes just before j
	for j := 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			n++
			continue
		case '"':
			if n%2 == 0 {
				lit := b[:j+1]
				return j + 1, json.Valid(lit) && utf8.Valid(lit)
			}
		}
		n = 0
	}
	return 0, false
}

// skipString agrees with encoding/json on random strings mixing plain
// ASCII (its eight-byte path) with every byte class it must stop at.
func TestSkipStringMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	pieces := []string{"a", "Z", "0", " ", "~", "\x7f", `"`, `\`, `\"`, `\\`, `\n`, `\u00e9`, `\u12`, `\x`,
		"\x00", "\x1f", "\n", "é", "€", "😀", "\xff", "\xc3", "\xe2\x82", "abcdefgh", "0123456789abcdef"}
	r := rand.New(rand.NewPCG(3, 4))
	for n := range 20000 {
		b := []byte{'"'}
		for range r.IntN(40) {
			p := pieces[r.IntN(len(pieces))]
			if r.IntN(3) > 0 {
				p = pieces[r.IntN(2)] // mostly plain runs
			}
			b = append(b, p...)
		}
		if r.IntN(4) > 0 {
			b = append(b, '"')
		}
		b = append(b, []byte("tail")[:r.IntN(5)]...)
		want, ok := skipStringRef(b)
		got, err := skipString(b, 0)
		if (err == nil) != ok || ok && got != want {
			t.Fatalf("case %d %q: skipString = %d, %v; want %d, valid %v", n, b, got, err, want, ok)
		}
	}
}

func BenchmarkSkipString(b *testing.B) {
	for _, s := range []string{
		`"000300000000000000421764147200123456789xxxxxxxxxxxxxxxxxxxxxxxxx",`,
		`"令牌在代理之间流动，网关按顺序把它们送到每个读者。",`,
	} {
		in := []byte(s)
		b.Run(fmt.Sprint(len(s)), func(b *testing.B) {
			for b.Loop() {
				if _, err := skipString(in, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
