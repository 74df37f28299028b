package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Event is a server frame of the stream plane, or an event a client
// library adds (the SDK's Closed, for one). EventType is the frame's `type`.
type Event interface {
	EventType() string
}

// Joined is the first frame of every connection (spec 4.3). For an
// observer (4.7) StreamID, StreamName and Metadata are empty and Observer
// is true.
type Joined struct {
	ConversationID string          `json:"conversation_id"`
	StreamID       string          `json:"stream_id"`
	StreamName     string          `json:"stream_name"`
	Metadata       json.RawMessage `json:"metadata"`
	SelfSubscribe  bool            `json:"self_subscribe"`
	// Peers are the other live streams, in join order, whatever the filter.
	Peers        []Stream      `json:"peers"`
	PeerIdentity *PeerIdentity `json:"peer_identity,omitempty"`
	// Resumed is true when the connection took over its own live stream
	// (displace-and-resume, 4.5).
	Resumed   bool   `json:"resumed,omitempty"`
	AccountID string `json:"account_id"`
	// LastSeq is the own stream's highest seq (0 if none).
	LastSeq uint64 `json:"last_seq"`
	// Subscription is the read filter; nil when there is none (all peers),
	// empty (not nil) when it selects nothing.
	Subscription      []string  `json:"subscription"`
	SubscribedStreams []string  `json:"subscribed_streams,omitempty"`
	Retention         Retention `json:"retention"`
	Observer          bool      `json:"observer,omitempty"`
}

// Retention gives the replay bounds of the deployment (spec 5.1).
type Retention struct {
	MaxAgeMs  int64 `json:"max_age_ms"`
	MaxEvents int64 `json:"max_events"`
}

// Token is one emitted unit of a stream.
type Token struct {
	StreamID       string        `json:"stream_id"`
	StreamName     string        `json:"stream_name"`
	OwnerAccountID string        `json:"owner_account_id"`
	TS             time.Time     `json:"ts"`
	Data           string        `json:"data"`
	PeerIdentity   *PeerIdentity `json:"peer_identity,omitempty"`
	Seq            uint64        `json:"seq"`
}

// StreamJoined announces a stream that went live. Its LastSeq is the
// stream's highest seq at that moment: its next live event has LastSeq+1.
type StreamJoined struct {
	Stream
}

// StreamLeft announces a stream that left; no event of it follows.
type StreamLeft struct {
	StreamID       string        `json:"stream_id"`
	StreamName     string        `json:"stream_name"`
	OwnerAccountID string        `json:"owner_account_id"`
	PeerIdentity   *PeerIdentity `json:"peer_identity,omitempty"`
	LastSeq        uint64        `json:"last_seq"`
}

// StreamMetadata carries a stream's new metadata (a full replacement).
type StreamMetadata struct {
	StreamID       string          `json:"stream_id"`
	StreamName     string          `json:"stream_name"`
	OwnerAccountID string          `json:"owner_account_id"`
	Metadata       json.RawMessage `json:"metadata"`
	TS             time.Time       `json:"ts"`
	PeerIdentity   *PeerIdentity   `json:"peer_identity,omitempty"`
	Seq            uint64          `json:"seq"`
}

// ReplayGap tells that a stream's events from RequestedSeq up to
// FirstAvailableSeq-1 are no longer retained; its events continue from
// FirstAvailableSeq.
type ReplayGap struct {
	StreamID          string `json:"stream_id"`
	StreamName        string `json:"stream_name"`
	OwnerAccountID    string `json:"owner_account_id"`
	RequestedSeq      uint64 `json:"requested_seq"`
	FirstAvailableSeq uint64 `json:"first_available_seq"`
}

// Subscribed answers a subscribe frame (spec 5.2). Subscription is nil for
// "all peers".
type Subscribed struct {
	Subscription      []string `json:"subscription"`
	SubscribedStreams []string `json:"subscribed_streams"`
}

// Pong answers a ping.
type Pong struct{}

// CursorFrame is the resume cursor a server sends right before it closes
// a connection with 4290 slow_consumer, to clients that connected with a
// cursor.
type CursorFrame struct {
	Cursor string `json:"cursor"`
}

