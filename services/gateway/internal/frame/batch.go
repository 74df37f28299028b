package frame

import (
	"bytes"
	"strings"
)

// An event message of the data plane (one NATS message, one stored
// JetStream message) holds either one event frame or a batch: the token
// frames of one stream with consecutive seqs, as a JSON array whose
// elements are separated by ",\n". A frame of this package holds no raw
// newline as long as the raw JSON texts written into it (a stream's peer
// identity) hold none, which is what lets a reader split a batch with a
// byte search instead of a JSON scan. The writer's gateway batches the
// tokens of one client message; readers and replay take the batch apart
// again, so clients see the same frames either way.

// BatchOpen, BatchSep and BatchClose delimit a batch.
const (
	BatchOpen  = '['
	BatchSep   = ",\n"
	BatchClose = ']'
)

// Batchable reports whether frames built with this raw peer identity
// text can travel in a batch.
func Batchable(peerIdentity string) bool { return strings.IndexByte(peerIdentity, '\n') < 0 }

// IsBatch reports whether an event message is a batch (of one or more
// frames) rather than one bare frame.
func IsBatch(m []byte) bool { return len(m) > 0 && m[0] == BatchOpen }

// EachEvent calls fn with each event frame of an event message, in order,
// until fn returns false. It reports false if the message is malformed.
func EachEvent(m []byte, fn func(f []byte) bool) bool {
	if len(m) == 0 {
		return false
	}
	if !IsBatch(m) {
		fn(m)
		return true
	}
	if len(m) < 2 || m[len(m)-1] != BatchClose {
		return false
	}
	body := m[1 : len(m)-1]
	for {
		i := bytes.IndexByte(body, '\n')
		if i < 0 {
			if len(body) == 0 {
				return false
			}
			fn(body)
			return true
		}
		if i == 0 || body[i-1] != ',' {
			return false
		}
		if !fn(body[:i-1]) {
			return true
		}
		body = body[i+1:]
	}
}

// SeqRange returns the seqs of the first and the last event of an event
// message.
func SeqRange(m []byte) (first, last uint64, ok bool) {
	if !IsBatch(m) {
		s, ok := SeqOf(m)
		return s, s, ok
	}
	if len(m) < 2 || m[len(m)-1] != BatchClose {
		return 0, 0, false
	}
	body := m[1 : len(m)-1]
	head, tail := body, body
	if i := bytes.IndexByte(body, '\n'); i >= 0 {
		if i == 0 || body[i-1] != ',' {
			return 0, 0, false
		}
		head = body[:i-1]
		tail = body[bytes.LastIndexByte(body, '\n')+1:]
	}
	first, ok1 := SeqOf(head)
	last, ok2 := SeqOf(tail)
	if !ok1 || !ok2 || last < first {
		return 0, 0, false
	}
	return first, last, true
}
