-- A consent attempt is marked in use when its callback starts (a replay is
-- refused from then on) and deleted in the transaction that stores the
-- connection. An attempt left in use means its instance stopped in between:
-- its replay shows a "start again" page. Older binaries ignore the column.
ALTER TABLE oauth_state ADD COLUMN IF NOT EXISTS used_at timestamptz;

-- Retention: old audit events and delivered webhooks are pruned by age, in
-- batches; these indexes find them without scanning the tables.
CREATE INDEX IF NOT EXISTS passport_event_created_at_idx ON passport_event (created_at);
CREATE INDEX IF NOT EXISTS webhook_outbox_delivered_at_idx
    ON webhook_outbox (delivered_at) WHERE status = 'delivered';
