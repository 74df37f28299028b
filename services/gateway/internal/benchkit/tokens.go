package benchkit

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// The data of a benchmark token: the writer's index (4 digits), the token
// index k (10 digits, 1, 2, …) and the intended send time in Unix
// nanoseconds (19 digits), padded with 'x' to the token size. Readers and
// raw-NATS subscribers parse it back to account for every token and to
// measure publish → deliver latency on the one clock of this machine.
const (
	dataWriterLen = 4
	dataKLen      = 10
	dataTimeLen   = 19
	// MinTokenSize is the smallest token data size.
	MinTokenSize = dataWriterLen + dataKLen + dataTimeLen
)

// AppendData appends a token's data of size bytes (at least MinTokenSize).
func AppendData(b []byte, writer int, k int64, sentUnixNano int64, size int) []byte {
	start := len(b)
	b = appendPadded(b, int64(writer), dataWriterLen)
	b = appendPadded(b, k, dataKLen)
	b = appendPadded(b, sentUnixNano, dataTimeLen)
	for len(b)-start < size {
		b = append(b, 'x')
	}
	return b
}

func appendPadded(b []byte, v int64, width int) []byte {
	var tmp [20]byte
	d := strconv.AppendInt(tmp[:0], v, 10)
	for i := len(d); i < width; i++ {
		b = append(b, '0')
	}
	return append(b, d...)
}

// ParseData reads back what AppendData wrote.
func ParseData(d []byte) (writer int, k int64, sentUnixNano int64, ok bool) {
	if len(d) < MinTokenSize {
		return 0, 0, 0, false
	}
	w, ok1 := atoi(d[:dataWriterLen])
	k, ok2 := atoi(d[dataWriterLen : dataWriterLen+dataKLen])
	ts, ok3 := atoi(d[dataWriterLen+dataKLen : MinTokenSize])
	return int(w), k, ts, ok1 && ok2 && ok3
}

func atoi(b []byte) (int64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var v int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	return v, true
}

// AppendTokenFrame appends the client frame {"type":"token","data":…}
// (the data needs no JSON escaping: AppendData writes digits and 'x').
func AppendTokenFrame(b []byte, data []byte) []byte {
	b = append(b, `{"type":"token","data":"`...)
	b = append(b, data...)
	return append(b, `"}`...)
}

// EachFrame calls fn with every frame of a server message: the message
// itself, or each element of an array (batching, spec 4.6). It stops when
// fn returns false. It tracks strings and nesting, so any valid JSON
// works; it does not validate.
func EachFrame(msg []byte, fn func(frame []byte) bool) {
	eachFrame(msg, func(f []byte, _ *Token) bool { return fn(f) })
}

// Token is what the kit reads of a server token frame.
type Token struct {
	StreamID, Data []byte
	Seq            int64
}

// EachToken is EachFrame that also parses token frames: fn gets a token
// frame's parts in tok, and a nil tok for every other frame. A frame in
// the gateway's layout is parsed in the one pass that finds its end.
func EachToken(msg []byte, fn func(frame []byte, tok *Token) bool) {
	var t Token
	eachFrame(msg, func(f []byte, tok *Token) bool {
		if tok == nil {
			var ok bool
			if t.StreamID, t.Seq, t.Data, ok = ParseToken(f); ok {
				tok = &t
			}
		}
		return fn(f, tok)
	})
}

// eachFrame walks a message's frames; tok is set for token frames in the
// gateway's layout, which it measures without walking their strings one
// by one.
func eachFrame(msg []byte, fn func(frame []byte, tok *Token) bool) {
	msg = bytes.TrimSpace(msg)
	var t Token
	if len(msg) == 0 || msg[0] != '[' {
		if n, sid, data, seq := tokenLayout(msg); n == len(msg) && n > 0 {
			t = Token{StreamID: sid, Data: data, Seq: seq}
			fn(msg, &t)
			return
		}
		fn(msg, nil)
		return
	}
	depth, start := 0, -1
	for i := 1; i < len(msg); i++ {
		c := msg[i]
		switch {
		case c == '"':
			// Jump to the string's closing quote: the first quote not
			// escaped by an odd run of backslashes.
			end := stringEnd(msg, i+1)
			if end < 0 {
				return
			}
			i = end
		case c == '{' || c == '[':
			if depth == 0 {
				if n, sid, data, seq := tokenLayout(msg[i:]); n > 0 {
					t = Token{StreamID: sid, Data: data, Seq: seq}
					if !fn(msg[i:i+n], &t) {
						return
					}
					i += n - 1
					continue
				}
				start = i
			}
			depth++
		case c == '}' || c == ']':
			if depth == 0 {
				return // the array's end
			}
			depth--
			if depth == 0 && start >= 0 {
				if !fn(msg[start:i+1], nil) {
					return
				}
				start = -1
			}
		}
	}
}

