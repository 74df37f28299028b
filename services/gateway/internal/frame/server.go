package frame

import (
	"bytes"
	"sort"
	"strconv"
	"time"

	"github.com/amsrouter/ams/services/internal/jsonw"
	"github.com/amsrouter/ams/services/internal/timefmt"
)

// Stream describes a stream in server frames.
type Stream struct {
	ID    string
	Name  string
	Owner string
	// Metadata is the stream's metadata object text.
	Metadata string
	// PeerIdentity is the declared identity object text, "" if none.
	PeerIdentity string
	// LastSeq is the stream's highest seq.
	LastSeq uint64
}

func head(b []byte, typ string, s *Stream) jsonw.Object {
	o := jsonw.Begin(b)
	o.Str("type", typ)
	o.Str("stream_id", s.ID)
	o.Str("stream_name", s.Name)
	o.Str("owner_account_id", s.Owner)
	return o
}

func identity(o *jsonw.Object, s *Stream) {
	if s.PeerIdentity != "" {
		o.RawString("peer_identity", s.PeerIdentity)
	}
}

// AppendToken appends a `token` frame. seq is its last member, which SeqOf
// relies on.
func AppendToken(b []byte, s *Stream, ts time.Time, data string, seq uint64) []byte {
	o := head(b, "token", s)
	o.Key("ts")
	o.B = append(o.B, '"')
	o.B = timefmt.Append(o.B, ts)
	o.B = append(o.B, '"')
	o.Str("data", data)
	identity(&o, s)
	o.Uint("seq", seq)
	return o.End()
}

// AppendStreamMetadata appends a `stream_metadata` frame.
func AppendStreamMetadata(b []byte, s *Stream, metadata string, ts time.Time, seq uint64) []byte {
	o := head(b, "stream_metadata", s)
	o.RawString("metadata", metadata)
	o.Str("ts", timefmt.Format(ts))
	identity(&o, s)
	o.Uint("seq", seq)
	return o.End()
}

// AppendStreamJoined appends a `stream_joined` frame.
func AppendStreamJoined(b []byte, s *Stream) []byte {
	o := head(b, "stream_joined", s)
	o.RawString("metadata", s.Metadata)
	identity(&o, s)
	o.Uint("last_seq", s.LastSeq)
	return o.End()
}

// AppendStreamLeft appends a `stream_left` frame.
func AppendStreamLeft(b []byte, s *Stream) []byte {
	o := head(b, "stream_left", s)
	identity(&o, s)
	o.Uint("last_seq", s.LastSeq)
	return o.End()
}

// AppendReplayGap appends a `replay_gap` frame.
func AppendReplayGap(b []byte, s *Stream, requested, firstAvailable uint64) []byte {
	o := head(b, "replay_gap", s)
	o.Uint("requested_seq", requested)
	o.Uint("first_available_seq", firstAvailable)
	return o.End()
}

// Pong is the `pong` frame.
var Pong = []byte(`{"type":"pong"}`)

// AppendSubscribed appends a `subscribed` frame; a nil subscription is null.
func AppendSubscribed(b []byte, subscription []string, subscribed []string) []byte {
	o := jsonw.Begin(b)
	o.Str("type", "subscribed")
	appendSubscription(&o, subscription)
	o.StrArray("subscribed_streams", subscribed)
	return o.End()
}

func appendSubscription(o *jsonw.Object, subscription []string) {
	if subscription == nil {
		o.Null("subscription")
	} else {
		o.StrArray("subscription", subscription)
	}
}

// AppendPeers appends a JSON array of stream entries, the shape of
// `peers` and of inspect's `streams`.
func AppendPeers(b []byte, peers []Stream) []byte {
	b = append(b, '[')
	for i := range peers {
		if i > 0 {
			b = append(b, ',')
		}
		s := &peers[i]
		o := jsonw.Begin(b)
		o.Str("stream_id", s.ID)
		o.Str("stream_name", s.Name)
		o.Str("owner_account_id", s.Owner)
		o.RawString("metadata", s.Metadata)
		identity(&o, s)
		o.Uint("last_seq", s.LastSeq)
		b = o.End()
	}
	return append(b, ']')
}

