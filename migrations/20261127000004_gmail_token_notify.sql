-- Every change to gmail_token, by this service or any other writer, is
-- announced on the channel `gmail_token_changed` (payload: the user id, or
-- `*` after a TRUNCATE). Each auth-server instance listens and drops its
-- cached copy of that user's token within milliseconds.
CREATE OR REPLACE FUNCTION gmail_token_notify() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('gmail_token_changed', OLD.user_id::text);
    ELSE
        PERFORM pg_notify('gmail_token_changed', NEW.user_id::text);
    END IF;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION gmail_token_notify_truncate() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('gmail_token_changed', '*');
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS gmail_token_notify ON gmail_token;
CREATE TRIGGER gmail_token_notify
    AFTER INSERT OR UPDATE OR DELETE ON gmail_token
    FOR EACH ROW EXECUTE FUNCTION gmail_token_notify();

DROP TRIGGER IF EXISTS gmail_token_notify_truncate ON gmail_token;
CREATE TRIGGER gmail_token_notify_truncate
    AFTER TRUNCATE ON gmail_token
    FOR EACH STATEMENT EXECUTE FUNCTION gmail_token_notify_truncate();