// Unknown is a frame of a type this package does not know. Clients must
// ignore it.
type Unknown struct {
	Type string
	Raw  json.RawMessage
}

func (Joined) EventType() string         { return "joined" }
func (Token) EventType() string          { return "token" }
func (StreamJoined) EventType() string   { return "stream_joined" }
func (StreamLeft) EventType() string     { return "stream_left" }
func (StreamMetadata) EventType() string { return "stream_metadata" }
func (ReplayGap) EventType() string      { return "replay_gap" }
func (Subscribed) EventType() string     { return "subscribed" }
func (Pong) EventType() string           { return "pong" }
func (CursorFrame) EventType() string    { return "cursor" }
func (u Unknown) EventType() string      { return u.Type }

// ErrMalformedFrame reports a server message that is not a frame.
var ErrMalformedFrame = errors.New("malformed frame")

// DecodeFrame decodes one server frame (a JSON object). A frame of an
// unknown type decodes to Unknown.
func DecodeFrame(b []byte) (Event, error) {
	var head struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedFrame, err)
	}
	var (
		ev  Event
		err error
	)
	switch head.Type {
	case "joined":
		ev, err = decodeAs[Joined](b)
	case "token":
		ev, err = decodeAs[Token](b)
	case "stream_joined":
		ev, err = decodeAs[StreamJoined](b)
	case "stream_left":
		ev, err = decodeAs[StreamLeft](b)
	case "stream_metadata":
		ev, err = decodeAs[StreamMetadata](b)
	case "replay_gap":
		ev, err = decodeAs[ReplayGap](b)
	case "subscribed":
		ev, err = decodeAs[Subscribed](b)
	case "pong":
		ev = Pong{}
	case "cursor":
		ev, err = decodeAs[CursorFrame](b)
	case "":
		return nil, fmt.Errorf("%w: no type", ErrMalformedFrame)
	default:
		ev = Unknown{Type: head.Type, Raw: append(json.RawMessage(nil), b...)}
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrMalformedFrame, head.Type, err)
	}
	return ev, nil
}

// DecodeMessage decodes one server message: a frame, or with batching
// (spec 4.6) a JSON array of frames.
func DecodeMessage(b []byte) ([]Event, error) {
	b = bytes.TrimLeft(b, " \t\r\n")
	if len(b) == 0 || b[0] != '[' {
		ev, err := DecodeFrame(b)
		if err != nil {
			return nil, err
		}
		return []Event{ev}, nil
	}
	var arr []json.RawMessage
	if err := json.Unmarshal(b, &arr); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedFrame, err)
	}
	evs := make([]Event, 0, len(arr))
	for _, raw := range arr {
		ev, err := DecodeFrame(raw)
		if err != nil {
			return nil, err
		}
		evs = append(evs, ev)
	}
	return evs, nil
}

func decodeAs[T Event](b []byte) (Event, error) {
	var v T
	err := json.Unmarshal(b, &v)
	return v, err
}

// Client frames (spec 4.4).

// AppendTokenFrame appends `{"type":"token","data":…}`.
func AppendTokenFrame(b []byte, data string) []byte {
	b = append(b, `{"type":"token","data":`...)
	b = appendJSONString(b, data)
	return append(b, '}')
}

// AppendSetMetadataFrame appends `{"type":"set_metadata","metadata":…}`;
// metadata must be a JSON object, passed through byte for byte.
func AppendSetMetadataFrame(b []byte, metadata json.RawMessage) []byte {
	b = append(b, `{"type":"set_metadata","metadata":`...)
	b = append(b, metadata...)
	return append(b, '}')
}

// PingFrame is `{"type":"ping"}`.
var PingFrame = []byte(`{"type":"ping"}`)

// AppendSubscribeFrame appends `{"type":"subscribe","streams":…}`; nil
// streams is null (all peers).
func AppendSubscribeFrame(b []byte, streams []string) []byte {
	b = append(b, `{"type":"subscribe","streams":`...)
	if streams == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, s := range streams {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, s)
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

// appendJSONString appends s as a JSON string without HTML escaping, so
// that the server stores exactly the bytes given.
func appendJSONString(b []byte, s string) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return append(b, bytes.TrimSuffix(buf.Bytes(), []byte{'\n'})...)
}
