-- Google's revocation signals (RISC, Cross-Account Protection).
--
-- `risc_event`: one row per Security Event Token received and verified,
-- keyed by its `jti`, so a token delivered twice changes nothing the second
-- time. Pruned with `passport_event` (EVENT_RETENTION_DAYS).
CREATE TABLE IF NOT EXISTS risc_event (
    jti text PRIMARY KEY,
    event_type text NOT NULL,
    subject_kind text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    connections_marked integer NOT NULL DEFAULT 0,
    detail text
);
CREATE INDEX IF NOT EXISTS risc_event_received_at ON risc_event (received_at);

-- What a `token-revoked` event names a refresh token by, never the token:
-- `refresh_token_sha512` = base64(SHA-512(SHA-512(token))) (Google's
-- `hash_base64_sha512_sha512`), `refresh_prefix_mac` =
-- `<key id>:<base64url HMAC-SHA256 of the token's first 16 characters>`
-- under a key derived from TOKEN_ENCRYPTION_KEYS (Google's `prefix`).
ALTER TABLE gmail_token ADD COLUMN IF NOT EXISTS refresh_token_sha512 text;
ALTER TABLE gmail_token ADD COLUMN IF NOT EXISTS refresh_prefix_mac text;
CREATE INDEX IF NOT EXISTS gmail_token_refresh_token_sha512
    ON gmail_token (refresh_token_sha512) WHERE refresh_token_sha512 IS NOT NULL;
CREATE INDEX IF NOT EXISTS gmail_token_refresh_prefix_mac
    ON gmail_token (refresh_prefix_mac) WHERE refresh_prefix_mac IS NOT NULL;
-- Subject-wide events find every connection of one Google account.
CREATE INDEX IF NOT EXISTS gmail_token_google_sub ON gmail_token (google_sub);

-- A writer that replaces the refresh token without new identifiers (the old
-- service, an operator) leaves none rather than stale ones. The service
-- writes them right after the token, in the same transaction.
CREATE OR REPLACE FUNCTION gmail_token_refresh_ids_stale() RETURNS trigger AS $$
BEGIN
    NEW.refresh_token_sha512 := NULL;
    NEW.refresh_prefix_mac := NULL;
    RETURN NEW;
END
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS gmail_token_refresh_ids_stale ON gmail_token;
CREATE TRIGGER gmail_token_refresh_ids_stale
    BEFORE UPDATE OF refresh_token ON gmail_token
    FOR EACH ROW
    WHEN (NEW.refresh_token IS DISTINCT FROM OLD.refresh_token
          AND NEW.refresh_token_sha512 IS NOT DISTINCT FROM OLD.refresh_token_sha512)
    EXECUTE FUNCTION gmail_token_refresh_ids_stale();
