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

// AppendString appends s as a JSON string. Valid UTF-8 passes through
// unchanged (no HTML escaping), so a string decodes back to the same
// bytes; invalid bytes become U+FFFD, as encoding/json does.
func AppendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
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
