package frame

import (
	"bytes"
	"encoding/binary"
	"errors"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"

	"github.com/amsrouter/ams/services/internal/jsonw"
)

// errSyntax is any JSON syntax error; its detail is never shown to clients.
var errSyntax = errors.New("invalid JSON")

// errSurrogate is a \u escape of an unpaired UTF-16 surrogate.
var errSurrogate = errors.New("unpaired surrogate")

// maxDepth bounds nesting so hostile input cannot exhaust the stack.
const maxDepth = 256

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// skipValue returns the index just past the JSON value starting at b[i]
// (no leading space), validating it completely.
func skipValue(b []byte, i, depth int) (int, error) {
	if i >= len(b) {
		return 0, errSyntax
	}
	switch c := b[i]; {
	case c == '"':
		return skipString(b, i)
	case c == '{':
		if depth >= maxDepth {
			return 0, errSyntax
		}
		i = skipSpace(b, i+1)
		if i < len(b) && b[i] == '}' {
			return i + 1, nil
		}
		for {
			if i >= len(b) || b[i] != '"' {
				return 0, errSyntax
			}
			var err error
			if i, err = skipString(b, i); err != nil {
				return 0, err
			}
			i = skipSpace(b, i)
			if i >= len(b) || b[i] != ':' {
				return 0, errSyntax
			}
			if i, err = skipValue(b, skipSpace(b, i+1), depth+1); err != nil {
				return 0, err
			}
			i = skipSpace(b, i)
			if i >= len(b) {
				return 0, errSyntax
			}
			if b[i] == '}' {
				return i + 1, nil
			}
			if b[i] != ',' {
				return 0, errSyntax
			}
			i = skipSpace(b, i+1)
		}
	case c == '[':
		if depth >= maxDepth {
			return 0, errSyntax
		}
		i = skipSpace(b, i+1)
		if i < len(b) && b[i] == ']' {
			return i + 1, nil
		}
		for {
			var err error
			if i, err = skipValue(b, i, depth+1); err != nil {
				return 0, err
			}
			i = skipSpace(b, i)
			if i >= len(b) {
				return 0, errSyntax
			}
			if b[i] == ']' {
				return i + 1, nil
			}
			if b[i] != ',' {
				return 0, errSyntax
			}
			i = skipSpace(b, i+1)
		}
	case c == 't':
		return lit(b, i, "true")
	case c == 'f':
		return lit(b, i, "false")
	case c == 'n':
		return lit(b, i, "null")
	case c == '-' || (c >= '0' && c <= '9'):
		return skipNumber(b, i)
	}
	return 0, errSyntax
}

func lit(b []byte, i int, s string) (int, error) {
	if len(b)-i < len(s) || string(b[i:i+len(s)]) != s {
		return 0, errSyntax
	}
	return i + len(s), nil
}

