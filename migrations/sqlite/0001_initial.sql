-- sevloop schema, SQLite dialect. Times are milliseconds since the Unix epoch (event time
-- unless the column says wall), so the same queries run on PostgreSQL and SQLite.

CREATE TABLE tickets (
    ticket_id        TEXT PRIMARY KEY,
    product          TEXT NOT NULL,
    status           TEXT NOT NULL,
    subject          TEXT NOT NULL,
    body             TEXT NOT NULL,
    component        TEXT,
    tags             TEXT NOT NULL,
    customer_id      TEXT NOT NULL,
    customer_tier    TEXT NOT NULL,
    channel          TEXT NOT NULL,
    source           TEXT NOT NULL,
    raw              TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    cluster_id       TEXT NOT NULL,
    similarity       REAL NOT NULL,
    matched_terms    TEXT NOT NULL,
    log_partition    INTEGER NOT NULL,
    log_offset       INTEGER NOT NULL
);
CREATE INDEX tickets_cluster ON tickets (cluster_id);

CREATE TABLE clusters (
    cluster_id   TEXT PRIMARY KEY,
    product      TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    label        TEXT NOT NULL,
    size         INTEGER NOT NULL,
    first_seen   INTEGER NOT NULL,
    last_seen    INTEGER NOT NULL,
    checkpoint   TEXT NOT NULL,
    UNIQUE (product, seq)
);

CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT INTO counters (name, value) VALUES ('sev', 0);

CREATE TABLE sevs (
    sev_id              TEXT PRIMARY KEY,
    number              INTEGER NOT NULL UNIQUE,
    escalation_id       TEXT NOT NULL UNIQUE,
    cluster_id          TEXT NOT NULL,
    episode             INTEGER NOT NULL,
    rule                TEXT NOT NULL,
    title               TEXT NOT NULL,
    severity            TEXT NOT NULL,
    team                TEXT NOT NULL,
    state               TEXT NOT NULL,
    ticket_count        INTEGER NOT NULL,
    distinct_customers  INTEGER NOT NULL,
    first_ticket_at     INTEGER NOT NULL,
    opened_at           INTEGER NOT NULL,
    acknowledged_at     INTEGER,
    resolved_at         INTEGER,
    UNIQUE (cluster_id, episode)
);
CREATE INDEX sevs_state ON sevs (state);

CREATE TABLE sev_tickets (
    sev_id     TEXT NOT NULL REFERENCES sevs (sev_id),
    ticket_id  TEXT NOT NULL REFERENCES tickets (ticket_id),
    linked_at  INTEGER NOT NULL,
    PRIMARY KEY (sev_id, ticket_id)
);
CREATE INDEX sev_tickets_ticket ON sev_tickets (ticket_id);

CREATE TABLE sev_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    sev_id      TEXT NOT NULL REFERENCES sevs (sev_id),
    kind        TEXT NOT NULL,
    actor_role  TEXT NOT NULL,
    at          INTEGER NOT NULL,
    detail      TEXT NOT NULL
);
CREATE INDEX sev_events_sev ON sev_events (sev_id);

-- Notifications waiting to leave. The id is the idempotency key receivers deduplicate on.
CREATE TABLE outbox (
    id               TEXT PRIMARY KEY,
    sev_id           TEXT NOT NULL REFERENCES sevs (sev_id),
    endpoint         TEXT NOT NULL,
    kind             TEXT NOT NULL,
    payload          TEXT NOT NULL,
    state            TEXT NOT NULL,
    attempts         INTEGER NOT NULL,
    next_attempt_at  INTEGER NOT NULL,
    lease_until      INTEGER NOT NULL,
    last_error       TEXT,
    created_at       INTEGER NOT NULL,
    delivered_at     INTEGER
);
CREATE INDEX outbox_due ON outbox (state, next_attempt_at);

-- Where each consumer is in each log partition: the next offset to read. Written in the same
-- transaction as the effects of the records before it.
CREATE TABLE consumer_offsets (
    consumer     TEXT NOT NULL,
    topic        TEXT NOT NULL,
    log_partition INTEGER NOT NULL,
    next_offset  INTEGER NOT NULL,
    PRIMARY KEY (consumer, topic, log_partition)
);
