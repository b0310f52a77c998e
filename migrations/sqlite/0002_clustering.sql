-- Issue 3: semantic features, consolidation and human corrections.

-- The ticket's sentence vector (little-endian f32), embedded once and reused by corrections.
ALTER TABLE tickets ADD COLUMN embedding BLOB;

-- Set when consolidation or a person merged the cluster into another.
ALTER TABLE clusters ADD COLUMN merged_into TEXT;
CREATE INDEX clusters_product ON clusters (product, size);

-- Every correction a person asked for, and what came of it.
CREATE TABLE cluster_corrections (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    product       TEXT NOT NULL,
    kind          TEXT NOT NULL,
    request       TEXT NOT NULL,
    actor_role    TEXT NOT NULL,
    requested_at  INTEGER NOT NULL,
    outcome       TEXT NOT NULL
);
CREATE INDEX cluster_corrections_product ON cluster_corrections (product);
