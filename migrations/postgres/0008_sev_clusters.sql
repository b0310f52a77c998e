-- Which SEV covers a cluster: its own, or the one it joined (a related cluster crossed while
-- that SEV was open). The cluster API reads a cluster's latest SEV from here.
CREATE TABLE sev_clusters (
    cluster_id  TEXT NOT NULL,
    sev_id      TEXT NOT NULL REFERENCES sevs (sev_id),
    since       BIGINT NOT NULL,
    PRIMARY KEY (cluster_id, sev_id)
);

INSERT INTO sev_clusters (cluster_id, sev_id, since) SELECT cluster_id, sev_id, opened_at FROM sevs;
