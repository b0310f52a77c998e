-- Issue 5: indexes the dashboard reads by (the SEV and overview endpoints benefit too).

-- A SEV's notifications, per channel, in order.
CREATE INDEX outbox_sev ON outbox (sev_id, seq);

-- Tickets filed in a period (leadership) or in the last two days (cluster growth), with their
-- cluster: answered from the index alone, without reading ticket rows.
CREATE INDEX tickets_created ON tickets (created_at, cluster_id);

-- Where a cluster went, without reading its row (and its large checkpoint).
CREATE INDEX clusters_merged ON clusters (cluster_id, merged_into);
