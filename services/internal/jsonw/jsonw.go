// Package jsonw writes JSON objects with keys in a fixed order and opaque
// values spliced in byte for byte. encoding/json cannot do the second: it
// compacts json.RawMessage and Marshaler output, which would rewrite the
// metadata that AMS promises never to touch (spec: opaque payloads).
//
// An Object appends to a caller-owned buffer, so hot paths can reuse one.
package jsonw

import (
	"strconv"
	"unicode/utf8"
)

// Object builds one JSON object into B.
type Object struct {
	B     []byte
	first bool
}

// Begin starts an object appended to buf.
func Begin(buf []byte) Object {
	return Object{B: append(buf, '{'), first: true}
}

// End closes the object and returns the buffer.
func (o *Object) End() []byte {
	o.B = append(o.B, '}')
	return o.B
}

func (o *Object) key(k string) {
	if !o.first {
		o.B = append(o.B, ',')
	}
	o.first = false
	o.B = AppendString(o.B, k)
	o.B = append(o.B, ':')
}

// Str writes a string member.
func (o *Object) Str(k, v string) { o.key(k); o.B = AppendString(o.B, v) }

// StrOrNull writes a string member, or null when v is nil.
func (o *Object) StrOrNull(k string, v *string) {
	if v == nil {
		o.Null(k)
		return
	}
	o.Str(k, *v)
}

// Raw writes a member whose value is the JSON text raw, unchanged. The
// caller guarantees raw is one valid JSON value.
func (o *Object) Raw(k string, raw []byte) { o.key(k); o.B = append(o.B, raw...) }

// RawString is Raw for a string holding JSON text.
func (o *Object) RawString(k, raw string) { o.key(k); o.B = append(o.B, raw...) }

// Int writes an integer member.
func (o *Object) Int(k string, v int64) { o.key(k); o.B = strconv.AppendInt(o.B, v, 10) }

// Uint writes an unsigned integer member.
func (o *Object) Uint(k string, v uint64) { o.key(k); o.B = strconv.AppendUint(o.B, v, 10) }

// Bool writes a boolean member.
func (o *Object) Bool(k string, v bool) { o.key(k); o.B = strconv.AppendBool(o.B, v) }

// Null writes a null member.
func (o *Object) Null(k string) { o.key(k); o.B = append(o.B, "null"...) }

// Key writes a key and leaves the value to the caller (for arrays and
// nested objects).
func (o *Object) Key(k string) { o.key(k) }

// StrArray writes an array of strings.
func (o *Object) StrArray(k string, vs []string) {
	o.key(k)
	o.B = append(o.B, '[')
	for i, v := range vs {
		if i > 0 {
			o.B = append(o.B, ',')
		}
		o.B = AppendString(o.B, v)
	}
	o.B = append(o.B, ']')
}

const hex = "0123456789abcdef"

// safe[c] is true for ASCII bytes that need no escaping in a JSON string.
var safe = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return
}()

// Plain8 reports whether none of the eight bytes of x (little-endian) is
// '"', '\\', below 0x20 or above 0x7f: bytes that a JSON string holds as
// they are, and that a JSON scanner passes over without a look.
func Plain8(x uint64) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	zeroIn := func(v uint64) uint64 { return (v - ones) & ^v & highs }
	// With no high bit set, (x - 0x20…) & ^x & highs flags exactly the
	// bytes below 0x20.
	special := x&highs | (x-0x20*ones)&^x&highs | zeroIn(x^'"'*ones) | zeroIn(x^'\\'*ones)
	return special == 0
}

// load8 reads s[i:i+8] little-endian; the compiler makes it one load.
func load8(s string, i int) uint64 {
	_ = s[i+7]
	return uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
		uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
}

// AppendString appends s as a JSON string. Valid UTF-8 passes through
// unchanged (no HTML escaping), so a string decodes back to the same
// bytes; invalid bytes become U+FFFD, as encoding/json does.
func AppendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	slow, win := 0, 8
	for i := 0; i < len(s); {
		// Eight plain bytes at a time: the usual token is all of them.
		// Where eight are not plain, the next win bytes go one by one,
		// win doubling (to 64) while the tries keep failing, so text
		// with many escapes or runes does not pay for a try at each byte.
		// frame's skipString has the same loop: one generic helper for
		// both made the decoder's benchmarks 19–29% slower.
		if i >= slow {
			from := i
			for i+8 <= len(s) && Plain8(load8(s, i)) {
				i += 8
			}
			if i >= len(s) {
				break
			}
			if i > from {
				win = 8
			}
			slow = i + win
			win = min(2*win, 64)
		}
		c := s[i]
		if c < utf8.RuneSelf {
			if safe[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
