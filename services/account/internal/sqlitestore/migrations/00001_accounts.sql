-- Timestamps are Unix milliseconds (UTC); rotated_at is NULL until the
-- first rotation.

-- +goose Up
CREATE TABLE accounts (
    id              TEXT    NOT NULL PRIMARY KEY,
    namespace       TEXT    NOT NULL UNIQUE,
    credential_hash TEXT    NOT NULL UNIQUE,
    created_at      INTEGER NOT NULL,
    rotated_at      INTEGER NULL
) STRICT;

-- +goose Down
DROP TABLE accounts;
