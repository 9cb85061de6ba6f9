-- A finished consent attempt is kept, marked done with its result, until it
-- expires (housekeeping purges it with the others): a replay of its callback
-- (back, then Continue again) in the browser that finished it then shows the
-- current state with a calm note instead of an error, and applies nothing.
-- Its PKCE verifier is blanked when it is marked done. Older binaries ignore
-- the columns.
ALTER TABLE oauth_state ADD COLUMN IF NOT EXISTS done_at timestamptz;
ALTER TABLE oauth_state ADD COLUMN IF NOT EXISTS result text;