// stringEnd returns the index of the quote that closes the JSON string
// whose text starts at from, or -1 if it does not close.
func stringEnd(msg []byte, from int) int {
	for {
		q := bytes.IndexByte(msg[from:], '"')
		if q < 0 {
			return -1
		}
		q += from
		n := 0
		for p := q - 1; p >= from && msg[p] == '\\'; p-- {
			n++
		}
		if n%2 == 0 {
			return q
		}
		from = q + 1
	}
}

var (
	typePrefix  = []byte(`{"type":"`)
	tokenPrefix = []byte(`{"type":"token","stream_id":"`)
	dataKey     = []byte(`,"data":"`)
	seqKey      = []byte(`,"seq":`)
)

// FrameType is the type of a server frame (its first member), nil if the
// frame does not start with one.
func FrameType(f []byte) []byte {
	if !bytes.HasPrefix(f, typePrefix) {
		return nil
	}
	rest := f[len(typePrefix):]
	i := bytes.IndexByte(rest, '"')
	if i < 0 {
		return nil
	}
	return rest[:i]
}

// ParseToken reads a server token frame as the gateway writes it (spec
// 4.3: type, stream_id, …, data, …, seq last). The data must be a
// benchmark token's (no escapes). ok is false for anything else.
func ParseToken(f []byte) (streamID []byte, seq int64, data []byte, ok bool) {
	if n, sid, d, seq := tokenLayout(f); n == len(f) && n > 0 {
		return sid, seq, d, true
	}
	if !bytes.HasPrefix(f, tokenPrefix) {
		return nil, 0, nil, false
	}
	rest := f[len(tokenPrefix):]
	i := bytes.IndexByte(rest, '"')
	if i < 0 {
		return nil, 0, nil, false
	}
	streamID = rest[:i]
	rest = rest[i:]
	i = bytes.Index(rest, dataKey)
	if i < 0 {
		return nil, 0, nil, false
	}
	rest = rest[i+len(dataKey):]
	i = bytes.IndexByte(rest, '"')
	if i < 0 {
		return nil, 0, nil, false
	}
	data = rest[:i]
	rest = rest[i:]
	i = bytes.LastIndex(rest, seqKey)
	if i < 0 {
		return nil, 0, nil, false
	}
	digits := rest[i+len(seqKey):]
	j := 0
	for j < len(digits) && digits[j] >= '0' && digits[j] <= '9' {
		j++
	}
	seq, ok = atoi(digits[:j])
	return streamID, seq, data, ok
}

// The members of a token frame as the gateway writes them (spec 4.3),
// each key with the end of the string before it.
var tokenKeys = [...][]byte{
	[]byte(`","stream_name":"`),
	[]byte(`","owner_account_id":"`),
	[]byte(`","ts":"`),
	[]byte(`","data":"`),
	[]byte(`","seq":`),
}

// tokenLayout reads the token frame at the start of f when it has exactly
// the layout the gateway writes with no peer identity and no escaped
// quote at the end of a string: {"type":"token","stream_id":"…",
// "stream_name":"…","owner_account_id":"…","ts":"…","data":"…","seq":N}.
// It returns the frame's length, or 0 for anything else, which the
// callers then walk in full.
func tokenLayout(f []byte) (n int, streamID, data []byte, seq int64) {
	if !bytes.HasPrefix(f, tokenPrefix) {
		return 0, nil, nil, 0
	}
	p := len(tokenPrefix)
	for i, key := range tokenKeys {
		q := bytes.IndexByte(f[p:], '"')
		if q < 0 || (q > 0 && f[p+q-1] == '\\') || !bytes.HasPrefix(f[p+q:], key) {
			return 0, nil, nil, 0
		}
		switch i {
		case 0:
			streamID = f[p : p+q]
		case len(tokenKeys) - 1:
			data = f[p : p+q]
		}
		p += q + len(key)
	}
	start := p
	for p < len(f) && f[p] >= '0' && f[p] <= '9' {
		p++
	}
	seq, ok := atoi(f[start:p])
	if !ok || p-start > 18 || p >= len(f) || f[p] != '}' {
		return 0, nil, nil, 0
	}
	return p + 1, streamID, data, seq
}

// Stream is a stream as the membership frames describe it.
type Stream struct {
	StreamID   string `json:"stream_id"`
	StreamName string `json:"stream_name"`
	LastSeq    int64  `json:"last_seq"`
}

// Joined is what the kit reads of a `joined` frame.
type Joined struct {
	StreamID string   `json:"stream_id"`
	LastSeq  int64    `json:"last_seq"`
	Resumed  bool     `json:"resumed"`
	Peers    []Stream `json:"peers"`
}

// ReplayGap is a `replay_gap` frame.
type ReplayGap struct {
	StreamID          string `json:"stream_id"`
	RequestedSeq      int64  `json:"requested_seq"`
	FirstAvailableSeq int64  `json:"first_available_seq"`
}

// decodeFrame decodes a (rare) non-token frame.
func decodeFrame(f []byte, v any) error { return json.Unmarshal(f, v) }
