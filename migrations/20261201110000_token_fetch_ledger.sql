-- The fetch ledger: how many access tokens the token API handed out, per
-- caller (the internal API key's name), user, provider, minute (UTC,
-- truncated) and requested scope set (normalised full URLs, sorted).
-- Written in batches by each instance; pruned after LEDGER_RETENTION_DAYS.
CREATE TABLE IF NOT EXISTS token_fetch_ledger (
    caller   text        NOT NULL,
    user_id  uuid        NOT NULL,
    provider text        NOT NULL,
    minute   timestamptz NOT NULL,
    scopes   text[]      NOT NULL,
    tokens   bigint      NOT NULL CHECK (tokens > 0),
    PRIMARY KEY (user_id, provider, minute, caller, scopes)
);

CREATE INDEX IF NOT EXISTS token_fetch_ledger_minute ON token_fetch_ledger (minute);
