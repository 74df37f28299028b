package controlplane

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// Members are the members of a request object, each value as its exact
// JSON text: the HTTP body's members, or a gRPC request's fields written
// as the JSON they stand for. The readers below are the one place where a
// member's type and bounds are checked.
type Members map[string]json.RawMessage

func isNull(v json.RawMessage) bool { return v == nil || string(v) == "null" }

// String reads an optional string member: absent, null and "" give "".
// ok is false when the member holds another type.
func (m Members) String(k string) (s string, ok bool) {
	v, present := m[k]
	if !present || isNull(v) {
		return "", true
	}
	if len(v) == 0 || v[0] != '"' || json.Unmarshal(v, &s) != nil {
		return "", false
	}
	return s, true
}

// Object reads an optional JSON object member of at most max bytes:
// absent or null give def. The value's bytes are kept exactly; it must be
// one object with no surrounding space.
func (m Members) Object(k string, max int, def string) (string, bool) {
	v, present := m[k]
	if !present || isNull(v) {
		return def, true
	}
	if len(v) == 0 || v[0] != '{' || v[len(v)-1] != '}' || len(v) > max || !utf8.Valid(v) || !json.Valid(v) {
		return "", false
	}
	return string(v), true
}

// Int reads an optional integer member within [lo, hi]: absent or null
// give present=false. ok is false for non-integers and out-of-range values.
func (m Members) Int(k string, lo, hi int64) (n int64, present, ok bool) {
	v, present := m[k]
	if !present || isNull(v) {
		return 0, false, true
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil || n < lo || n > hi {
		return 0, true, false
	}
	return n, true, true
}
