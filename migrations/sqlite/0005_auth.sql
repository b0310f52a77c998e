-- Issue 5: tokens with roles, and dashboard sessions. Only hashes of secrets are stored.
CREATE TABLE tokens (
    token_id     TEXT PRIMARY KEY,
    secret_hash  TEXT NOT NULL UNIQUE,
    role         TEXT NOT NULL,
    team         TEXT,
    label        TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    revoked_at   INTEGER
);

CREATE TABLE sessions (
    session_hash  TEXT PRIMARY KEY,
    token_id      TEXT NOT NULL REFERENCES tokens (token_id),
    csrf          TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL
);
CREATE INDEX sessions_token ON sessions (token_id);
