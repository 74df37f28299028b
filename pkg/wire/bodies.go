package wire

import (
	"encoding/json"
	"time"
)

// ErrorBody is the body of every HTTP error: `{"error","message"}`.
type ErrorBody struct {
	Error   Code   `json:"error"`
	Message string `json:"message"`
}

// Account is the answer to `POST /v1/accounts` (spec 3.2) and to a
// credential rotation (3.3). Credential is present only there: it is shown
// once.
type Account struct {
	AccountID  string    `json:"account_id"`
	Namespace  string    `json:"namespace"`
	Credential string    `json:"credential"`
	CreatedAt  time.Time `json:"created_at,omitzero"`
	RotatedAt  time.Time `json:"rotated_at,omitzero"`
}

// CreatedConversation is the answer to `POST /v1/{ns}/conversations`
// (spec 3.4). StreamID is the id the caller's stream will have when it
// connects with StreamName; no stream is attached yet.
type CreatedConversation struct {
	ConversationID string          `json:"conversation_id"`
	Alias          string          `json:"alias"`
	MagicLink      string          `json:"magic_link"`
	StreamID       string          `json:"stream_id"`
	StreamName     string          `json:"stream_name"`
	Metadata       json.RawMessage `json:"metadata"`
	StreamMetadata json.RawMessage `json:"stream_metadata"`
	CreatedAt      time.Time       `json:"created_at"`
	LinkID         string          `json:"link_id"`
	ExpiresAt      *time.Time      `json:"expires_at"`
}

// Conversation is the answer to `GET /v1/{ns}/conversations/{alias}`
// (spec 3.5): the conversation and its live streams in join order.
type Conversation struct {
	ConversationID string          `json:"conversation_id"`
	Namespace      string          `json:"namespace"`
	Alias          string          `json:"alias"`
	Metadata       json.RawMessage `json:"metadata"`
	CreatedAt      time.Time       `json:"created_at"`
	IDKind         string          `json:"id_kind"`
	Streams        []Stream        `json:"streams"`
}

// Link is one issued magic link (spec 3.6). MagicLink is set only in the
// answer that created it; ExpiresAt, RevokedAt and Label are nil when
// null.
type Link struct {
	LinkID    string     `json:"link_id"`
	MagicLink string     `json:"magic_link,omitempty"`
	CreatedAt time.Time  `json:"created_at,omitzero"`
	ExpiresAt *time.Time `json:"expires_at"`
	RevokedAt *time.Time `json:"revoked_at"`
	Label     *string    `json:"label"`
}

// PeerIdentity is what a stream declared about its writer (`kind` "agent"
// or "human", optional `model` and `client`).
type PeerIdentity struct {
	Kind   string `json:"kind"`
	Model  string `json:"model,omitempty"`
	Client string `json:"client,omitempty"`
}

// Stream describes a live stream: an entry of `joined.peers` or of a
// conversation's `streams`.
type Stream struct {
	StreamID       string          `json:"stream_id"`
	StreamName     string          `json:"stream_name"`
	OwnerAccountID string          `json:"owner_account_id"`
	Metadata       json.RawMessage `json:"metadata"`
	PeerIdentity   *PeerIdentity   `json:"peer_identity,omitempty"`
	// LastSeq is the stream's highest seq when it was described.
	LastSeq uint64 `json:"last_seq"`
}
