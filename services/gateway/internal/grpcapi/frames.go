package grpcapi

import (
	"errors"
	"fmt"

	amsv1 "github.com/amsrouter/ams/proto/gen/go/ams/v1"
	"github.com/amsrouter/ams/services/gateway/internal/frame"
)

// The hub queues every server frame as the JSON a WebSocket client gets
// (package frame). serverFrame reads that JSON into the ams.v1 message
// with the same fields, in one pass over the frame: scalars are decoded,
// opaque objects (metadata) are cut out as their exact bytes, never
// decoded and re-encoded. The frames are package frame's own encoding
// (valid JSON, fixed keys), so the scanner is small; it still refuses,
// without panicking, anything it cannot read.

var errFrame = errors.New("unreadable server frame")

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// each calls fn for every element of the array or member of the object in
// b (open and close give the brackets); key is nil for array elements.
func each(b []byte, open, close byte, fn func(key, val []byte) error) error {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != open {
		return errFrame
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == close {
		return nil
	}
	for {
		var key []byte
		if open == '{' {
			if i >= len(b) || b[i] != '"' {
				return errFrame
			}
			e := frame.StringEnd(b, i)
			if e < 0 {
				return errFrame
			}
			key = b[i+1 : e-1]
			i = skipSpace(b, e)
			if i >= len(b) || b[i] != ':' {
				return errFrame
			}
			i = skipSpace(b, i+1)
		}
		e := frame.ValueEnd(b, i)
		if e < 0 {
			return errFrame
		}
		if err := fn(key, b[i:e]); err != nil {
			return err
		}
		i = skipSpace(b, e)
		if i >= len(b) {
			return errFrame
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case close:
			return nil
		default:
			return errFrame
		}
	}
}

// str decodes a JSON string value by package frame's rules: the frames
// are its own encoding.
func str(v []byte) (string, error) {
	s, ok := frame.DecodeString(v)
	if !ok {
		return "", errFrame
	}
	return s, nil
}

// uint64Of decodes a non-negative JSON integer.
func uint64Of(v []byte) (uint64, error) {
	if len(v) == 0 || len(v) > 19 {
		return 0, errFrame
	}
	var n uint64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, errFrame
		}
		n = n*10 + uint64(c-'0')
	}
	return n, nil
}

// strings decodes an array of strings; null gives nil, all true.
func stringList(v []byte) (items []string, all bool, err error) {
	if string(v) == "null" {
		return nil, true, nil
	}
	items = []string{}
	err = each(v, '[', ']', func(_, e []byte) error {
		s, err := str(e)
		items = append(items, s)
		return err
	})
	return items, false, err
}

// objectText is an object member's exact text, "" for null.
func objectText(v []byte) string {
	if string(v) == "null" {
		return ""
	}
	return string(v)
}

// identity decodes a peer_identity object.
func identity(v []byte) (*amsv1.PeerIdentity, error) {
	p := &amsv1.PeerIdentity{}
	err := each(v, '{', '}', func(k, e []byte) error {
		var err error
		switch string(k) {
		case "kind":
			p.Kind, err = str(e)
		case "model":
			p.Model, err = str(e)
		case "client":
			p.Client, err = str(e)
		}
		return err
	})
	return p, err
}

// fields are the members of any server frame (spec 4.3).
type fields struct {
	typ                              string
	streamID, streamName, owner      string
	metadata                         string
	identity                         *amsv1.PeerIdentity
	lastSeq, seq                     uint64
	conversationID, ts, data         string
	selfSubscribe, resumed, observer bool
	peers                            []*amsv1.StreamInfo
	accountID                        string
	subscription, subscribed         []string
	subscriptionAll                  bool
	maxAgeMs, maxEvents              uint64
	requestedSeq, firstAvailable     uint64
}

func (f *fields) member(k, v []byte) error {
	var err error
	switch string(k) {
	case "type":
		f.typ, err = str(v)
	case "stream_id":
		if string(v) != "null" {
			f.streamID, err = str(v)
		}
	case "stream_name":
		if string(v) != "null" {
			f.streamName, err = str(v)
		}
	case "owner_account_id":
		f.owner, err = str(v)
	case "metadata":
		f.metadata = objectText(v)
	case "peer_identity":
		f.identity, err = identity(v)
	case "last_seq":
		f.lastSeq, err = uint64Of(v)
	case "seq":
		f.seq, err = uint64Of(v)
	case "conversation_id":
		f.conversationID, err = str(v)
	case "ts":
		f.ts, err = str(v)
	case "data":
		f.data, err = str(v)
	case "self_subscribe":
		f.selfSubscribe = string(v) == "true"
	case "resumed":
		f.resumed = string(v) == "true"
	case "observer":
		f.observer = string(v) == "true"
	case "account_id":
		if string(v) != "null" {
			f.accountID, err = str(v)
		}
	case "peers":
		f.peers = []*amsv1.StreamInfo{}
		err = each(v, '[', ']', func(_, e []byte) error {
			var p fields
			if err := each(e, '{', '}', p.member); err != nil {
				return err
			}
			f.peers = append(f.peers, &amsv1.StreamInfo{StreamId: p.streamID, StreamName: p.streamName,
				OwnerAccountId: p.owner, MetadataJson: p.metadata, PeerIdentity: p.identity, LastSeq: p.lastSeq})
			return nil
		})
	case "subscription":
		f.subscription, f.subscriptionAll, err = stringList(v)
	case "subscribed_streams":
		f.subscribed, _, err = stringList(v)
	case "retention":
		err = each(v, '{', '}', func(k, e []byte) error {
			var err error
			switch string(k) {
			case "max_age_ms":
				f.maxAgeMs, err = uint64Of(e)
			case "max_events":
				f.maxEvents, err = uint64Of(e)
			}
			return err
		})
	case "requested_seq":
		f.requestedSeq, err = uint64Of(v)
	case "first_available_seq":
		f.firstAvailable, err = uint64Of(v)
	}
	return err
}

