-- Users, their roles, and API tokens (stored as SHA-256 digests, never in clear).
CREATE TABLE users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE api_tokens (
    token_digest TEXT PRIMARY KEY,
    user_name TEXT NOT NULL REFERENCES users (name),
    label TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
