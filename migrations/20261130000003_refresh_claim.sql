-- A refresh in progress: the instance that set this calls Google without
-- holding a transaction; others wait for its result (or for this to pass,
-- should that instance die).
ALTER TABLE gmail_token ADD COLUMN IF NOT EXISTS refresh_claimed_until timestamptz;
