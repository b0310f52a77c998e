-- Notifications of one SEV reach each endpoint in the order they happened: `seq` orders them
-- (increasing as they are queued), `ordering_key` names the stream they must stay ordered in
-- (a SEV's events to one channel; a SEV's notes on one helpdesk ticket).
ALTER TABLE outbox ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN ordering_key TEXT NOT NULL DEFAULT '';
CREATE INDEX outbox_ordering ON outbox (ordering_key, state, seq);
