-- Which SEV covers a cluster: its own, or the one it joined (a related cluster crossed while
-- that SEV was open). The cluster API reads a cluster's latest SEV from here.
CREATE TABLE sev_clusters (
    cluster_id  TEXT NOT NULL,
    sev_id      TEXT NOT NULL REFERENCES sevs (sev_id),
    since       BIGINT NOT NULL,
    PRIMARY KEY (cluster_id, sev_id)
);

-- Each SEV's own cluster, the clusters that joined it, then those of the SEVs merged into it.
INSERT INTO sev_clusters (cluster_id, sev_id, since) SELECT cluster_id, sev_id, opened_at FROM sevs;

INSERT INTO sev_clusters (cluster_id, sev_id, since)
SELECT json_extract(e.detail, '$.cluster_id'), e.sev_id, e.at FROM sev_events e
WHERE e.kind = 'cluster_joined' AND json_extract(e.detail, '$.cluster_id') IS NOT NULL
ON CONFLICT DO NOTHING;

INSERT INTO sev_clusters (cluster_id, sev_id, since)
SELECT k.cluster_id, s.merged_into, COALESCE(s.resolved_at, s.opened_at)
FROM sevs s JOIN sev_clusters k ON k.sev_id = s.sev_id
WHERE s.merged_into IS NOT NULL
ON CONFLICT DO NOTHING;
