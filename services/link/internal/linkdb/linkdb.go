// Package linkdb opens the link service's store named by a database URL:
// `postgres://…` or `postgresql://…` for Postgres, `sqlite:<path>` for an
// embedded SQLite file. Opening applies the pending migrations.
package linkdb

import (
	"context"
	"fmt"
	"strings"

	"github.com/amsrouter/ams/services/link/internal/pgstore"
	"github.com/amsrouter/ams/services/link/internal/sqlitestore"
	"github.com/amsrouter/ams/services/link/internal/store"
)

// Open migrates and opens the store at databaseURL.
func Open(ctx context.Context, databaseURL string) (store.Store, error) {
	// Each case returns a nil interface on error, never a typed nil.
	switch kind, rest := parse(databaseURL); kind {
	case "postgres":
		s, err := pgstore.Open(ctx, databaseURL)
		if err != nil {
			return nil, err
		}
		return s, nil
	case "sqlite":
		s, err := sqlitestore.Open(ctx, rest)
		if err != nil {
			return nil, err
		}
		return s, nil
	default:
		return nil, errBadURL
	}
}

// Migrate applies the pending migrations to the database at databaseURL
// and closes it.
func Migrate(ctx context.Context, databaseURL string) error {
	switch kind, rest := parse(databaseURL); kind {
	case "postgres":
		return pgstore.Migrate(ctx, databaseURL)
	case "sqlite":
		s, err := sqlitestore.Open(ctx, rest)
		if err != nil {
			return err
		}
		return s.Close()
	default:
		return errBadURL
	}
}

var errBadURL = fmt.Errorf("database url: want postgres://…, postgresql://… or sqlite:<path>")

// parse returns the engine of a URL and, for SQLite, the file path. The
// URL itself is never put in an error: it may hold a password.
func parse(u string) (kind, path string) {
	switch {
	case strings.HasPrefix(u, "postgres://"), strings.HasPrefix(u, "postgresql://"):
		return "postgres", ""
	case strings.HasPrefix(u, "sqlite:"):
		p := strings.TrimPrefix(u, "sqlite:")
		// sqlite:///abs/path and sqlite://rel/path are accepted too.
		p = strings.TrimPrefix(p, "//")
		return "sqlite", p
	default:
		return "", ""
	}
}
