-- The installation's name, in what leaves it where another sevloop's could be confused with it
-- (PagerDuty dedup keys: SEV numbers start at 1 everywhere). A database that already has SEVs
-- gets an empty name, so the keys of its open alerts stay as they were.
CREATE TABLE installation (id TEXT NOT NULL);

INSERT INTO installation (id)
SELECT CASE WHEN EXISTS (SELECT 1 FROM sevs) THEN '' ELSE lower(hex(randomblob(6))) END;
