// Package storeopen picks the account store engine from a database URL:
// postgres:// or postgresql:// gives pgstore, sqlite:<path> gives
// sqlitestore (sqlite::memory: for a private in-memory database).
package storeopen

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/amsrouter/ams/services/account/internal/pgstore"
	"github.com/amsrouter/ams/services/account/internal/sqlitestore"
	"github.com/amsrouter/ams/services/account/internal/store"
)

// Open opens and migrates the store named by databaseURL.
func Open(ctx context.Context, databaseURL string) (store.Store, error) {
	kind, rest, err := parse(databaseURL)
	if err != nil {
		return nil, err
	}
	switch kind {
	case "postgres":
		s, err := pgstore.Open(ctx, rest)
		if err != nil {
			return nil, err
		}
		return s, nil
	default:
		s, err := sqlitestore.Open(ctx, rest)
		if err != nil {
			return nil, err
		}
		return s, nil
	}
}

// Migrate applies pending migrations to the database named by databaseURL
// without keeping a store open (for a migration job, and for pgtest
// templates).
func Migrate(ctx context.Context, databaseURL string) error {
	kind, rest, err := parse(databaseURL)
	if err != nil {
		return err
	}
	if kind == "postgres" {
		return pgstore.Migrate(ctx, rest)
	}
	s, err := sqlitestore.Open(ctx, rest)
	if err != nil {
		return err
	}
	return s.Close()
}

// parse returns the engine and what that engine opens: the whole URL for
// Postgres, the file path for SQLite.
func parse(databaseURL string) (kind, rest string, err error) {
	switch {
	case strings.HasPrefix(databaseURL, "postgres://"), strings.HasPrefix(databaseURL, "postgresql://"):
		return "postgres", databaseURL, nil
	case strings.HasPrefix(databaseURL, "sqlite:"):
		path := strings.TrimPrefix(databaseURL, "sqlite:")
		if path == "" {
			return "", "", errors.New("database url: sqlite: needs a path (sqlite:data/account.db)")
		}
		return "sqlite", path, nil
	case databaseURL == "":
		return "", "", errors.New("database url is empty")
	}
	// Name the scheme only when it looks like one: the rest of a URL (or a
	// keyword DSN) may hold a password.
	scheme, _, found := strings.Cut(databaseURL, ":")
	if !found || len(scheme) > 16 || strings.ContainsFunc(scheme, func(r rune) bool { return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') }) {
		scheme = "?"
	}
	return "", "", fmt.Errorf("database url: unsupported scheme %q (want postgres://, postgresql:// or sqlite:<path>)", scheme)
}
