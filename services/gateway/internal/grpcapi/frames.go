package grpcapi

import (
	"encoding/json"
	"fmt"

	amsv1 "github.com/amsrouter/ams/proto/gen/go/ams/v1"
	"github.com/amsrouter/ams/services/gateway/internal/frame"
)

// The hub queues every server frame as the JSON a WebSocket client gets
// (package frame). The converters below read that JSON into the ams.v1
// message with the same fields: scalars are decoded, opaque objects
// (metadata) are cut out of the frame with frame.Member and kept as their
// exact bytes, never decoded and re-encoded.

type jsonIdentity struct {
	Kind   string `json:"kind"`
	Model  string `json:"model"`
	Client string `json:"client"`
}

func (p *jsonIdentity) proto() *amsv1.PeerIdentity {
	if p == nil {
		return nil
	}
	return &amsv1.PeerIdentity{Kind: p.Kind, Model: p.Model, Client: p.Client}
}

// jsonStream holds the members that describe a stream in frames and in
// `peers` entries.
type jsonStream struct {
	StreamID       string        `json:"stream_id"`
	StreamName     string        `json:"stream_name"`
	OwnerAccountID string        `json:"owner_account_id"`
	PeerIdentity   *jsonIdentity `json:"peer_identity"`
	LastSeq        uint64        `json:"last_seq"`
}

// jsonFrame has every scalar member of every server frame (spec 4.3).
type jsonFrame struct {
	Type string `json:"type"`
	jsonStream
	ConversationID    string            `json:"conversation_id"`
	TS                string            `json:"ts"`
	Data              string            `json:"data"`
	Seq               uint64            `json:"seq"`
	SelfSubscribe     bool              `json:"self_subscribe"`
	Peers             []json.RawMessage `json:"peers"`
	Resumed           bool              `json:"resumed"`
	AccountID         string            `json:"account_id"`
	Subscription      *[]string         `json:"subscription"`
	SubscribedStreams []string          `json:"subscribed_streams"`
	Retention         struct {
		MaxAgeMs  int64 `json:"max_age_ms"`
		MaxEvents int64 `json:"max_events"`
	} `json:"retention"`
	Observer          bool   `json:"observer"`
	RequestedSeq      uint64 `json:"requested_seq"`
	FirstAvailableSeq uint64 `json:"first_available_seq"`
}

// objectText returns the exact text of the object member name of a frame,
// "" when it is absent or null.
func objectText(f []byte, name string) string {
	v, ok := frame.Member(f, name)
	if !ok || string(v) == "null" {
		return ""
	}
	return string(v)
}

