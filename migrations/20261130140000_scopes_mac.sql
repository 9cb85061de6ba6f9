-- Tamper evidence for gmail_token.scopes: the service writes, in the same
-- statement as the scopes, `scopes_mac` = `<key id>:<base64url(HMAC-SHA256)>`
-- over the user, the grant and the canonical scope list, under a key only the
-- service holds (derived from TOKEN_ENCRYPTION_KEYS). Rows adopted from the
-- old service have none: they count as unverified until their first check,
-- when the service asks Google what the grant holds.
ALTER TABLE gmail_token ADD COLUMN IF NOT EXISTS scopes_mac text;

-- A writer that changes the scopes without a new MAC (an operator's UPDATE,
-- the old service) leaves the row unverified at once, so `auth-server report`
-- can count it. The MAC itself is the check; this only keeps the count honest.
CREATE OR REPLACE FUNCTION gmail_token_scopes_unverified() RETURNS trigger AS $$
BEGIN
    NEW.scopes_mac := NULL;
    RETURN NEW;
END
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS gmail_token_scopes_unverified ON gmail_token;
CREATE TRIGGER gmail_token_scopes_unverified
    BEFORE UPDATE OF scopes ON gmail_token
    FOR EACH ROW
    WHEN (NEW.scopes IS DISTINCT FROM OLD.scopes
          AND NEW.scopes_mac IS NOT DISTINCT FROM OLD.scopes_mac)
    EXECUTE FUNCTION gmail_token_scopes_unverified();
