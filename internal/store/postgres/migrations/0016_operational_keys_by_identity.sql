-- 0018: operational keys by identity (docs/performance.md, "Issue 13:
-- updates and migrations", "profile and what was cut"). A migration passes
-- the old identity's operational keys to the new one (UPDATE ... WHERE
-- identity = $2); without this index that statement read the whole
-- table, one row per certified key of the fleet, on every migration, so
-- the database's work per migrated device grew with the registry.

CREATE INDEX operational_keys_by_identity ON operational_keys (identity);
