// Package sqlitestore is the SQLite implementation of store.Store (pure Go,
// modernc.org/sqlite), used by the all-in-one run mode. Its schema is the
// embedded goose migrations under migrations/, applied by Open.
//
// The store keeps one connection open: SQLite has one writer anyway, and a
// single connection makes every transaction serial, so uniqueness checks,
// idempotent revocation and the revocation log order need no retry logic.
// Timestamps are stored as Unix milliseconds.
package sqlitestore

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/pressly/goose/v3"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/amsrouter/ams/services/link/internal/store"
)

// OpTimeout bounds every store call that has no earlier deadline.
const OpTimeout = 5 * time.Second

// VersionTable is goose's bookkeeping table of the link schema.
const VersionTable = "link_goose_db_version"

//go:embed migrations/*.sql
var migrations embed.FS

// Store is a SQLite store.
type Store struct {
	db *sql.DB
}

var _ store.Store = (*Store)(nil)

// Open opens (creating if needed) the database file at path, applies the
// pending migrations and returns the store.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" || strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("sqlite path %q: want a plain file path", path)
	}
	dsn := "file:" + path + "?_pragma=foreign_keys(1)&_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open sqlite: %w", err)
	}
	db.SetMaxOpenConns(1)
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
	dir, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db, dir,
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

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Ping checks the database answers.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, OpTimeout)
	defer cancel()
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("ping database: %w", err)
	}
	return nil
}

func ms(t time.Time) int64 { return t.UnixMilli() }

func nullMs(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMilli(), Valid: true}
}

func fromMs(v int64) time.Time { return time.UnixMilli(v).UTC() }

func fromNullMs(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return fromMs(v.Int64)
}

func sqliteCode(err error) int {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code()
	}
	return 0
}

type execer interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
}

func insertLink(ctx context.Context, q execer, l store.Link) error {
	_, err := q.ExecContext(ctx,
		`INSERT INTO links (id, conversation_id, kid, created_at, expires_at, revoked_at, label)
		 VALUES (?, ?, ?, ?, ?, ?, ?)`,
		l.ID, l.ConversationID, l.KeyID, ms(l.CreatedAt), nullMs(l.ExpiresAt), nullMs(l.RevokedAt), l.Label)
	return err
}

