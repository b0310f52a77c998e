-- An endpoint's notifications by state: what a disabled endpoint holds (its `waiting` count, read
-- at each delivery attempt to it) and what it missed when it is called again.
CREATE INDEX outbox_endpoint ON outbox (endpoint, state);
