// Package store is the contract between the account service and its
// databases: the Account record, the Store interface every engine
// implements (pgstore for Postgres, sqlitestore for the embedded mode), and
// the sentinel errors callers test with errors.Is. Engines translate their
// driver errors into these sentinels, so nothing above a store sees pgx or
// SQLite.
//
// A store holds only the HMAC of a credential (spec 2.2), never the
// credential itself.
package store

import (
	"context"
	"errors"
	"time"
)

// Sentinel errors. Engines wrap them; test with errors.Is.
var (
	// ErrNotFound: no account matches the id or credential hash.
	ErrNotFound = errors.New("account not found")
	// ErrNamespaceTaken: another account already holds the namespace.
	ErrNamespaceTaken = errors.New("namespace taken")
	// ErrConflict: a unique key other than the namespace (id, credential
	// hash) already exists. With random ids and credentials this means a
	// caller bug, not bad luck.
	ErrConflict = errors.New("account conflicts with an existing one")
)

// Account is one persistent account.
type Account struct {
	ID        string
	Namespace string
	// CredentialHash is the lowercase hex HMAC-SHA-256 of the credential
	// under the credential pepper.
	CredentialHash string
	CreatedAt      time.Time
	// RotatedAt is the zero time until the credential is first rotated.
	RotatedAt time.Time
}

// Store persists accounts. Implementations are safe for concurrent use.
// Every timestamp a store writes and returns is UTC truncated to
// milliseconds (see Time); a zero time stays zero.
type Store interface {
	// CreateAccount inserts the account. Namespace uniqueness is atomic:
	// of any number of concurrent creations of one namespace exactly one
	// succeeds and the others get ErrNamespaceTaken.
	CreateAccount(ctx context.Context, a Account) error
	// AccountByCredentialHash returns the account whose current credential
	// hashes to hash, or ErrNotFound.
	AccountByCredentialHash(ctx context.Context, hash string) (Account, error)
	// AccountByID returns the account with the id, or ErrNotFound.
	AccountByID(ctx context.Context, id string) (Account, error)
	// RotateCredential atomically replaces the account's credential hash
	// and sets RotatedAt; the old hash stops matching at once. It returns
	// the updated account, or ErrNotFound.
	RotateCredential(ctx context.Context, accountID, newHash string, at time.Time) (Account, error)
	// Ping reports whether the database answers.
	Ping(ctx context.Context) error
	// Close releases the store's connections.
	Close() error
}

// Time is the form in which stores keep timestamps: UTC, truncated to
// milliseconds (the precision of the wire format and of TR20 ids). The zero
// time stays zero.
func Time(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(time.Millisecond)
}
