-- +goose Up
CREATE TABLE conversations (
    id               text PRIMARY KEY,
    namespace        text NOT NULL,
    alias            text NOT NULL,
    owner_account_id text NOT NULL,
    -- The JSON text exactly as submitted: text, never jsonb, so that it is
    -- returned byte for byte.
    metadata         text NOT NULL,
    created_at       timestamptz NOT NULL,
    CONSTRAINT conversations_namespace_alias_key UNIQUE (namespace, alias)
);

-- Link records. Tokens are never stored: they are verified by signature.
CREATE TABLE links (
    id              text PRIMARY KEY,
    conversation_id text NOT NULL REFERENCES conversations (id),
    kid             text NOT NULL,
    created_at      timestamptz NOT NULL,
    expires_at      timestamptz,
    revoked_at      timestamptz,
    label           text
);
CREATE INDEX links_conversation_created ON links (conversation_id, created_at, id);
CREATE INDEX links_live_kid ON links (kid, expires_at) WHERE revoked_at IS NULL;

-- The revocation log gateways follow by seq.
CREATE TABLE revocations (
    seq             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    link_id         text NOT NULL UNIQUE REFERENCES links (id),
    conversation_id text NOT NULL,
    revoked_at      timestamptz NOT NULL,
    link_expires_at timestamptz
);

-- +goose Down
DROP TABLE revocations;
DROP TABLE links;
DROP TABLE conversations;
