-- gmail_token: one Google connection per ro-being user.
--
-- The table already exists in production (written by the old Python service and
-- read by other services). This migration ADOPTS it: it creates the table on an
-- empty database and, on an existing one, only adds what is missing. It never
-- drops, renames or rewrites existing columns or data. Columns that may come from
-- the old table (access_token, refresh_token, scopes) are therefore nullable.
CREATE TABLE IF NOT EXISTS gmail_token (
    user_id uuid PRIMARY KEY
);

ALTER TABLE gmail_token ADD COLUMN IF NOT EXISTS email text;
ALTER TABLE gmail_token ADD COLUMN IF NOT EXISTS google_sub text;
ALTER TABLE gmail_token ADD COLUMN IF NOT EXISTS access_token text;
ALTER TABLE gmail_token ADD COLUMN IF NOT EXISTS refresh_token text;
ALTER TABLE gmail_token ADD COLUMN IF NOT EXISTS token_type text;
ALTER TABLE gmail_token ADD COLUMN IF NOT EXISTS expires_at timestamptz;
ALTER TABLE gmail_token ADD COLUMN IF NOT EXISTS scopes jsonb;
ALTER TABLE gmail_token ADD COLUMN IF NOT EXISTS status text NOT NULL DEFAULT 'active';
ALTER TABLE gmail_token ADD COLUMN IF NOT EXISTS last_error text;
ALTER TABLE gmail_token ADD COLUMN IF NOT EXISTS last_refreshed_at timestamptz;
ALTER TABLE gmail_token ADD COLUMN IF NOT EXISTS consented_at timestamptz;
ALTER TABLE gmail_token ADD COLUMN IF NOT EXISTS created_at timestamptz NOT NULL DEFAULT now();
ALTER TABLE gmail_token ADD COLUMN IF NOT EXISTS updated_at timestamptz NOT NULL DEFAULT now();

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'gmail_token_status_check') THEN
        ALTER TABLE gmail_token
            ADD CONSTRAINT gmail_token_status_check
            CHECK (status IN ('active', 'reauth_required', 'revoked'));
    END IF;
END
$$;
