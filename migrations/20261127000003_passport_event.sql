-- Append-only audit of everything that happens to a passport.
CREATE TABLE IF NOT EXISTS passport_event (
    id bigserial PRIMARY KEY,
    user_id uuid NOT NULL,
    provider text NOT NULL,
    kind text NOT NULL,
    scopes_before jsonb,
    scopes_after jsonb,
    email_before text,
    email_after text,
    error_code text,
    detail text,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS passport_event_user_idx ON passport_event (user_id, created_at DESC);
