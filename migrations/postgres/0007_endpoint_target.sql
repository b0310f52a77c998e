-- A 410 disables an endpoint at the address that answered it: `target` fingerprints the
-- channel's URL then (a hash, since webhook URLs carry secrets). When the catalog points the
-- channel elsewhere the fingerprints differ and the endpoint is called again. Rows disabled
-- before this column existed have an empty target, so each such endpoint gets one new try.
ALTER TABLE endpoints ADD COLUMN target TEXT NOT NULL DEFAULT '';
