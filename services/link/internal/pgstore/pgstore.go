// Package pgstore is the Postgres implementation of store.Store, on a pgx
// connection pool. Its schema is the embedded goose migrations under
// migrations/, applied by Open (or Migrate) under goose's Postgres advisory
// session lock, so replicas starting together migrate once.
//
// Every call runs under a deadline of at most OpTimeout. Revocations are
// appended to the log under a transaction-scoped advisory lock, so their seq
// order is also their commit order and a reader following the log by seq
// never skips an entry that commits late.
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

	"github.com/amsrouter/ams/services/link/internal/store"
)

// OpTimeout bounds every store call that has no earlier deadline.
const OpTimeout = 5 * time.Second

// VersionTable is goose's bookkeeping table of the link schema, named so
// that services sharing one database keep separate histories.
const VersionTable = "link_goose_db_version"

const (
	// migrationLockID is the advisory lock of link migrations (distinct
	// from goose's default, which other services use).
	migrationLockID int64 = 0x616d736c696e6b // "amslink"
	// revocationLockID serialises appends to the revocation log.
	revocationLockID int64 = 0x616d737265766f // "amsrevo"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Store is a Postgres store.
type Store struct {
	pool *pgxpool.Pool
}

var _ store.Store = (*Store)(nil)

// Migrate applies the pending migrations to the database at url and returns.
// It is the migrate function for pgtest templates and `ams migrate`.
func Migrate(ctx context.Context, url string) error {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return fmt.Errorf("parse database url: %w", err)
	}
	cfg.ConnectTimeout = OpTimeout
	db := stdlib.OpenDB(*cfg)
	defer db.Close()
	return migrate(ctx, db)
}

func migrate(ctx context.Context, db *sql.DB) error {
	dir, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(migrationLockID), lock.WithLockTimeout(1, 300))
	if err != nil {
		return fmt.Errorf("migration lock: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, dir,
		goose.WithSessionLocker(locker),
		goose.WithTableName(VersionTable),
		goose.WithDisableGlobalRegistry(true),
	)
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// Open migrates the database at url, then returns a store on a pool.
func Open(ctx context.Context, url string) (*Store, error) {
	if err := Migrate(ctx, url); err != nil {
		return nil, err
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	cfg.ConnConfig.ConnectTimeout = OpTimeout
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open pool: %w", err)
	}
	s := &Store{pool: pool}
	if err := s.Ping(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the pool.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// Ping checks the database answers.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, OpTimeout)
	defer cancel()
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("ping database: %w", err)
	}
	return nil
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := store.Millis(t)
	return &u
}

func fromNull(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

// CreateConversation inserts the conversation and its first link in one
// transaction.
func (s *Store) CreateConversation(ctx context.Context, c store.Conversation, l store.Link) error {
	ctx, cancel := context.WithTimeout(ctx, OpTimeout)
	defer cancel()
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx,
			`INSERT INTO conversations (id, namespace, alias, owner_account_id, metadata, created_at)
			 VALUES ($1, $2, $3, $4, $5, $6)`,
			c.ID, c.Namespace, c.Alias, c.OwnerAccountID, c.MetadataJSON, store.Millis(c.CreatedAt)); err != nil {
			return err
		}
		return insertLink(ctx, tx, l)
	})
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == "conversations_namespace_alias_key" {
			return store.ErrAliasTaken
		}
		return fmt.Errorf("insert conversation: %w", err)
	}
	return nil
}

