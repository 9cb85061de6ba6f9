-- Webhook leases that outlive the delivery, and per-user order.
--
-- `lease_id` names the claim that holds an event: the dispatcher renews its
-- lease and records the outcome only while the row still carries its id, so
-- a dispatcher that lost its lease can neither extend nor overwrite another's.
-- Older binaries ignore the column.
ALTER TABLE webhook_outbox ADD COLUMN IF NOT EXISTS lease_id uuid;

-- "Is an earlier event of this user still pending?", asked for every claim.
CREATE INDEX IF NOT EXISTS webhook_outbox_user_pending_idx
    ON webhook_outbox (user_id, id) WHERE status = 'pending';