// serverFrame converts one JSON server frame into its gRPC message.
func serverFrame(b []byte) (*amsv1.ServerFrame, error) {
	var f jsonFrame
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("decode server frame: %w", err)
	}
	switch f.Type {
	case "token":
		return &amsv1.ServerFrame{Frame: &amsv1.ServerFrame_Token{Token: &amsv1.TokenEvent{
			StreamId:       f.StreamID,
			StreamName:     f.StreamName,
			OwnerAccountId: f.OwnerAccountID,
			Ts:             f.TS,
			Data:           f.Data,
			PeerIdentity:   f.PeerIdentity.proto(),
			Seq:            f.Seq,
		}}}, nil
	case "stream_metadata":
		return &amsv1.ServerFrame{Frame: &amsv1.ServerFrame_StreamMetadata{StreamMetadata: &amsv1.StreamMetadata{
			StreamId:       f.StreamID,
			StreamName:     f.StreamName,
			OwnerAccountId: f.OwnerAccountID,
			MetadataJson:   objectText(b, "metadata"),
			Ts:             f.TS,
			PeerIdentity:   f.PeerIdentity.proto(),
			Seq:            f.Seq,
		}}}, nil
	case "stream_joined":
		return &amsv1.ServerFrame{Frame: &amsv1.ServerFrame_StreamJoined{StreamJoined: &amsv1.StreamJoined{
			StreamId:       f.StreamID,
			StreamName:     f.StreamName,
			OwnerAccountId: f.OwnerAccountID,
			MetadataJson:   objectText(b, "metadata"),
			PeerIdentity:   f.PeerIdentity.proto(),
			LastSeq:        f.LastSeq,
		}}}, nil
	case "stream_left":
		return &amsv1.ServerFrame{Frame: &amsv1.ServerFrame_StreamLeft{StreamLeft: &amsv1.StreamLeft{
			StreamId:       f.StreamID,
			StreamName:     f.StreamName,
			OwnerAccountId: f.OwnerAccountID,
			PeerIdentity:   f.PeerIdentity.proto(),
			LastSeq:        f.LastSeq,
		}}}, nil
	case "pong":
		return &amsv1.ServerFrame{Frame: &amsv1.ServerFrame_Pong{Pong: &amsv1.Pong{}}}, nil
	case "replay_gap":
		return &amsv1.ServerFrame{Frame: &amsv1.ServerFrame_ReplayGap{ReplayGap: &amsv1.ReplayGap{
			StreamId:          f.StreamID,
			StreamName:        f.StreamName,
			OwnerAccountId:    f.OwnerAccountID,
			RequestedSeq:      f.RequestedSeq,
			FirstAvailableSeq: f.FirstAvailableSeq,
		}}}, nil
	case "subscribed":
		s := &amsv1.Subscribed{SubscribedStreams: f.SubscribedStreams}
		s.Subscription, s.SubscriptionAll = subscription(f.Subscription)
		return &amsv1.ServerFrame{Frame: &amsv1.ServerFrame_Subscribed{Subscribed: s}}, nil
	case "joined":
		return joined(b, &f)
	}
	return nil, fmt.Errorf("unknown server frame type %q", f.Type)
}

func subscription(s *[]string) (items []string, all bool) {
	if s == nil {
		return nil, true
	}
	return *s, false
}

func joined(b []byte, f *jsonFrame) (*amsv1.ServerFrame, error) {
	j := &amsv1.Joined{
		ConversationId:     f.ConversationID,
		StreamId:           f.StreamID,
		StreamName:         f.StreamName,
		MetadataJson:       objectText(b, "metadata"),
		SelfSubscribe:      f.SelfSubscribe,
		Peers:              make([]*amsv1.StreamInfo, 0, len(f.Peers)),
		PeerIdentity:       f.PeerIdentity.proto(),
		Resumed:            f.Resumed,
		AccountId:          f.AccountID,
		LastSeq:            f.LastSeq,
		SubscribedStreams:  f.SubscribedStreams,
		RetentionMaxAgeMs:  f.Retention.MaxAgeMs,
		RetentionMaxEvents: f.Retention.MaxEvents,
		Observer:           f.Observer,
	}
	j.Subscription, j.SubscriptionAll = subscription(f.Subscription)
	for _, raw := range f.Peers {
		var p jsonStream
		if err := json.Unmarshal(raw, &p); err != nil {
			return nil, fmt.Errorf("decode peer: %w", err)
		}
		j.Peers = append(j.Peers, &amsv1.StreamInfo{
			StreamId:       p.StreamID,
			StreamName:     p.StreamName,
			OwnerAccountId: p.OwnerAccountID,
			MetadataJson:   objectText(raw, "metadata"),
			PeerIdentity:   p.PeerIdentity.proto(),
			LastSeq:        p.LastSeq,
		})
	}
	return &amsv1.ServerFrame{Frame: &amsv1.ServerFrame_Joined{Joined: j}}, nil
}

// peerIdentity parses an identity object text ("" for none), as the hub
// keeps it, into its message.
func peerIdentity(text string) *amsv1.PeerIdentity {
	if text == "" {
		return nil
	}
	var p jsonIdentity
	if json.Unmarshal([]byte(text), &p) != nil {
		return nil
	}
	return p.proto()
}
