package httpstream

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/amsrouter/ams/services/gateway/internal/frame"
)

// depth is the deepest nesting of arrays and objects in valid JSON.
func depth(b []byte) int {
	d, deepest := 0, 0
	in, esc := false, false
	for _, c := range b {
		switch {
		case in && esc:
			esc = false
		case in && c == '\\':
			esc = true
		case in && c == '"':
			in = false
		case in:
		case c == '"':
			in = true
		case c == '{' || c == '[':
			d++
			deepest = max(deepest, d)
		case c == '}' || c == ']':
			d--
		}
	}
	return deepest
}

// FuzzMetadataObject: a set-metadata body (spec 5.3) is accepted exactly
// when, without the JSON whitespace around it, it is one valid UTF-8
// JSON object of at most 16 KiB, nested at most 255 deep (what the
// WebSocket frame's bound of 256 leaves inside its object); what is kept
// is that exact text, and the same object sent in a WebSocket
// set_metadata frame is kept the same.
func FuzzMetadataObject(f *testing.F) {
	for _, s := range []string{`{}`, ` {"a":[1,2,{"b":null}]} `, `[]`, `{"a":1}{"b":2}`, `{"a":"\ud800"}`, "{\"a\":\"\xff\"}", `null`, ``,
		"\f{}", "\u00a0{}", "{}\u2028", `{"a":1e999999}`, `{"a":"\u0000"}`, ` { "b" : 1 , "a" : [ ] } `,
		`{"a":` + strings.Repeat("[", 254) + strings.Repeat("]", 254) + `}`, `{"a":` + strings.Repeat("[", 255) + strings.Repeat("]", 255) + `}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		md, ok := metadataObject(body)
		trimmed := bytes.Trim(body, " \t\r\n")
		var obj map[string]json.RawMessage
		want := len(trimmed) > 0 && trimmed[0] == '{' && len(trimmed) <= frame.MaxMetadata && utf8.Valid(trimmed) &&
			json.Unmarshal(trimmed, &obj) == nil && depth(trimmed) < 256
		if ok != want {
			t.Fatalf("metadataObject(%q) ok = %v, want %v", body, ok, want)
		}
		if !ok {
			return
		}
		if md != string(trimmed) {
			t.Fatalf("metadataObject(%q) = %q, want the body's text %q", body, md, trimmed)
		}
		msg := append([]byte(`{"type":"set_metadata","metadata":`), trimmed...)
		msg = append(msg, '}')
		err := frame.Decode(msg, false, func(c *frame.Client) error {
			if c.Type != frame.TypeSetMetadata || string(c.Metadata) != md {
				t.Fatalf("frame kept %q, HTTP %q", c.Metadata, md)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("HTTP accepted %q, the frame decoder refused it: %v", md, err)
		}
	})
}
