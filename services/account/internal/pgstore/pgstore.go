// Package pgstore is the Postgres engine of the account store (pgx/v5 and
// pgxpool). Its schema is a set of versioned goose migrations embedded in
// the binary and applied by Open under a Postgres advisory lock, so replicas
// starting together migrate once.
package pgstore

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/amsrouter/ams/services/account/internal/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

const (
	// VersionTable is goose's bookkeeping table. It is per service so that
	// account and link may share one database.
	VersionTable = "account_goose_db_version"
	// lockID is the advisory lock held while migrating ("ams-acct").
	lockID = 0x616d732d61636374
	// opTimeout bounds every database call whose context has no earlier
	// deadline.
	opTimeout = 5 * time.Second
	// migrateTimeout bounds a whole migration run, waiting for the lock
	// included.
	migrateTimeout = 2 * time.Minute
)

// Migrate applies every pending migration to the database at url. It takes
// an advisory lock for the run, so concurrent callers apply each migration
// once.
func Migrate(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, migrateTimeout)
	defer cancel()
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return fmt.Errorf("parse database url: %w", err)
	}
	db := stdlib.OpenDB(*cfg)
	defer db.Close()
	return migrate(ctx, db)
}

func migrate(ctx context.Context, db *sql.DB) error {
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(lockID))
	if err != nil {
		return fmt.Errorf("migration lock: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, fsys,
		goose.WithSessionLocker(locker),
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

// Store is the Postgres account store.
type Store struct {
	pool *pgxpool.Pool
}

var _ store.Store = (*Store)(nil)

// Open migrates the database at url and returns a store on a new pool.
func Open(ctx context.Context, url string) (*Store, error) {
	if err := Migrate(ctx, url); err != nil {
		return nil, err
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open postgres pool: %w", err)
	}
	return &Store{pool: pool}, nil
}

func withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, opTimeout)
}

// Unique constraints of the accounts table (see migrations).
const namespaceKey = "accounts_namespace_key"

// CreateAccount implements store.Store.
func (s *Store) CreateAccount(ctx context.Context, a store.Account) error {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	_, err := s.pool.Exec(ctx,
		`INSERT INTO accounts (id, namespace, credential_hash, created_at, rotated_at)
		 VALUES ($1, $2, $3, $4, $5)`,
		a.ID, a.Namespace, a.CredentialHash, store.Time(a.CreatedAt), nullTime(a.RotatedAt))
	if err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "23505" {
			if pe.ConstraintName == namespaceKey {
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
	a, err := scan(s.pool.QueryRow(ctx, selectAccount+`WHERE credential_hash = $1`, hash))
	if err != nil {
		return store.Account{}, fmt.Errorf("select account by credential: %w", err)
	}
	return a, nil
}

// AccountByID implements store.Store.
func (s *Store) AccountByID(ctx context.Context, id string) (store.Account, error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	a, err := scan(s.pool.QueryRow(ctx, selectAccount+`WHERE id = $1`, id))
	if err != nil {
		return store.Account{}, fmt.Errorf("select account by id: %w", err)
	}
	return a, nil
}

// RotateCredential implements store.Store.
func (s *Store) RotateCredential(ctx context.Context, accountID, newHash string, at time.Time) (store.Account, error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	a, err := scan(s.pool.QueryRow(ctx,
		`UPDATE accounts SET credential_hash = $2, rotated_at = $3 WHERE id = $1
		 RETURNING id, namespace, credential_hash, created_at, rotated_at`,
		accountID, newHash, store.Time(at)))
	if err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "23505" {
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
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("ping postgres: %w", err)
	}
	return nil
}

// Close implements store.Store.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

func scan(row pgx.Row) (store.Account, error) {
	var (
		a       store.Account
		rotated *time.Time
	)
	if err := row.Scan(&a.ID, &a.Namespace, &a.CredentialHash, &a.CreatedAt, &rotated); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return store.Account{}, store.ErrNotFound
		}
		return store.Account{}, err
	}
	a.CreatedAt = store.Time(a.CreatedAt)
	if rotated != nil {
		a.RotatedAt = store.Time(*rotated)
	}
	return a, nil
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = store.Time(t)
	return &t
}