// Joined is the content of a `joined` frame.
type Joined struct {
	ConversationID string
	// Own is the connection's stream; nil for an observer.
	Own           *Stream
	SelfSubscribe bool
	Peers         []Stream
	Resumed       bool
	AccountID     string
	// Subscription is the filter, nil when absent (null).
	Subscription      []string
	SubscribedStreams []string
	MaxAgeMs          int64
	MaxEvents         int64
	Observer          bool
}

// AppendJoined appends a `joined` frame (spec 4.3, 4.7).
func AppendJoined(b []byte, j *Joined) []byte {
	o := jsonw.Begin(b)
	o.Str("type", "joined")
	o.Str("conversation_id", j.ConversationID)
	if j.Own != nil {
		o.Str("stream_id", j.Own.ID)
		o.Str("stream_name", j.Own.Name)
		o.RawString("metadata", j.Own.Metadata)
	} else {
		o.Null("stream_id")
		o.Null("stream_name")
		o.Null("metadata")
	}
	o.Bool("self_subscribe", j.SelfSubscribe)
	o.Key("peers")
	o.B = AppendPeers(o.B, j.Peers)
	if j.Own != nil && j.Own.PeerIdentity != "" {
		o.RawString("peer_identity", j.Own.PeerIdentity)
	}
	if j.Resumed {
		o.Bool("resumed", true)
	}
	if j.AccountID != "" {
		o.Str("account_id", j.AccountID)
	} else {
		o.Null("account_id")
	}
	var last uint64
	if j.Own != nil {
		last = j.Own.LastSeq
	}
	o.Uint("last_seq", last)
	appendSubscription(&o, j.Subscription)
	if j.Subscription != nil {
		o.StrArray("subscribed_streams", j.SubscribedStreams)
	}
	o.Key("retention")
	r := jsonw.Begin(o.B)
	r.Int("max_age_ms", j.MaxAgeMs)
	r.Int("max_events", j.MaxEvents)
	o.B = r.End()
	if j.Observer {
		o.Bool("observer", true)
	}
	return o.End()
}

// Kind is the type of an encoded event frame.
type Kind uint8

// Event kinds.
const (
	KindOther Kind = iota
	KindToken
	KindMetadata
)

var (
	tokenPrefix = []byte(`{"type":"token",`)
	metaPrefix  = []byte(`{"type":"stream_metadata",`)
)

// KindOf tells the kind of an event frame encoded by this package.
func KindOf(f []byte) Kind {
	switch {
	case bytes.HasPrefix(f, tokenPrefix):
		return KindToken
	case bytes.HasPrefix(f, metaPrefix):
		return KindMetadata
	}
	return KindOther
}

// SeqOf reads the seq of an event frame encoded by this package, where seq
// is the last member.
func SeqOf(f []byte) (uint64, bool) {
	n := len(f)
	if n < 10 || f[n-1] != '}' {
		return 0, false
	}
	var seq, mul uint64 = 0, 1
	i := n - 2
	for ; i >= 0 && f[i] >= '0' && f[i] <= '9'; i-- {
		seq += uint64(f[i]-'0') * mul
		mul *= 10
	}
	if i < 6 || i == n-2 || string(f[i-5:i+1]) != `"seq":` {
		return 0, false
	}
	return seq, true
}

// AppendCursorValue appends a cursor (spec 5.1) for the given positions,
// sorted by stream id: the form of SSE ids and of the `cursor` frame.
func AppendCursorValue(b []byte, pos map[string]uint64) []byte {
	ids := make([]string, 0, len(pos))
	for id := range pos {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for i, id := range ids {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, id...)
		b = append(b, ':')
		b = strconv.AppendUint(b, pos[id], 10)
	}
	return b
}

// AppendCursor appends a `cursor` frame [ext]: the resume cursor of a
// connection the server is about to close (4290 slow_consumer), sent only
// to clients that connected with a resume cursor.
func AppendCursor(b []byte, pos map[string]uint64) []byte {
	b = append(b, `{"type":"cursor","cursor":"`...)
	b = AppendCursorValue(b, pos)
	return append(b, `"}`...)
}
