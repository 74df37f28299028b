// Package frame decodes client frames and encodes server frames of the AMS
// stream plane (spec 4.3, 4.4, 4.6).
//
// The decoder is strict where encoding/json is lenient: keys match exactly
// (encoding/json matches case-insensitively), an unpaired surrogate escape
// in `data` is an error (encoding/json silently replaces it), and opaque
// values (`metadata`) are kept as their exact bytes. Every error is a
// *wireerr.Error carrying the close reason of spec 4.2.
package frame

import (
	"bytes"

	"github.com/amsrouter/ams/services/internal/ids"
	"github.com/amsrouter/ams/services/internal/wireerr"
)

// Limits of spec 4.2 and 4.6.
const (
	MaxData          = 65536
	MaxMetadata      = 16 << 10
	MaxBatch         = 256
	MaxSubscribeItem = 100
	MaxTagLen        = 128
)

// Type is a client frame type.
type Type uint8

// Client frame types.
const (
	TypeToken Type = iota + 1
	TypeSetMetadata
	TypePing
	TypeSubscribe
)

// Client is one decoded client frame. Its slices, and Data when the
// message was decoded with DecodeInto, point into the message: copy what
// outlives the callback.
type Client struct {
	Type Type
	// Data is the token text (TypeToken).
	Data string
	// Tag is the optional idempotency tag of a token ("id").
	Tag string
	// Metadata is the exact JSON object text (TypeSetMetadata).
	Metadata []byte
	// Streams is the new filter (TypeSubscribe); All means `null`.
	Streams []string
	All     bool
}

var (
	errMalformed = wireerr.New(wireerr.MalformedFrame, "")
	errUnknown   = wireerr.New(wireerr.UnknownFrameType, "")
	errTooLarge  = wireerr.New(wireerr.TokenTooLarge, "")
	errMetaLarge = wireerr.New(wireerr.MetadataTooLarge, "")
	errSubscribe = wireerr.New(wireerr.InvalidSubscription, "")
)

// Decode decodes one text message and calls fn for each frame in order. A
// message is one object, or with batch an array of 1 to 256 objects. The
// whole message must be valid JSON before any frame takes effect; after
// that, a bad element stops the batch with its error once the elements
// before it took effect (spec 4.6). An error from fn stops decoding and is
// returned.
func Decode(msg []byte, batch bool, fn func(*Client) error) error {
	var f Client
	return decode(msg, batch, &f, false, fn)
}

// DecodeInto is Decode into a caller-owned Client, reused for each frame,
// with Data a view of the message rather than a copy: valid only until fn
// returns. The token path uses it to decode without allocating.
func DecodeInto(msg []byte, batch bool, f *Client, fn func(*Client) error) error {
	return decode(msg, batch, f, true, fn)
}

func decode(msg []byte, batch bool, f *Client, view bool, fn func(*Client) error) error {
	i := skipSpace(msg, 0)
	if i < len(msg) && msg[i] == '[' {
		if !batch {
			// Still malformed JSON first: the same code either way.
			return errMalformed
		}
		return decodeBatch(msg, i, f, view, fn)
	}
	// skipValue validates the UTF-8 of every string, and outside strings
	// only ASCII is valid JSON: no separate UTF-8 pass is needed.
	end, err := skipValue(msg, i, 0)
	if err != nil || skipSpace(msg, end) != len(msg) {
		return errMalformed
	}
	*f = Client{}
	if err := decodeObject(msg[i:end], f, view, nil); err != nil {
		return err
	}
	return fn(f)
}

// decodeBatch decodes the array that starts at msg[i]. One validating
// pass counts its elements, so the array's size bound and its
// well-formedness hold before any frame takes effect; the frames are then
// decoded in a second pass, each element's end being where decodeObject
// stopped reading its members.
func decodeBatch(msg []byte, i int, f *Client, view bool, fn func(*Client) error) error {
	n := 0
	j := skipSpace(msg, i+1)
	if j < len(msg) && msg[j] == ']' {
		return errMalformed // empty
	}
	for {
		e, err := skipValue(msg, j, 1)
		if err != nil || n == MaxBatch {
			return errMalformed
		}
		n++
		j = skipSpace(msg, e)
		if j >= len(msg) {
			return errMalformed
		}
		if msg[j] == ']' {
			break
		}
		if msg[j] != ',' {
			return errMalformed
		}
		j = skipSpace(msg, j+1)
	}
	if skipSpace(msg, j+1) != len(msg) {
		return errMalformed
	}
	j = skipSpace(msg, i+1)
	for range n {
		var e int
		*f = Client{}
		if err := decodeObject(msg[j:], f, view, &e); err != nil {
			return err
		}
		e += j
		if err := fn(f); err != nil {
			return err
		}
		j = skipSpace(msg, e)
		j = skipSpace(msg, j+1) // past ',' or ']'
	}
	return nil
}