// serverFrame converts one JSON server frame into its gRPC message.
func serverFrame(b []byte) (*amsv1.ServerFrame, error) {
	var f fields
	if err := each(b, '{', '}', f.member); err != nil {
		return nil, fmt.Errorf("decode server frame: %w", err)
	}
	switch f.typ {
	case "token":
		return &amsv1.ServerFrame{Frame: &amsv1.ServerFrame_Token{Token: &amsv1.TokenEvent{
			StreamId: f.streamID, StreamName: f.streamName, OwnerAccountId: f.owner,
			Ts: f.ts, Data: f.data, PeerIdentity: f.identity, Seq: f.seq,
		}}}, nil
	case "stream_metadata":
		return &amsv1.ServerFrame{Frame: &amsv1.ServerFrame_StreamMetadata{StreamMetadata: &amsv1.StreamMetadata{
			StreamId: f.streamID, StreamName: f.streamName, OwnerAccountId: f.owner,
			MetadataJson: f.metadata, Ts: f.ts, PeerIdentity: f.identity, Seq: f.seq,
		}}}, nil
	case "stream_joined":
		return &amsv1.ServerFrame{Frame: &amsv1.ServerFrame_StreamJoined{StreamJoined: &amsv1.StreamJoined{
			StreamId: f.streamID, StreamName: f.streamName, OwnerAccountId: f.owner,
			MetadataJson: f.metadata, PeerIdentity: f.identity, LastSeq: f.lastSeq,
		}}}, nil
	case "stream_left":
		return &amsv1.ServerFrame{Frame: &amsv1.ServerFrame_StreamLeft{StreamLeft: &amsv1.StreamLeft{
			StreamId: f.streamID, StreamName: f.streamName, OwnerAccountId: f.owner,
			PeerIdentity: f.identity, LastSeq: f.lastSeq,
		}}}, nil
	case "pong":
		return &amsv1.ServerFrame{Frame: &amsv1.ServerFrame_Pong{Pong: &amsv1.Pong{}}}, nil
	case "replay_gap":
		return &amsv1.ServerFrame{Frame: &amsv1.ServerFrame_ReplayGap{ReplayGap: &amsv1.ReplayGap{
			StreamId: f.streamID, StreamName: f.streamName, OwnerAccountId: f.owner,
			RequestedSeq: f.requestedSeq, FirstAvailableSeq: f.firstAvailable,
		}}}, nil
	case "subscribed":
		return &amsv1.ServerFrame{Frame: &amsv1.ServerFrame_Subscribed{Subscribed: &amsv1.Subscribed{
			Subscription: f.subscription, SubscriptionAll: f.subscriptionAll, SubscribedStreams: f.subscribed,
		}}}, nil
	case "joined":
		return &amsv1.ServerFrame{Frame: &amsv1.ServerFrame_Joined{Joined: &amsv1.Joined{
			ConversationId: f.conversationID, StreamId: f.streamID, StreamName: f.streamName,
			MetadataJson: f.metadata, SelfSubscribe: f.selfSubscribe, Peers: f.peers,
			PeerIdentity: f.identity, Resumed: f.resumed, AccountId: f.accountID, LastSeq: f.lastSeq,
			Subscription: f.subscription, SubscriptionAll: f.subscriptionAll, SubscribedStreams: f.subscribed,
			RetentionMaxAgeMs: int64(f.maxAgeMs), RetentionMaxEvents: int64(f.maxEvents), Observer: f.observer,
		}}}, nil
	}
	return nil, fmt.Errorf("unknown server frame type %q", f.typ)
}

// peerIdentity parses an identity object text ("" for none), as the hub
// keeps it, into its message.
func peerIdentity(text string) *amsv1.PeerIdentity {
	if text == "" {
		return nil
	}
	p, err := identity([]byte(text))
	if err != nil {
		return nil
	}
	return p
}