func skipNumber(b []byte, i int) (int, error) {
	if b[i] == '-' {
		i++
	}
	if i >= len(b) {
		return 0, errSyntax
	}
	switch {
	case b[i] == '0':
		i++
	case b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		return 0, errSyntax
	}
	if i < len(b) && b[i] == '.' {
		i++
		start := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == start {
			return 0, errSyntax
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		start := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == start {
			return 0, errSyntax
		}
	}
	return i, nil
}

// skipString validates the string starting at b[i] == '"' and returns the
// index past its closing quote. Raw bytes must be valid UTF-8 without
// control characters; escapes must be valid. Surrogate pairing is checked
// by unquote, which only runs on values whose text matters.
func skipString(b []byte, i int) (int, error) {
	i++
	slow, win := 0, 8
	for i < len(b) {
		// Eight plain ASCII bytes at a time (none a quote, a backslash, a
		// control character or part of a multi-byte rune). Where eight
		// are not plain, the next win bytes go byte by byte, win doubling
		// (to 64) while the tries keep failing.
		if i >= slow {
			from := i
			for i+8 <= len(b) && jsonw.Plain8(binary.LittleEndian.Uint64(b[i:])) {
				i += 8
			}
			if i >= len(b) {
				break
			}
			if i > from {
				win = 8
			}
			slow = i + win
			win = min(2*win, 64)
		}
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

// StringEnd returns the index past the closing quote of the string that
// starts at b[i] == '"', in JSON known to be well formed (validated by
// skipValue, or written by this package): a quote after an even run of
// backslashes ends it. It finds quotes with bytes.IndexByte instead of
// validating every byte again. It returns -1 if b ends first.
func StringEnd(b []byte, i int) int {
	i++
	for {
		q := bytes.IndexByte(b[i:], '"')
		if q < 0 {
			return -1
		}
		i += q
		bs := 0
		for j := i - 1; j >= 0 && b[j] == '\\'; j-- {
			bs++
		}
		i++
		if bs%2 == 0 {
			return i
		}
	}
}

// ValueEnd returns the index past the value that starts at b[i], in JSON
// known to be well formed, as StringEnd. It returns -1 if b ends first
// or holds no value at i.
func ValueEnd(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return StringEnd(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				if i = StringEnd(b, i); i < 0 {
					return -1
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return -1
	}
	// A number or a literal: it ends at a delimiter or at the end.
	j := i
	for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && !isSpace(b[j]) {
		j++
	}
	if j == i {
		return -1
	}
	return j
}

func unhex(c byte) rune {
	switch {
	case c >= '0' && c <= '9':
		return rune(c - '0')
	case c >= 'a' && c <= 'f':
		return rune(c - 'a' + 10)
	case c >= 'A' && c <= 'F':
		return rune(c - 'A' + 10)
	}
	return -1
}

func hex4(b []byte) rune {
	return unhex(b[0])<<12 | unhex(b[1])<<8 | unhex(b[2])<<4 | unhex(b[3])
}

// unquoteView is unquote returning, for a literal without escapes, a view
// of its bytes instead of a copy.
func unquoteView(lit []byte) (string, error) {
	body := lit[1 : len(lit)-1]
	if hasEscape(body) {
		return unquote(lit)
	}
	if len(body) == 0 {
		return "", nil
	}
	return unsafe.String(&body[0], len(body)), nil
}

// unquote decodes a JSON string literal already validated by skipString
// (quotes included). An unpaired surrogate escape is errSurrogate. The
// common case without escapes returns a copy of the bytes as they are.
func unquote(lit []byte) (string, error) {
	body := lit[1 : len(lit)-1]
	esc := -1
	for j, c := range body {
		if c == '\\' {
			esc = j
			break
		}
	}
	if esc < 0 {
		return string(body), nil
	}
	out := make([]byte, 0, len(body))
	out = append(out, body[:esc]...)
	for i := esc; i < len(body); {
		c := body[i]
		if c != '\\' {
			out = append(out, c)
			i++
			continue
		}
		switch body[i+1] {
		case '"', '\\', '/':
			out = append(out, body[i+1])
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r := hex4(body[i+2 : i+6])
			i += 6
			if utf16.IsSurrogate(r) {
				if r >= 0xDC00 || i+6 > len(body) || body[i] != '\\' || body[i+1] != 'u' {
					return "", errSurrogate
				}
				r2 := hex4(body[i+2 : i+6])
				if r2 < 0xDC00 || r2 > 0xDFFF {
					return "", errSurrogate
				}
				r = utf16.DecodeRune(r, r2)
				i += 6
			}
			out = utf8.AppendRune(out, r)
			continue
		}
		i += 2
	}
	return string(out), nil
}

// DecodeString decodes one JSON string literal (quotes included, nothing
// around it) by the decoder's rules for text that matters: valid UTF-8
// without control characters, valid escapes, and no unpaired surrogate
// escape (encoding/json would replace one with U+FFFD). ok is false
// otherwise. Other transports use it to read strings as frames are read.
func DecodeString(lit []byte) (s string, ok bool) {
	if len(lit) == 0 || lit[0] != '"' {
		return "", false
	}
	if end, err := skipString(lit, 0); err != nil || end != len(lit) {
		return "", false
	}
	s, err := unquote(lit)
	return s, err == nil
}

// ValidMetadata reports whether md, with no space around it, is what the
// decoder accepts as the `metadata` of a set_metadata frame: a JSON object
// of valid UTF-8, nested no deeper than it may be inside that frame (the
// frame's own object counting toward maxDepth). Its size is checked apart.
// Other transports use it so that the same metadata is accepted everywhere.
func ValidMetadata(md []byte) bool {
	if len(md) == 0 || md[0] != '{' || !utf8.Valid(md) {
		return false
	}
	end, err := skipValue(md, 0, 1)
	return err == nil && end == len(md)
}

// Member returns the raw value of a top-level member of a JSON object, for
// frames this package encoded (which are valid JSON without escaped keys).
func Member(obj []byte, name string) ([]byte, bool) {
	i := skipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return nil, false
	}
	i = skipSpace(obj, i+1)
	for i < len(obj) && obj[i] == '"' {
		ke, err := skipString(obj, i)
		if err != nil {
			return nil, false
		}
		key := obj[i+1 : ke-1]
		i = skipSpace(obj, ke)
		if i >= len(obj) || obj[i] != ':' {
			return nil, false
		}
		i = skipSpace(obj, i+1)
		ve, err := skipValue(obj, i, 1)
		if err != nil {
			return nil, false
		}
		if string(key) == name {
			return obj[i:ve], true
		}
		i = skipSpace(obj, ve)
		if i < len(obj) && obj[i] == ',' {
			i = skipSpace(obj, i+1)
		}
	}
	return nil, false
}
