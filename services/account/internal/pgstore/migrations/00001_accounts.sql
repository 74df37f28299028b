-- +goose Up
CREATE TABLE accounts (
    id              text        PRIMARY KEY,
    namespace       text        NOT NULL,
    credential_hash text        NOT NULL,
    created_at      timestamptz NOT NULL,
    rotated_at      timestamptz NULL,
    CONSTRAINT accounts_namespace_key UNIQUE (namespace),
    CONSTRAINT accounts_credential_hash_key UNIQUE (credential_hash)
);

-- +goose Down
DROP TABLE accounts;
