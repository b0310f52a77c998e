-- sevloop schema, PostgreSQL dialect. Times are milliseconds since the Unix epoch (event time
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
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    cluster_id       TEXT NOT NULL,
    similarity       DOUBLE PRECISION NOT NULL,
    matched_terms    TEXT NOT NULL,
    log_partition    BIGINT NOT NULL,
    log_offset       BIGINT NOT NULL
);
CREATE INDEX tickets_cluster ON tickets (cluster_id);

CREATE TABLE clusters (
    cluster_id   TEXT PRIMARY KEY,
    product      TEXT NOT NULL,
    seq          BIGINT NOT NULL,
    label        TEXT NOT NULL,
    size         BIGINT NOT NULL,
    first_seen   BIGINT NOT NULL,
    last_seen    BIGINT NOT NULL,
    checkpoint   TEXT NOT NULL,
    UNIQUE (product, seq)
);

CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO counters (name, value) VALUES ('sev', 0);

CREATE TABLE sevs (
    sev_id              TEXT PRIMARY KEY,
    number              BIGINT NOT NULL UNIQUE,
    escalation_id       TEXT NOT NULL UNIQUE,
    cluster_id          TEXT NOT NULL,
    episode             BIGINT NOT NULL,
    rule                TEXT NOT NULL,
    title               TEXT NOT NULL,
    severity            TEXT NOT NULL,
    team                TEXT NOT NULL,
    state               TEXT NOT NULL,
    ticket_count        BIGINT NOT NULL,
    distinct_customers  BIGINT NOT NULL,
    first_ticket_at     BIGINT NOT NULL,
    opened_at           BIGINT NOT NULL,
    acknowledged_at     BIGINT,
    resolved_at         BIGINT,
    UNIQUE (cluster_id, episode)
);
CREATE INDEX sevs_state ON sevs (state);

CREATE TABLE sev_tickets (
    sev_id     TEXT NOT NULL REFERENCES sevs (sev_id),
    ticket_id  TEXT NOT NULL REFERENCES tickets (ticket_id),
    linked_at  BIGINT NOT NULL,
    PRIMARY KEY (sev_id, ticket_id)
);
CREATE INDEX sev_tickets_ticket ON sev_tickets (ticket_id);

CREATE TABLE sev_events (
    id          BIGSERIAL PRIMARY KEY,
    sev_id      TEXT NOT NULL REFERENCES sevs (sev_id),
    kind        TEXT NOT NULL,
    actor_role  TEXT NOT NULL,
    at          BIGINT NOT NULL,
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
    attempts         BIGINT NOT NULL,
    next_attempt_at  BIGINT NOT NULL,
    lease_until      BIGINT NOT NULL,
    last_error       TEXT,
    created_at       BIGINT NOT NULL,
    delivered_at     BIGINT
);
CREATE INDEX outbox_due ON outbox (state, next_attempt_at);

-- Where each consumer is in each log partition: the next offset to read. Written in the same
-- transaction as the effects of the records before it.
CREATE TABLE consumer_offsets (
    consumer     TEXT NOT NULL,
    topic        TEXT NOT NULL,
    log_partition BIGINT NOT NULL,
    next_offset  BIGINT NOT NULL,
    PRIMARY KEY (consumer, topic, log_partition)
);
