// Package subject names the NATS subjects and KV keys of the data plane.
//
// Only identifiers whose formats exclude '.', '*', '>' and spaces
// (conversation ids `conv_…`, stream ids `str_…`) ever become subject or key
// tokens; names chosen by users never do. Every constructor checks its
// inputs, so a malformed id cannot widen a subscription or escape its
// conversation.
package subject

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"

	"github.com/amsrouter/ams/services/internal/ids"
)

// Prefixes.
const (
	// EventsPrefix is the prefix every stream event subject has; the events
	// stream captures EventsPrefix + ">".
	EventsPrefix = "ams.tok."
	// HandoffPrefix addresses one gateway's handoff responder.
	HandoffPrefix = "ams.gw."
)

// ErrInvalid is returned for an id that may not become a subject token.
var ErrInvalid = errors.New("subject: invalid id")

// Event is the subject of stream events: ams.tok.<conversation>.<stream>.
func Event(conversationID, streamID string) (string, error) {
	if !ids.ConversationIDRe.MatchString(conversationID) || !ids.ValidStreamID(streamID) {
		return "", ErrInvalid
	}
	return EventsPrefix + conversationID + "." + streamID, nil
}

// Conversation is the wildcard of one conversation's events:
// ams.tok.<conversation>.*.
func Conversation(conversationID string) (string, error) {
	if !ids.ConversationIDRe.MatchString(conversationID) {
		return "", ErrInvalid
	}
	return EventsPrefix + conversationID + ".*", nil
}

// StreamOf returns the stream id of an event subject of the conversation
// whose wildcard delivered it, without allocating.
func StreamOf(subj string) (string, bool) {
	i := strings.LastIndexByte(subj, '.')
	if i < 0 || !strings.HasPrefix(subj, EventsPrefix) {
		return "", false
	}
	s := subj[i+1:]
	return s, ids.ValidStreamID(s)
}

// PresenceKey is the presence KV key of a stream: <conversation>.<stream>.
func PresenceKey(conversationID, streamID string) (string, error) {
	if !ids.ConversationIDRe.MatchString(conversationID) || !ids.ValidStreamID(streamID) {
		return "", ErrInvalid
	}
	return conversationID + "." + streamID, nil
}

// PresenceFilter is the KV watch filter of a conversation: <conversation>.*.
func PresenceFilter(conversationID string) (string, error) {
	if !ids.ConversationIDRe.MatchString(conversationID) {
		return "", ErrInvalid
	}
	return conversationID + ".*", nil
}

// Handoff is the subject a gateway answers stream handoffs on. Gateway
// names are chosen by operators, so they are checked like ids: letters,
// digits, '-' and '_' only.
func Handoff(gateway string) (string, error) {
	if !ValidGatewayName(gateway) {
		return "", ErrInvalid
	}
	return HandoffPrefix + gateway + ".handoff", nil
}

// ValidGatewayName reports whether a gateway name can be a subject token
// and KV key: 1 to 64 of [A-Za-z0-9_-].
func ValidGatewayName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// DedupePrefix is the prefix of idempotency tag subjects.
const DedupePrefix = "ams.dedupe."

// Dedupe is the subject recording one idempotency tag of a stream:
// ams.dedupe.<conversation>.<stream>.<hash>. The tag, chosen by clients,
// enters only as a hex digest.
func Dedupe(conversationID, streamID, tag string) (string, error) {
	if !ids.ConversationIDRe.MatchString(conversationID) || !ids.ValidStreamID(streamID) {
		return "", ErrInvalid
	}
	sum := sha256.Sum256([]byte(tag))
	return DedupePrefix + conversationID + "." + streamID + "." + hex.EncodeToString(sum[:16]), nil
}

// Emit is the subject a gateway answers emits for the streams it holds.
func Emit(gateway string) (string, error) {
	if !ValidGatewayName(gateway) {
		return "", ErrInvalid
	}
	return HandoffPrefix + gateway + ".emit", nil
}