func insertLink(ctx context.Context, q interface {
	Exec(context.Context, string, ...any) (pgconn.CommandTag, error)
}, l store.Link) error {
	_, err := q.Exec(ctx,
		`INSERT INTO links (id, conversation_id, kid, created_at, expires_at, revoked_at, label)
		 VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		l.ID, l.ConversationID, l.KeyID, store.Millis(l.CreatedAt), nullTime(l.ExpiresAt), nullTime(l.RevokedAt), l.Label)
	return err
}

const conversationCols = `id, namespace, alias, owner_account_id, metadata, created_at`

func scanConversation(row pgx.Row) (store.Conversation, error) {
	var c store.Conversation
	err := row.Scan(&c.ID, &c.Namespace, &c.Alias, &c.OwnerAccountID, &c.MetadataJSON, &c.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Conversation{}, store.ErrNotFound
	}
	if err != nil {
		return store.Conversation{}, fmt.Errorf("select conversation: %w", err)
	}
	c.CreatedAt = c.CreatedAt.UTC()
	return c, nil
}

// ConversationByAlias returns the conversation (namespace, alias).
func (s *Store) ConversationByAlias(ctx context.Context, namespace, alias string) (store.Conversation, error) {
	ctx, cancel := context.WithTimeout(ctx, OpTimeout)
	defer cancel()
	return scanConversation(s.pool.QueryRow(ctx,
		`SELECT `+conversationCols+` FROM conversations WHERE namespace = $1 AND alias = $2`, namespace, alias))
}

// ConversationByID returns the conversation with the id.
func (s *Store) ConversationByID(ctx context.Context, id string) (store.Conversation, error) {
	ctx, cancel := context.WithTimeout(ctx, OpTimeout)
	defer cancel()
	return scanConversation(s.pool.QueryRow(ctx,
		`SELECT `+conversationCols+` FROM conversations WHERE id = $1`, id))
}

// CreateLink inserts a link.
func (s *Store) CreateLink(ctx context.Context, l store.Link) error {
	ctx, cancel := context.WithTimeout(ctx, OpTimeout)
	defer cancel()
	if err := insertLink(ctx, s.pool, l); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "23503" {
			return store.ErrNotFound
		}
		return fmt.Errorf("insert link: %w", err)
	}
	return nil
}

const linkCols = `id, conversation_id, kid, created_at, expires_at, revoked_at, label`

func scanLink(row pgx.Row) (store.Link, error) {
	var (
		l                store.Link
		expires, revoked *time.Time
	)
	if err := row.Scan(&l.ID, &l.ConversationID, &l.KeyID, &l.CreatedAt, &expires, &revoked, &l.Label); err != nil {
		return store.Link{}, err
	}
	l.CreatedAt = l.CreatedAt.UTC()
	l.ExpiresAt = fromNull(expires)
	l.RevokedAt = fromNull(revoked)
	return l, nil
}

// ListLinks returns the conversation's links, oldest first.
func (s *Store) ListLinks(ctx context.Context, conversationID string) ([]store.Link, error) {
	ctx, cancel := context.WithTimeout(ctx, OpTimeout)
	defer cancel()
	rows, err := s.pool.Query(ctx,
		`SELECT `+linkCols+` FROM links WHERE conversation_id = $1 ORDER BY created_at, id`, conversationID)
	if err != nil {
		return nil, fmt.Errorf("select links: %w", err)
	}
	links, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Link, error) { return scanLink(r) })
	if err != nil {
		return nil, fmt.Errorf("select links: %w", err)
	}
	return links, nil
}

// RevokeLink revokes the link once; later calls return the first
// revocation.
func (s *Store) RevokeLink(ctx context.Context, conversationID, linkID string, at time.Time) (store.Link, error) {
	ctx, cancel := context.WithTimeout(ctx, OpTimeout)
	defer cancel()
	var l store.Link
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		// A concurrent revocation holds the row lock; once it commits, this
		// UPDATE re-checks revoked_at IS NULL and matches nothing.
		l, err = scanLink(tx.QueryRow(ctx,
			`UPDATE links SET revoked_at = $3 WHERE conversation_id = $1 AND id = $2 AND revoked_at IS NULL
			 RETURNING `+linkCols, conversationID, linkID, store.Millis(at)))
		if errors.Is(err, pgx.ErrNoRows) {
			l, err = scanLink(tx.QueryRow(ctx,
				`SELECT `+linkCols+` FROM links WHERE conversation_id = $1 AND id = $2`, conversationID, linkID))
			if errors.Is(err, pgx.ErrNoRows) {
				return store.ErrLinkNotFound
			}
			return err
		}
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, revocationLockID); err != nil {
			return err
		}
		_, err = tx.Exec(ctx,
			`INSERT INTO revocations (link_id, conversation_id, revoked_at, link_expires_at) VALUES ($1, $2, $3, $4)`,
			l.ID, l.ConversationID, l.RevokedAt, nullTime(l.ExpiresAt))
		return err
	})
	if errors.Is(err, store.ErrLinkNotFound) {
		return store.Link{}, err
	}
	if err != nil {
		return store.Link{}, fmt.Errorf("revoke link: %w", err)
	}
	return l, nil
}

// ListRevocations returns log entries after the cursor.
func (s *Store) ListRevocations(ctx context.Context, after int64, limit int, now time.Time) ([]store.Revocation, int64, error) {
	ctx, cancel := context.WithTimeout(ctx, OpTimeout)
	defer cancel()
	rows, err := s.pool.Query(ctx,
		`SELECT seq, link_id, conversation_id, revoked_at, link_expires_at FROM revocations
		 WHERE seq > $1 AND (link_expires_at IS NULL OR link_expires_at >= $2)
		 ORDER BY seq LIMIT $3`,
		after, now.Add(-store.RevocationRetention).UTC(), limit)
	if err != nil {
		return nil, after, fmt.Errorf("select revocations: %w", err)
	}
	revs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Revocation, error) {
		var (
			v       store.Revocation
			expires *time.Time
		)
		err := r.Scan(&v.Seq, &v.LinkID, &v.ConversationID, &v.RevokedAt, &expires)
		v.RevokedAt = v.RevokedAt.UTC()
		v.LinkExpiresAt = fromNull(expires)
		return v, err
	})
	if err != nil {
		return nil, after, fmt.Errorf("select revocations: %w", err)
	}
	next := after
	if len(revs) > 0 {
		next = revs[len(revs)-1].Seq
	}
	return revs, next, nil
}

// LiveKeyIDs returns the kids of links that can still be admitted.
func (s *Store) LiveKeyIDs(ctx context.Context, now time.Time) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, OpTimeout)
	defer cancel()
	rows, err := s.pool.Query(ctx,
		`SELECT DISTINCT kid FROM links WHERE revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $1) ORDER BY kid`,
		now.Add(-store.ExpiryLeeway).UTC())
	if err != nil {
		return nil, fmt.Errorf("select live kids: %w", err)
	}
	kids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("select live kids: %w", err)
	}
	return kids, nil
}
