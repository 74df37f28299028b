// Package sqlitestore is the embedded engine of the account store: SQLite
// through modernc.org/sqlite (pure Go, so binaries stay static). The
// database runs in WAL mode with a busy timeout, behind one connection that
// serialises every statement; the account service's load does not need
// more. Its schema is a set of versioned goose migrations embedded in the
// binary and applied by Open.
package sqlitestore

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"strings"
	"time"

	"github.com/pressly/goose/v3"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/amsrouter/ams/services/account/internal/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

const (
	// VersionTable is goose's bookkeeping table, per service so that
	// account and link may share one file.
	VersionTable = "account_goose_db_version"
	// opTimeout bounds every call whose context has no earlier deadline.
	opTimeout = 5 * time.Second
	// busyTimeoutMS is how long a statement waits for another process's
	// lock on the file.
	busyTimeoutMS = 5000
)

// Store is the SQLite account store.
type Store struct {
	db *sql.DB
}

var _ store.Store = (*Store)(nil)

// Open opens (creating if needed) the SQLite database at path, migrates it
// and returns a store. path ":memory:" gives a private in-memory database.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" {
		return nil, errors.New("open sqlite: empty path")
	}
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeoutMS))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "foreign_keys(ON)")
	q.Set("_txlock", "immediate")
	dsn := "file:" + path + "?" + q.Encode()
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open sqlite: %w", err)
	}
	// One connection: SQLite has one writer anyway, and ":memory:" is per
	// connection. It must never be recycled.
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	s := &Store{db: db}
	if err := s.Ping(ctx); err != nil {
		db.Close()
		return nil, err
	}
	if err := migrate(ctx, db); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

func migrate(ctx context.Context, db *sql.DB) error {
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db, fsys,
		goose.WithTableName(VersionTable),
		goose.WithDisableGlobalRegistry(true),
	)
	if err != nil {
		return fmt.Errorf("migration provider: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrate account schema: %w", err)
	}
	return nil
}

func withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, opTimeout)
}

// CreateAccount implements store.Store.
func (s *Store) CreateAccount(ctx context.Context, a store.Account) error {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	_, err := s.db.ExecContext(ctx,
		`INSERT INTO accounts (id, namespace, credential_hash, created_at, rotated_at)
		 VALUES (?, ?, ?, ?, ?)`,
		a.ID, a.Namespace, a.CredentialHash, store.Time(a.CreatedAt).UnixMilli(), nullMillis(a.RotatedAt))
	if err != nil {
		if uniqueViolation(err) {
			if strings.Contains(err.Error(), "accounts.namespace") {
				return store.ErrNamespaceTaken
			}
			return store.ErrConflict
		}
		return fmt.Errorf("insert account: %w", err)
	}
	return nil
}

const selectAccount = `SELECT id, namespace, credential_hash, created_at, rotated_at FROM accounts `

// AccountByCredentialHash implements store.Store.
func (s *Store) AccountByCredentialHash(ctx context.Context, hash string) (store.Account, error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	a, err := scan(s.db.QueryRowContext(ctx, selectAccount+`WHERE credential_hash = ?`, hash))
	if err != nil {
		return store.Account{}, fmt.Errorf("select account by credential: %w", err)
	}
	return a, nil
}

// AccountByID implements store.Store.
func (s *Store) AccountByID(ctx context.Context, id string) (store.Account, error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	a, err := scan(s.db.QueryRowContext(ctx, selectAccount+`WHERE id = ?`, id))
	if err != nil {
		return store.Account{}, fmt.Errorf("select account by id: %w", err)
	}
	return a, nil
}

// RotateCredential implements store.Store.
func (s *Store) RotateCredential(ctx context.Context, accountID, newHash string, at time.Time) (store.Account, error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	a, err := scan(s.db.QueryRowContext(ctx,
		`UPDATE accounts SET credential_hash = ?, rotated_at = ? WHERE id = ?
		 RETURNING id, namespace, credential_hash, created_at, rotated_at`,
		newHash, store.Time(at).UnixMilli(), accountID))
	if err != nil {
		if uniqueViolation(err) {
			err = store.ErrConflict
		}
		return store.Account{}, fmt.Errorf("rotate credential: %w", err)
	}
	return a, nil
}

// Ping implements store.Store.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("ping sqlite: %w", err)
	}
	return nil
}

// Close implements store.Store.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close sqlite: %w", err)
	}
	return nil
}

func scan(row *sql.Row) (store.Account, error) {
	var (
		a       store.Account
		created int64
		rotated sql.NullInt64
	)
	if err := row.Scan(&a.ID, &a.Namespace, &a.CredentialHash, &created, &rotated); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return store.Account{}, store.ErrNotFound
		}
		return store.Account{}, err
	}
	a.CreatedAt = time.UnixMilli(created).UTC()
	if rotated.Valid {
		a.RotatedAt = time.UnixMilli(rotated.Int64).UTC()
	}
	return a, nil
}

func nullMillis(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: store.Time(t).UnixMilli(), Valid: true}
}

func uniqueViolation(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	return se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
}
