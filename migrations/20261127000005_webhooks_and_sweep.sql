-- Durable webhooks: an outbox written in the same transaction as the state
-- change it announces, delivered at least once by a dispatcher.
CREATE TABLE IF NOT EXISTS webhook_outbox (
    id bigserial PRIMARY KEY,
    -- The idempotency id receivers deduplicate on.
    event_id uuid NOT NULL UNIQUE,
    kind text NOT NULL,
    user_id uuid NOT NULL,
    payload jsonb NOT NULL,
    status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    -- A dispatcher holds an event until then; a crashed one's lease expires.
    locked_until timestamptz,
    last_error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    delivered_at timestamptz
);

CREATE INDEX IF NOT EXISTS webhook_outbox_due_idx
    ON webhook_outbox (next_attempt_at) WHERE status = 'pending';

-- The refresh sweep remembers when it last tried a connection.
ALTER TABLE gmail_token ADD COLUMN IF NOT EXISTS swept_at timestamptz;