// inTx runs fn in a transaction, committing if it returns nil.
func (s *Store) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// CreateConversation inserts the conversation and its first link in one
// transaction.
func (s *Store) CreateConversation(ctx context.Context, c store.Conversation, l store.Link) error {
	ctx, cancel := context.WithTimeout(ctx, OpTimeout)
	defer cancel()
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO conversations (id, namespace, alias, owner_account_id, metadata, created_at)
			 VALUES (?, ?, ?, ?, ?, ?)`,
			c.ID, c.Namespace, c.Alias, c.OwnerAccountID, c.MetadataJSON, ms(c.CreatedAt)); err != nil {
			return err
		}
		return insertLink(ctx, tx, l)
	})
	if err != nil {
		if sqliteCode(err) == sqlite3.SQLITE_CONSTRAINT_UNIQUE && strings.Contains(err.Error(), "conversations.namespace") {
			return store.ErrAliasTaken
		}
		return fmt.Errorf("insert conversation: %w", err)
	}
	return nil
}

const conversationCols = `id, namespace, alias, owner_account_id, metadata, created_at`

func scanConversation(row *sql.Row) (store.Conversation, error) {
	var (
		c       store.Conversation
		created int64
	)
	err := row.Scan(&c.ID, &c.Namespace, &c.Alias, &c.OwnerAccountID, &c.MetadataJSON, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Conversation{}, store.ErrNotFound
	}
	if err != nil {
		return store.Conversation{}, fmt.Errorf("select conversation: %w", err)
	}
	c.CreatedAt = fromMs(created)
	return c, nil
}

// ConversationByAlias returns the conversation (namespace, alias).
func (s *Store) ConversationByAlias(ctx context.Context, namespace, alias string) (store.Conversation, error) {
	ctx, cancel := context.WithTimeout(ctx, OpTimeout)
	defer cancel()
	return scanConversation(s.db.QueryRowContext(ctx,
		`SELECT `+conversationCols+` FROM conversations WHERE namespace = ? AND alias = ?`, namespace, alias))
}

// ConversationByID returns the conversation with the id.
func (s *Store) ConversationByID(ctx context.Context, id string) (store.Conversation, error) {
	ctx, cancel := context.WithTimeout(ctx, OpTimeout)
	defer cancel()
	return scanConversation(s.db.QueryRowContext(ctx,
		`SELECT `+conversationCols+` FROM conversations WHERE id = ?`, id))
}

// CreateLink inserts a link.
func (s *Store) CreateLink(ctx context.Context, l store.Link) error {
	ctx, cancel := context.WithTimeout(ctx, OpTimeout)
	defer cancel()
	if err := insertLink(ctx, s.db, l); err != nil {
		if sqliteCode(err) == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY {
			return store.ErrNotFound
		}
		return fmt.Errorf("insert link: %w", err)
	}
	return nil
}

const linkCols = `id, conversation_id, kid, created_at, expires_at, revoked_at, label`

type scanner interface{ Scan(...any) error }

func scanLink(row scanner) (store.Link, error) {
	var (
		l                store.Link
		created          int64
		expires, revoked sql.NullInt64
		label            sql.NullString
	)
	if err := row.Scan(&l.ID, &l.ConversationID, &l.KeyID, &created, &expires, &revoked, &label); err != nil {
		return store.Link{}, err
	}
	l.CreatedAt = fromMs(created)
	l.ExpiresAt = fromNullMs(expires)
	l.RevokedAt = fromNullMs(revoked)
	if label.Valid {
		l.Label = &label.String
	}
	return l, nil
}

// ListLinks returns the conversation's links, oldest first.
func (s *Store) ListLinks(ctx context.Context, conversationID string) ([]store.Link, error) {
	ctx, cancel := context.WithTimeout(ctx, OpTimeout)
	defer cancel()
	rows, err := s.db.QueryContext(ctx,
		`SELECT `+linkCols+` FROM links WHERE conversation_id = ? ORDER BY created_at, id`, conversationID)
	if err != nil {
		return nil, fmt.Errorf("select links: %w", err)
	}
	defer rows.Close()
	var links []store.Link
	for rows.Next() {
		l, err := scanLink(rows)
		if err != nil {
			return nil, fmt.Errorf("select links: %w", err)
		}
		links = append(links, l)
	}
	if err := rows.Err(); err != nil {
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
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		l, err = scanLink(tx.QueryRowContext(ctx,
			`UPDATE links SET revoked_at = ? WHERE conversation_id = ? AND id = ? AND revoked_at IS NULL
			 RETURNING `+linkCols, ms(at), conversationID, linkID))
		if errors.Is(err, sql.ErrNoRows) {
			l, err = scanLink(tx.QueryRowContext(ctx,
				`SELECT `+linkCols+` FROM links WHERE conversation_id = ? AND id = ?`, conversationID, linkID))
			if errors.Is(err, sql.ErrNoRows) {
				return store.ErrLinkNotFound
			}
			return err
		}
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx,
			`INSERT INTO revocations (link_id, conversation_id, revoked_at, link_expires_at) VALUES (?, ?, ?, ?)`,
			l.ID, l.ConversationID, ms(l.RevokedAt), nullMs(l.ExpiresAt))
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
	rows, err := s.db.QueryContext(ctx,
		`SELECT seq, link_id, conversation_id, revoked_at, link_expires_at FROM revocations
		 WHERE seq > ? AND (link_expires_at IS NULL OR link_expires_at >= ?)
		 ORDER BY seq LIMIT ?`,
		after, ms(now.Add(-store.RevocationRetention)), limit)
	if err != nil {
		return nil, after, fmt.Errorf("select revocations: %w", err)
	}
	defer rows.Close()
	var revs []store.Revocation
	for rows.Next() {
		var (
			v       store.Revocation
			revoked int64
			expires sql.NullInt64
		)
		if err := rows.Scan(&v.Seq, &v.LinkID, &v.ConversationID, &revoked, &expires); err != nil {
			return nil, after, fmt.Errorf("select revocations: %w", err)
		}
		v.RevokedAt = fromMs(revoked)
		v.LinkExpiresAt = fromNullMs(expires)
		revs = append(revs, v)
	}
	if err := rows.Err(); err != nil {
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
	rows, err := s.db.QueryContext(ctx,
		`SELECT DISTINCT kid FROM links WHERE revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?) ORDER BY kid`,
		ms(now.Add(-store.ExpiryLeeway)))
	if err != nil {
		return nil, fmt.Errorf("select live kids: %w", err)
	}
	defer rows.Close()
	var kids []string
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			return nil, fmt.Errorf("select live kids: %w", err)
		}
		kids = append(kids, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("select live kids: %w", err)
	}
	return kids, nil
}
