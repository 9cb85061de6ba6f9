-- A refresh in progress: the instance that set this calls Google without
-- holding a transaction; others wait for its result (or for this to pass,
-- should that instance die).
ALTER TABLE gmail_token ADD COLUMN IF NOT EXISTS refresh_claimed_until timestamptz;

-- Taking or giving back a claim changes nothing a cached token depends on:
-- no notification for it (notifying commits are serialised by PostgreSQL, so
-- a refresh storm would otherwise queue behind them).
CREATE OR REPLACE FUNCTION gmail_token_notify() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('gmail_token_changed', OLD.user_id::text);
    ELSIF TG_OP = 'UPDATE'
        AND to_jsonb(NEW) - 'refresh_claimed_until' = to_jsonb(OLD) - 'refresh_claimed_until' THEN
        NULL;
    ELSE
        PERFORM pg_notify('gmail_token_changed', NEW.user_id::text);
    END IF;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;
