-- Tokens encrypted at rest: the id of the TOKEN_ENCRYPTION_KEYS key a row's token columns are
-- encrypted under. NULL: the row is plaintext (written without a key); it is encrypted on its
-- next write, or by the re-encryption at start once a key is configured.
ALTER TABLE access_tokens ADD COLUMN key_id TEXT;
ALTER TABLE provider_tokens ADD COLUMN key_id TEXT;
ALTER TABLE provider_pending_connections ADD COLUMN key_id TEXT;
