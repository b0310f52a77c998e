-- Issue 4: the SEV lifecycle, ownership and notifications.

-- Event times stay deterministic (opened_at, first_ticket_at); the wall-clock times of what
-- people and sevloop did (created, acknowledged, escalated...) measure response times.
ALTER TABLE sevs ADD COLUMN product TEXT NOT NULL DEFAULT '';
ALTER TABLE sevs ADD COLUMN created_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sevs ADD COLUMN assigned_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sevs ADD COLUMN enterprise_customers BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sevs ADD COLUMN mitigated_at BIGINT;
ALTER TABLE sevs ADD COLUMN declined_at BIGINT;
ALTER TABLE sevs ADD COLUMN decline_reason TEXT;
ALTER TABLE sevs ADD COLUMN merged_into TEXT;
ALTER TABLE sevs ADD COLUMN escalated_at BIGINT;
ALTER TABLE sevs ADD COLUMN escalated_to TEXT;
ALTER TABLE sevs ADD COLUMN reopened BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sevs ADD COLUMN previous_sev TEXT;
CREATE INDEX sevs_team_state ON sevs (team, state);

-- A SEV's distinct customers, so counts grow by one insert per link instead of a recount.
CREATE TABLE sev_customers (
    sev_id       TEXT NOT NULL REFERENCES sevs (sev_id),
    customer_id  TEXT NOT NULL,
    tier         TEXT NOT NULL,
    first_at     BIGINT NOT NULL,
    PRIMARY KEY (sev_id, customer_id)
);
CREATE INDEX sev_customers_first ON sev_customers (sev_id, first_at);

-- Every action a person asked for, and what came of it (applied, or refused and why).
CREATE TABLE sev_actions (
    action_id     TEXT PRIMARY KEY,
    sev_id        TEXT NOT NULL,
    kind          TEXT NOT NULL,
    request       TEXT NOT NULL,
    actor_role    TEXT NOT NULL,
    requested_at  BIGINT NOT NULL,
    outcome       TEXT NOT NULL
);
CREATE INDEX sev_actions_sev ON sev_actions (sev_id);

-- A reroute's lasting effect: later SEVs of the cluster go to this team.
CREATE TABLE cluster_owners (
    cluster_id  TEXT PRIMARY KEY,
    team        TEXT NOT NULL,
    sev_id      TEXT NOT NULL,
    at          BIGINT NOT NULL
);

-- Notification endpoints that told us to stop (410 Gone).
CREATE TABLE endpoints (
    name         TEXT PRIMARY KEY,
    disabled_at  BIGINT NOT NULL,
    reason       TEXT NOT NULL
);
