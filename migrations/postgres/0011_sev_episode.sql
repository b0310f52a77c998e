-- When a SEV's current episode began (wall clock): its creation, or its latest reopening as a
-- regression. Time to resolve is measured from it; reopening kept created_at, so a SEV back
-- after weeks read as weeks to resolve.
ALTER TABLE sevs ADD COLUMN episode_at BIGINT NOT NULL DEFAULT 0;
-- SEVs from before migration 0003 never had their wall-clock times filled in (0 is 1970): their
-- event time is the nearest there is.
UPDATE sevs SET created_at = opened_at WHERE created_at = 0;
UPDATE sevs SET assigned_at = created_at WHERE assigned_at = 0;
UPDATE sevs SET episode_at = created_at;
