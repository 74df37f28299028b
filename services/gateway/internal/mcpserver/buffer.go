package mcpserver

import (
	"bytes"
	"context"
	"strconv"
	"sync"
)

// Notification methods (spec 5.5).
const (
	notifyPrefix    = "notifications/ams/"
	methodTruncated = notifyPrefix + "truncated"
	methodClosed    = notifyPrefix + "closed"
)

// Buffer bounds (spec 5.5).
const (
	MaxBufferFrames = 1000
	MaxBufferBytes  = 1 << 20
	MaxRideAlong    = 64
)

// entry is one buffered notification: its method and params (the server
// frame minus `type`, its bytes otherwise untouched).
type entry struct {
	method string
	params []byte
	// ack, if set, is called once the client got the entry (drained by
	// ams_recv or ride-along): it advances the session's cursor.
	ack func()
	// marker: a truncation marker; dropped counts what it stands for.
	marker  bool
	dropped int
}

func (e *entry) size() int { return len(e.method) + len(e.params) }

// notification converts a server frame to a notification entry:
// `notifications/ams/<type>` with the frame minus `type` as params. Frames
// are produced by package frame and always start with the type member.
func notification(f []byte) (entry, bool) {
	const head = `{"type":"`
	if !bytes.HasPrefix(f, []byte(head)) {
		return entry{}, false
	}
	end := bytes.IndexByte(f[len(head):], '"')
	if end < 0 {
		return entry{}, false
	}
	typ := string(f[len(head) : len(head)+end])
	rest := f[len(head)+end+1:]
	var params []byte
	switch {
	case len(rest) > 0 && rest[0] == ',':
		params = make([]byte, 0, len(rest))
		params = append(params, '{')
		params = append(params, rest[1:]...)
	case len(rest) > 0 && rest[0] == '}':
		params = []byte("{}")
	default:
		return entry{}, false
	}
	return entry{method: notifyPrefix + typ, params: params}, true
}

// closedEntry is the notifications/ams/closed entry of a wire that ended.
func closedEntry(conversationID string, code int, reason string) entry {
	b := []byte(`{"conversation_id":`)
	b = strconv.AppendQuote(b, conversationID)
	b = append(b, `,"code":`...)
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, `,"reason":`...)
	b = strconv.AppendQuote(b, reason)
	b = append(b, '}')
	return entry{method: methodClosed, params: b}
}

// buffer is a session's frames not yet given to the client (spec 5.5):
// at most MaxBufferFrames or MaxBufferBytes; overflow drops the oldest and
// leaves a truncation marker at the gap.
type buffer struct {
	mu      sync.Mutex
	entries []entry
	bytes   int
	// dropped counts frames dropped since the last ams_recv.
	dropped int
	// signal is closed and replaced whenever entries are added.
	signal chan struct{}
}

func newBuffer() *buffer { return &buffer{signal: make(chan struct{})} }

// add appends an entry, dropping the oldest frames if the bounds are
// exceeded.
func (b *buffer) add(e entry) {
	b.mu.Lock()
	b.entries = append(b.entries, e)
	b.bytes += e.size()
	b.trim()
	close(b.signal)
	b.signal = make(chan struct{})
	b.mu.Unlock()
}

// trim drops the oldest frames beyond the bounds; the marker at the front
// counts them. b.mu is held.
func (b *buffer) trim() {
	frames := len(b.entries)
	hasMarker := frames > 0 && b.entries[0].marker
	if hasMarker {
		frames--
	}
	if frames <= MaxBufferFrames && b.bytes <= MaxBufferBytes {
		return
	}
	start := 0
	if hasMarker {
		start = 1
	}
	n := 0
	for i := start; i < len(b.entries)-1; i++ {
		if frames-n <= MaxBufferFrames && b.bytes <= MaxBufferBytes {
			break
		}
		b.bytes -= b.entries[i].size()
		n++
	}
	if n == 0 {
		return
	}
	var m entry
	if hasMarker {
		m = b.entries[0]
		b.bytes -= m.size()
	} else {
		m = entry{method: methodTruncated, marker: true}
	}
	m.dropped += n
	m.params = []byte(`{"dropped":` + strconv.Itoa(m.dropped) + `}`)
	rest := b.entries[start+n:]
	out := make([]entry, 0, len(rest)+1)
	out = append(out, m)
	out = append(out, rest...)
	b.entries = out
	b.bytes += m.size()
	b.dropped += n
}

// take removes and returns up to max of the oldest entries (0: all).
func (b *buffer) take(max int) []entry {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := len(b.entries)
	if max > 0 && n > max {
		n = max
	}
	out := make([]entry, n)
	copy(out, b.entries[:n])
	for i := range out {
		b.bytes -= out[i].size()
	}
	b.entries = append(b.entries[:0:0], b.entries[n:]...)
	return out
}

// recv waits until an entry is buffered or ctx ends, then takes every
// entry and the count of frames dropped since the last recv.
func (b *buffer) recv(ctx context.Context, stop <-chan struct{}) ([]entry, int) {
	for {
		b.mu.Lock()
		if len(b.entries) > 0 {
			b.mu.Unlock()
			break
		}
		sig := b.signal
		b.mu.Unlock()
		select {
		case <-sig:
			continue
		case <-ctx.Done():
		case <-stop:
		}
		break
	}
	out := b.take(0)
	b.mu.Lock()
	dropped := b.dropped
	b.dropped = 0
	b.mu.Unlock()
	return out, dropped
}

func (b *buffer) len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.entries)
}

// reset forgets every entry (the session moved to another gateway, which
// rebuilds what the client has not got from the cursor).
func (b *buffer) reset() {
	b.mu.Lock()
	b.entries = nil
	b.bytes = 0
	b.mu.Unlock()
}

// acknowledge runs the acks of entries the client got.
func acknowledge(es []entry) {
	for i := range es {
		if es[i].ack != nil {
			es[i].ack()
		}
	}
}
