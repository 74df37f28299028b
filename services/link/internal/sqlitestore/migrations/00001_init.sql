-- +goose Up
-- Timestamps are Unix milliseconds (UTC).
CREATE TABLE conversations (
    id               TEXT PRIMARY KEY,
    namespace        TEXT NOT NULL,
    alias            TEXT NOT NULL,
    owner_account_id TEXT NOT NULL,
    -- The JSON text exactly as submitted, returned byte for byte.
    metadata         TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    UNIQUE (namespace, alias)
) STRICT;

-- Link records. Tokens are never stored: they are verified by signature.
CREATE TABLE links (
    id              TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL REFERENCES conversations (id),
    kid             TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER,
    revoked_at      INTEGER,
    label           TEXT
) STRICT;
CREATE INDEX links_conversation_created ON links (conversation_id, created_at, id);
CREATE INDEX links_live_kid ON links (kid, expires_at) WHERE revoked_at IS NULL;

-- The revocation log gateways follow by seq.
CREATE TABLE revocations (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    link_id         TEXT NOT NULL UNIQUE REFERENCES links (id),
    conversation_id TEXT NOT NULL,
    revoked_at      INTEGER NOT NULL,
    link_expires_at INTEGER
) STRICT;

-- +goose Down
DROP TABLE revocations;
DROP TABLE links;
DROP TABLE conversations;
