// Package store is the storage contract of the link service: conversations,
// the link records of their magic links, and the log of revocations that
// gateways follow. Link tokens are never stored; a link record is enough to
// list, expire and revoke a token verified by its signature.
//
// Two engines implement Store (pgstore for Postgres, sqlitestore for the
// embedded run mode); storetest is the contract suite both pass. Engines
// translate driver errors into the sentinels below, so nothing above a store
// sees pgx or SQLite. Every timestamp is stored and returned at millisecond
// precision in UTC; a zero time.Time means "absent" (never expires, not
// revoked).
package store

import (
	"context"
	"errors"
	"time"
)

var (
	// ErrNotFound: no such conversation.
	ErrNotFound = errors.New("conversation not found")
	// ErrAliasTaken: the (namespace, alias) pair is already used.
	ErrAliasTaken = errors.New("alias taken")
	// ErrLinkNotFound: no such link in that conversation.
	ErrLinkNotFound = errors.New("link not found")
)

// Conversation is a conversation record.
type Conversation struct {
	ID             string
	Namespace      string
	Alias          string
	OwnerAccountID string
	// MetadataJSON is the JSON text exactly as submitted: stored as text,
	// returned byte for byte, never parsed or re-encoded by a store.
	MetadataJSON string
	CreatedAt    time.Time
}

// Link is the record of one issued magic-link token.
type Link struct {
	ID             string
	ConversationID string
	// KeyID is the kid of the key that signed the link's token.
	KeyID     string
	CreatedAt time.Time
	// ExpiresAt is zero for a link that never expires.
	ExpiresAt time.Time
	// RevokedAt is zero for a link that is not revoked.
	RevokedAt time.Time
	// Label is nil when the link has none.
	Label *string
}

// Revocation is one entry of the revocation log.
type Revocation struct {
	// Seq is the entry's position in the log: strictly increasing in the
	// order revocations become visible, so a reader that resumes after the
	// last Seq it saw misses nothing.
	Seq            int64
	LinkID         string
	ConversationID string
	RevokedAt      time.Time
	// LinkExpiresAt is zero when the revoked link never expires.
	LinkExpiresAt time.Time
}

// RevocationRetention is how long after a link's expiry its revocation is
// still listed: past that, expiry alone refuses the token.
const RevocationRetention = time.Minute

// ExpiryLeeway is how long after expires_at a link still counts as live
// (spec 2.3: a token is valid while now < exp + 5 s).
const ExpiryLeeway = 5 * time.Second

// Store is the link service's storage. Implementations are safe for
// concurrent use.
type Store interface {
	// CreateConversation inserts the conversation and its first link in one
	// transaction: both are stored or neither. It returns ErrAliasTaken when
	// the namespace already has a conversation with that alias; of
	// concurrent creations of one (namespace, alias), exactly one succeeds.
	CreateConversation(ctx context.Context, c Conversation, firstLink Link) error
	// ConversationByAlias returns the conversation, or ErrNotFound.
	ConversationByAlias(ctx context.Context, namespace, alias string) (Conversation, error)
	// ConversationByID returns the conversation, or ErrNotFound.
	ConversationByID(ctx context.Context, id string) (Conversation, error)
	// CreateLink inserts a link; ErrNotFound if its conversation does not
	// exist.
	CreateLink(ctx context.Context, l Link) error
	// ListLinks returns every link of the conversation, revoked ones
	// included, oldest first (by created_at, then id). An unknown
	// conversation has no links.
	ListLinks(ctx context.Context, conversationID string) ([]Link, error)
	// RevokeLink marks the link revoked at `at` and returns it. Revoking an
	// already revoked link changes nothing and returns the first revoked_at;
	// only the first revocation is appended to the revocation log. It
	// returns ErrLinkNotFound if the conversation has no such link.
	RevokeLink(ctx context.Context, conversationID, linkID string, at time.Time) (Link, error)
	// ListRevocations returns up to limit log entries with Seq > after,
	// in Seq order, omitting revocations of links that expired more than
	// RevocationRetention before now. next is the Seq of the last entry
	// returned, or after when none is: pass it as the next call's after.
	ListRevocations(ctx context.Context, after int64, limit int, now time.Time) (revs []Revocation, next int64, err error)
	// LiveKeyIDs returns the distinct kids of links that are neither revoked
	// nor expired at now (expires_at + ExpiryLeeway > now): the keys whose
	// tokens can still be admitted and so must stay published.
	LiveKeyIDs(ctx context.Context, now time.Time) ([]string, error)
	// Ping checks that the database answers.
	Ping(ctx context.Context) error
	// Close releases the database.
	Close() error
}

// Millis returns t truncated to the millisecond in UTC, the precision every
// store keeps. The zero time stays zero.
func Millis(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC().Truncate(time.Millisecond)
}
