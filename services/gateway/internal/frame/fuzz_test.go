package frame

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/amsrouter/ams/services/internal/ids"
	"github.com/amsrouter/ams/services/internal/wireerr"
)

// The reference model of the fuzz targets below: encoding/json for the
// syntax, plus the rules where this package is deliberately stricter
// (valid UTF-8, nesting of at most maxDepth, unpaired surrogate escapes
// refused where a string's text matters).

// nesting is the deepest nesting of arrays and objects in valid JSON.
func nesting(b []byte) int {
	depth, deepest := 0, 0
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
			depth++
			deepest = max(deepest, depth)
		case c == '}' || c == ']':
			depth--
		}
	}
	return deepest
}

// wellFormed is the whole-message rule: UTF-8, JSON, not too deep.
func wellFormed(b []byte) bool {
	return utf8.Valid(b) && json.Valid(b) && nesting(b) <= maxDepth
}

// hex4Of reads the 4 hex digits of a \u escape.
func hex4Of(s []byte) rune {
	var r rune
	for _, c := range s[:4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c-'a') + 10
		default:
			r |= rune(c-'A') + 10
		}
	}
	return r
}

// loneSurrogate reports a \u escape of an unpaired UTF-16 surrogate in a
// valid JSON string literal (quotes included).
func loneSurrogate(lit []byte) bool {
	body := lit[1 : len(lit)-1]
	for i := 0; i < len(body); i++ {
		if body[i] != '\\' {
			continue
		}
		if body[i+1] != 'u' {
			i++
			continue
		}
		r := hex4Of(body[i+2:])
		i += 5
		switch {
		case r >= 0xDC00 && r <= 0xDFFF:
			return true
		case r >= 0xD800 && r <= 0xDBFF:
			if i+6 >= len(body) || body[i+1] != '\\' || body[i+2] != 'u' {
				return true
			}
			if r2 := hex4Of(body[i+3:]); r2 < 0xDC00 || r2 > 0xDFFF {
				return true
			}
			i += 6
		}
	}
	return false
}

// strictString reads a JSON string value as this package does: ok false
// for another type or an unpaired surrogate.
func strictString(v json.RawMessage) (string, bool) {
	var s string
	if len(v) == 0 || v[0] != '"' || loneSurrogate(v) || json.Unmarshal(v, &s) != nil {
		return "", false
	}
	return s, true
}

// members reads a JSON object's members in order, keys unescaped.
func members(obj []byte) (keys []string, vals []json.RawMessage) {
	dec := json.NewDecoder(bytes.NewReader(obj))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, nil
	}
	for dec.More() {
		tok, _ := dec.Token()
		var v json.RawMessage
		_ = dec.Decode(&v)
		keys, vals = append(keys, tok.(string)), append(vals, v)
	}
	return keys, vals
}

func codeOf(err error) string {
	if err == nil {
		return ""
	}
	if we, ok := wireerr.As(err); ok {
		return we.Code.Name
	}
	return "untyped: " + err.Error()
}

