-- One row per consent attempt in flight. The raw `state` exists only in the URL;
-- the row is keyed by its SHA-256 and consumed exactly once (DELETE ... RETURNING).
CREATE TABLE IF NOT EXISTS oauth_state (
    state_hash bytea PRIMARY KEY,
    user_id uuid NOT NULL,
    provider text NOT NULL,
    pkce_verifier text NOT NULL,
    requested_scopes jsonb NOT NULL,
    return_to text NOT NULL,
    browser_nonce_hash bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);

CREATE INDEX IF NOT EXISTS oauth_state_expires_at_idx ON oauth_state (expires_at);
