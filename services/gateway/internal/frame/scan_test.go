package frame

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"
	"unicode/utf8"
)

// skipStringBytewise is skipString without the eight-byte fast path: the
// reference it must agree with.
func skipStringBytewise(b []byte, i int) (int, error) {
	i++
	for i < len(b) {
		c := b[i]
		switch {
		case c == '"':
			return i + 1, nil
		case c == '\\':
			if i+1 >= len(b) {
				return 0, errSyntax
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) {
					return 0, errSyntax
				}
				for _, h := range b[i+2 : i+6] {
					if unhex(h) < 0 {
						return 0, errSyntax
					}
				}
				i += 6
			default:
				return 0, errSyntax
			}
		case c < 0x20:
			return 0, errSyntax
		case c < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size == 1 {
				return 0, errSyntax
			}
			i += size
		}
	}
	return 0, errSyntax
}

// skipString's eight-byte fast path changes no answer: random strings
// mixing plain ASCII with every byte class it must stop at.
func TestSkipStringMatchesBytewise(t *testing.T) {
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
		want, werr := skipStringBytewise(b, 0)
		got, gerr := skipString(b, 0)
		if got != want || (werr == nil) != (gerr == nil) {
			t.Fatalf("case %d %q: skipString = %d, %v; bytewise = %d, %v", n, b, got, gerr, want, werr)
		}
	}
}

func TestPlain8(t *testing.T) {
	t.Parallel()
	for c := 0; c < 256; c++ {
		for pos := range 8 {
			w := []byte("abcdefgh")
			w[pos] = byte(c)
			want := c != '"' && c != '\\' && c >= 0x20 && c < 0x80
			if got := plain8(binary.LittleEndian.Uint64(w)); got != want {
				t.Fatalf("plain8 with byte %#x at %d = %v, want %v", c, pos, got, want)
			}
		}
	}
}

func BenchmarkSkipString(b *testing.B) {
	for _, s := range []string{
		`"000300000000000000421764147200123456789xxxxxxxxxxxxxxxxxxxxxxxxx",`,
		`"令牌在代理之间流动，网关按顺序把它们送到每个读者。",`,
	} {
		for _, f := range []struct {
			name string
			skip func([]byte, int) (int, error)
		}{{"eight", skipString}, {"bytewise", skipStringBytewise}} {
			in := []byte(s)
			b.Run(fmt.Sprintf("%s/%d", f.name, len(s)), func(b *testing.B) {
				for b.Loop() {
					if _, err := f.skip(in, 0); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