// decodeObject decodes the validated JSON value that starts b into f and,
// if end is not nil, sets *end to the index past the object.
func decodeObject(b []byte, f *Client, view bool, end *int) error {
	if b[0] != '{' {
		return errMalformed
	}
	var typ, data, meta, streams, tag []byte
	var hasStreams bool
	i := skipSpace(b, 1)
	for i < len(b) && b[i] != '}' {
		ke := StringEnd(b, i)
		key := b[i:ke]
		i = skipSpace(b, ke)
		i = skipSpace(b, i+1) // ':'
		ve := ValueEnd(b, i)
		val := b[i:ve]
		k := string(key) // no allocation: compared, not kept
		if hasEscape(key) {
			u, err := unquote(key)
			if err != nil {
				u = ""
			}
			k = `"` + u + `"`
		}
		switch k {
		case `"type"`:
			typ = val
		case `"data"`:
			data = val
		case `"metadata"`:
			meta = val
		case `"streams"`:
			streams, hasStreams = val, true
		case `"id"`:
			tag = val
		}
		i = skipSpace(b, ve)
		if i < len(b) && b[i] == ',' {
			i = skipSpace(b, i+1)
		}
	}
	if end != nil {
		*end = i + 1
	}
	if len(typ) == 0 || typ[0] != '"' {
		return errMalformed
	}
	t := string(typ)
	if hasEscape(typ) {
		u, err := unquote(typ)
		if err != nil {
			return errMalformed
		}
		t = `"` + u + `"`
	}
	switch t {
	case `"token"`:
		f.Type = TypeToken
		if len(data) == 0 || data[0] != '"' {
			return errMalformed
		}
		var s string
		var err error
		if view {
			s, err = unquoteView(data)
		} else {
			s, err = unquote(data)
		}
		if err != nil {
			return errMalformed
		}
		if len(s) > MaxData {
			return errTooLarge
		}
		f.Data = s
		if len(tag) > 0 && string(tag) != "null" {
			if tag[0] != '"' {
				return errMalformed
			}
			s, err := unquote(tag)
			if err != nil || s == "" || len(s) > MaxTagLen {
				return errMalformed
			}
			f.Tag = s
		}
	case `"set_metadata"`:
		f.Type = TypeSetMetadata
		if len(meta) == 0 || meta[0] != '{' {
			return errMalformed
		}
		if len(meta) > MaxMetadata {
			return errMetaLarge
		}
		f.Metadata = meta
	case `"ping"`:
		f.Type = TypePing
	case `"subscribe"`:
		f.Type = TypeSubscribe
		if !hasStreams {
			return errSubscribe
		}
		all, items, err := parseStreamList(streams)
		if err != nil {
			return err
		}
		f.All, f.Streams = all, items
	default:
		return errUnknown
	}
	return nil
}

func hasEscape(lit []byte) bool { return bytes.IndexByte(lit, '\\') >= 0 }

// parseStreamList reads `null` or an array of stream ids and names.
func parseStreamList(v []byte) (all bool, items []string, err error) {
	if string(v) == "null" {
		return true, nil, nil
	}
	if v[0] != '[' {
		return false, nil, errSubscribe
	}
	items = []string{}
	i := skipSpace(v, 1)
	for i < len(v) && v[i] != ']' {
		e, _ := skipValue(v, i, 1)
		if v[i] != '"' {
			return false, nil, errSubscribe
		}
		s, uerr := unquote(v[i:e])
		if uerr != nil {
			return false, nil, errSubscribe
		}
		items = append(items, s)
		if len(items) > MaxSubscribeItem {
			return false, nil, errSubscribe
		}
		i = skipSpace(v, e)
		if i < len(v) && v[i] == ',' {
			i = skipSpace(v, i+1)
		}
	}
	items, ok := NormalizeFilter(items)
	if !ok {
		return false, nil, errSubscribe
	}
	return false, items, nil
}

// NormalizeFilter checks filter items (stream ids or stream names, spec
// 5.2) and removes duplicates, keeping the first occurrence's order.
func NormalizeFilter(items []string) ([]string, bool) {
	if len(items) > MaxSubscribeItem {
		return nil, false
	}
	out := items[:0:0]
	seen := make(map[string]struct{}, len(items))
	for _, it := range items {
		if !ids.ValidStreamID(it) && !ids.ValidStreamName(it) {
			return nil, false
		}
		if _, dup := seen[it]; dup {
			continue
		}
		seen[it] = struct{}{}
		out = append(out, it)
	}
	return out, true
}