// FuzzDecodeEmitBody: an HTTP emit body (spec 5.3) against the reference
// model: invalid_json unless one well-formed JSON object; invalid_token_data
// unless exactly one of `data` (a string) or `tokens` (1 to 256 strings),
// an unpaired surrogate being bad data; token_too_large for a token over
// 64 KiB; otherwise the tokens are exactly the strings sent. Members are
// read as in a WebSocket frame: keys unescaped, the last repeat winning.
func FuzzDecodeEmitBody(f *testing.F) {
	for _, s := range []string{`{"data":"x"}`, `{"tokens":["a","b"]}`, `{"data":""}`, `{"tokens":[]}`,
		`{"data":"x","tokens":["y"]}`, `{"data":1}`, `{"tokens":["\ud83d"]}`, ` {"tokens":["a"],"extra":{}} `,
		`[]`, `{`, `{"data":"\u0000"}`, `{"tokens":[` + `"a",` + `"b"]}`, `{"Data":"x","tokens":["y","z"]}`,
		`{"tokens":["\ud83d\ude00","\\ud800"]}`, `{"data":"a"} `, `{"data":"a"}{}`, `{"tokens":[null]}`,
		`{"d\u0061ta":"x"}`, `{"data":"a","data":"b"}`, `{"data":1,"data":"a"}`, `{"data":"a","t\u006fkens":["b"]}`,
		`{"d\ud800ata":"x"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		tokens, err := DecodeEmitBody(body)
		got := codeOf(err)
		if err == nil && (len(tokens) == 0 || len(tokens) > MaxEmitTokens) {
			t.Fatalf("accepted %d tokens", len(tokens))
		}
		trimmed := bytes.Trim(body, " \t\r\n")
		if !wellFormed(body) || trimmed[0] != '{' {
			if got != wireerr.InvalidJSON.Name {
				t.Fatalf("body %q: %q, want invalid_json", body, got)
			}
			return
		}
		// Members as the WebSocket decoder reads them: keys compare
		// unescaped, the last of repeated keys wins.
		var data, list json.RawMessage
		var hasData, hasList bool
		keys, vals := members(trimmed)
		for i, k := range keys {
			switch k {
			case "data":
				data, hasData = vals[i], true
			case "tokens":
				list, hasList = vals[i], true
			}
		}
		want, wantCode := modelEmit(data, hasData, list, hasList)
		if got != wantCode {
			t.Fatalf("body %q: %q, want %q", body, got, wantCode)
		}
		if err == nil && strings.Join(tokens, "\x00|") != strings.Join(want, "\x00|") {
			t.Fatalf("body %q: tokens %q, want %q", body, tokens, want)
		}
	})
}

func modelEmit(data json.RawMessage, hasData bool, list json.RawMessage, hasList bool) ([]string, string) {
	if hasData == hasList {
		return nil, wireerr.InvalidTokenData.Name
	}
	str := func(v json.RawMessage) (string, string) {
		s, ok := strictString(v)
		switch {
		case !ok:
			return "", wireerr.InvalidTokenData.Name
		case len(s) > MaxData:
			return "", wireerr.TokenTooLarge.Name
		}
		return s, ""
	}
	if hasData {
		s, code := str(data)
		return []string{s}, code
	}
	var items []json.RawMessage
	if json.Unmarshal(list, &items) != nil || list[0] != '[' {
		return nil, wireerr.InvalidTokenData.Name
	}
	var out []string
	for _, it := range items {
		s, code := str(it)
		if code != "" {
			return nil, code
		}
		if out = append(out, s); len(out) > MaxEmitTokens {
			return nil, wireerr.InvalidTokenData.Name
		}
	}
	if len(out) == 0 {
		return nil, wireerr.InvalidTokenData.Name
	}
	return out, ""
}

// modelFrame is the reference reading of one client frame object.
func modelFrame(obj json.RawMessage) (Client, string) {
	var c Client
	if obj[0] != '{' {
		return c, wireerr.MalformedFrame.Name
	}
	// The last of repeated members wins; keys compare unescaped.
	m := map[string]json.RawMessage{}
	keys, vals := members(obj)
	for i, k := range keys {
		m[k] = vals[i]
	}
	typ, ok := strictString(m["type"])
	if !ok {
		return c, wireerr.MalformedFrame.Name
	}
	switch typ {
	case "token":
		c.Type = TypeToken
		s, ok := strictString(m["data"])
		switch {
		case !ok:
			return c, wireerr.MalformedFrame.Name
		case len(s) > MaxData:
			return c, wireerr.TokenTooLarge.Name
		}
		c.Data = s
		if tag, present := m["id"]; present && string(tag) != "null" {
			s, ok := strictString(tag)
			if !ok || s == "" || len(s) > MaxTagLen {
				return c, wireerr.MalformedFrame.Name
			}
			c.Tag = s
		}
	case "set_metadata":
		c.Type = TypeSetMetadata
		md := m["metadata"]
		switch {
		case len(md) == 0 || md[0] != '{':
			return c, wireerr.MalformedFrame.Name
		case len(md) > MaxMetadata:
			return c, wireerr.MetadataTooLarge.Name
		}
		c.Metadata = md
	case "ping":
		c.Type = TypePing
	case "subscribe":
		c.Type = TypeSubscribe
		v, present := m["streams"]
		if !present {
			return c, wireerr.InvalidSubscription.Name
		}
		if string(v) == "null" {
			c.All = true
			break
		}
		var items []json.RawMessage
		if v[0] != '[' || json.Unmarshal(v, &items) != nil || len(items) > MaxSubscribeItem {
			return c, wireerr.InvalidSubscription.Name
		}
		c.Streams = []string{}
		seen := map[string]bool{}
		for _, it := range items {
			s, ok := strictString(it)
			if !ok || !(ids.ValidStreamID(s) || ids.ValidStreamName(s)) {
				return c, wireerr.InvalidSubscription.Name
			}
			if !seen[s] {
				seen[s] = true
				c.Streams = append(c.Streams, s)
			}
		}
	default:
		return c, wireerr.UnknownFrameType.Name
	}
	return c, ""
}

// modelDecode is the reference reading of a message: the frames that
// take effect and the error that stops it.
func modelDecode(msg []byte, batch bool) ([]Client, string) {
	if !wellFormed(msg) {
		return nil, wireerr.MalformedFrame.Name
	}
	trimmed := bytes.Trim(msg, " \t\r\n")
	if trimmed[0] != '[' {
		c, code := modelFrame(trimmed)
		if code != "" {
			return nil, code
		}
		return []Client{c}, ""
	}
	var elems []json.RawMessage
	_ = json.Unmarshal(trimmed, &elems)
	if !batch || len(elems) == 0 || len(elems) > MaxBatch {
		return nil, wireerr.MalformedFrame.Name
	}
	var out []Client
	for _, e := range elems {
		c, code := modelFrame(e)
		if code != "" {
			return out, code
		}
		out = append(out, c)
	}
	return out, ""
}

func sameFrame(a, b Client) bool {
	return a.Type == b.Type && a.Data == b.Data && a.Tag == b.Tag && bytes.Equal(a.Metadata, b.Metadata) &&
		a.All == b.All && strings.Join(a.Streams, ",") == strings.Join(b.Streams, ",") && (a.Streams == nil) == (b.Streams == nil)
}

var errStop = errors.New("stop")

// FuzzDecodeClient: a WebSocket text message (spec 4.2, 4.3, 4.6), one
// frame or with batch an array of 1 to 256, against the reference model.
// Nothing takes effect unless the whole message is well-formed JSON;
// then the frames take effect in order up to the first bad one, whose
// error is the typed code of spec 4.2 (malformed_frame,
// unknown_frame_type, token_too_large, metadata_too_large,
// invalid_subscription); each frame is exactly what the model reads.
// Decode and DecodeInto agree, and an error from the callback (after
// stop frames) stops decoding and is returned.
func FuzzDecodeClient(f *testing.F) {
	for _, s := range []string{`{"type":"token","data":"x"}`, `[{"type":"ping"}]`, `{"type":"set_metadata","metadata":{}}`,
		`{"type":"subscribe","streams":["a"]}`, `{"type":"token","data":"\ud83d\ude00","id":"t1"}`, `{`, `[`, `"\u`, `{"a":[[[[`,
		`{"type":"token","data":"a","data":"\ud800"}`, `{"t\u0079pe":"ping"}`, `{"type":"Token","data":"x"}`,
		`[{"type":"ping"},{"type":"nope"},{"type":"ping"}]`, `{"type":"subscribe","streams":null}`,
		`{"type":"subscribe","streams":["a","a","str_0123456789abcdef0123456789"]}`, `{"type":"token","data":"x","id":""}`,
		`{"type":"set_metadata","metadata":[]}`, `{"type":"token","data":"\\ud800"}`, `[]`, `{"type":"ping"} {}`} {
		f.Add([]byte(s), true, uint8(0))
		f.Add([]byte(s), false, uint8(1))
	}
	f.Fuzz(func(t *testing.T, msg []byte, batch bool, stop uint8) {
		want, wantCode := modelDecode(msg, batch)
		collect := func(into bool) ([]Client, error) {
			var got []Client
			fn := func(c *Client) error {
				cp := *c
				cp.Data = strings.Clone(c.Data)
				cp.Metadata = bytes.Clone(c.Metadata)
				cp.Streams = append([]string(nil), c.Streams...)
				if c.Streams != nil && len(c.Streams) == 0 {
					cp.Streams = []string{}
				}
				got = append(got, cp)
				if stop > 0 && len(got) == int(stop) {
					return errStop
				}
				return nil
			}
			if into {
				var reused Client
				return got, DecodeInto(msg, batch, &reused, fn)
			}
			return got, Decode(msg, batch, fn)
		}
		for _, into := range []bool{false, true} {
			got, err := collect(into)
			if stop > 0 && len(want) >= int(stop) {
				if !errors.Is(err, errStop) || len(got) != int(stop) {
					t.Fatalf("into=%v %q: callback error after %d frames, got %d frames and %v", into, msg, stop, len(got), err)
				}
				want = want[:stop]
			} else if codeOf(err) != wantCode {
				t.Fatalf("into=%v %q batch=%v: %q, want %q", into, msg, batch, codeOf(err), wantCode)
			}
			if len(got) != len(want) {
				t.Fatalf("into=%v %q: %d frames took effect, want %d", into, msg, len(got), len(want))
			}
			for i := range got {
				if !sameFrame(got[i], want[i]) {
					t.Fatalf("into=%v %q frame %d: %+v, want %+v", into, msg, i, got[i], want[i])
				}
			}
		}
	})
}

// TestDecodeSkipsValidatedText: the decoder validates a message once and
// then finds the ends of keys and values with StringEnd and ValueEnd.
// Messages whose ends are easy to get wrong (backslash runs before a
// quote, brackets and quotes inside strings, numbers and literals as the
// last member, spaces, 256 and 257 elements, a bad element after good
// ones) decode as the reference model reads them, with Decode and
// DecodeInto.
func TestDecodeSkipsValidatedText(t *testing.T) {
	msgs := []string{
		`{"type":"token","data":"a\\"}`,
		`{"type":"token","data":"a\\\\"}`,
		`{"type":"token","data":"a\\\""}`,
		`{"type":"token","data":"\"}]","id":"t\\"}`,
		`{"x":{"a":"}","b":["]","{",{"c":"\""}]},"type":"token","data":"y"}`,
		`{"type":"token","n":12.5e3,"data":"z","t":true}`,
		`{"data":"q","f":false,"type":"token","z":null}`,
		` { "type" : "token" , "data" : "s" , "n" : -1 } `,
		`{"type":"token","data":"x","id":null }`,
		`{"type":"token","data":"x","id" : null	, "n":1}`,
		`{"ty\u0070e":"token","d\"a":"no","data":"yes"}`,
		`[{"type":"ping"} , {"type":"token","data":"\\"} ]`,
		`[{"type":"token","data":"1"},{"type":"token","data":"\xff"}]`,
		`[{"type":"token","data":"1"},{"type":"token","data":"2"},]`,
		`[{"type":"token","data":"1"}]]`,
		`[ ]`,
		`[1,{"type":"ping"}]`,
		"[" + strings.Repeat(`{"type":"token","data":"\\\"x"},`, 255) + `{"type":"ping"}]`,
		"[" + strings.Repeat(`{"type":"ping"},`, 256) + `{"type":"ping"}]`,
	}
	for _, m := range msgs {
		for _, batch := range []bool{true, false} {
			want, wantCode := modelDecode([]byte(m), batch)
			for _, into := range []bool{false, true} {
				var got []Client
				fn := func(c *Client) error {
					cp := *c
					cp.Data = strings.Clone(c.Data)
					got = append(got, cp)
					return nil
				}
				var err error
				if into {
					var f Client
					err = DecodeInto([]byte(m), batch, &f, fn)
				} else {
					err = Decode([]byte(m), batch, fn)
				}
				if codeOf(err) != wantCode || len(got) != len(want) {
					t.Fatalf("%q batch=%v into=%v: %d frames, %q; want %d, %q", m, batch, into, len(got), codeOf(err), len(want), wantCode)
				}
				for i := range got {
					if !sameFrame(got[i], want[i]) {
						t.Fatalf("%q frame %d: %+v, want %+v", m, i, got[i], want[i])
					}
				}
			}
		}
	}
}
