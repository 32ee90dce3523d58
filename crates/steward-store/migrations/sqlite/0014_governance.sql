-- Governance: users can be disabled and deleted (a tombstone keeps the name taken, since the
-- ledger and the four-eyes rule refer to it), tokens get a public id, an expiry and a
-- revocation time; registered models get an immutable id that renames keep, so deployments
-- bind to the model and not to its name; versions record the digest of their files.
ALTER TABLE users ADD COLUMN disabled BIGINT NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN deleted_at BIGINT;
ALTER TABLE api_tokens ADD COLUMN id TEXT;
ALTER TABLE api_tokens ADD COLUMN expires_at BIGINT;
ALTER TABLE api_tokens ADD COLUMN revoked_at BIGINT;
UPDATE api_tokens SET id = 'tok_' || substr(token_digest, 1, 16);
CREATE UNIQUE INDEX api_tokens_by_id ON api_tokens (id);
CREATE INDEX api_tokens_by_user ON api_tokens (user_name);
ALTER TABLE registered_models ADD COLUMN id TEXT;
UPDATE registered_models SET id = lower(hex(randomblob(16)));
CREATE UNIQUE INDEX registered_models_by_id ON registered_models (id);
ALTER TABLE model_versions ADD COLUMN content_digest TEXT;
