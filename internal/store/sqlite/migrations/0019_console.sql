-- 0019: the operators' console (issue 17; docs/console.md): its sessions,
-- and the indexes its pages read, so that each page is a few index ranges
-- or aggregates over an index, with millions of devices registered.

-- One row per signed-in operator. The cookie holds a random secret; only
-- its SHA-256 is kept, so a copy of the database signs nobody in.
CREATE TABLE console_sessions (
    id_hash     BLOB    PRIMARY KEY CHECK (length(id_hash) = 32),
    token_id    TEXT    NOT NULL REFERENCES tokens (id),
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    remote_addr TEXT    NOT NULL CHECK (length(remote_addr) <= 256)
) STRICT, WITHOUT ROWID;
CREATE INDEX console_sessions_by_expiry ON console_sessions (expires_at);

-- The batches page: newest first, overall and per product or station.
CREATE INDEX batches_by_import  ON batches (imported_at, id);
CREATE INDEX batches_by_product ON batches (product_id, imported_at, id);
CREATE INDEX batches_by_station ON batches (station_id, imported_at, id);

-- The root-of-trust filter, in keyset order like the other filters.
CREATE INDEX devices_by_class ON devices (root_of_trust, identity);

-- The fleet summary's counts by state, product, class and suite in one
-- scan of a covering index. It replaces the metrics' (product_id, state)
-- index of the same name, whose query reads the same prefix.
DROP INDEX devices_by_product_state;
CREATE INDEX devices_by_product_state ON devices (product_id, state, algorithm, root_of_trust);

-- The onboardings per hour: device.onboarded events by time.
CREATE INDEX device_events_by_kind_time ON device_events (kind, time);

-- The cloud-state filter walks devices with an open (pending or running)
-- or failed job in identity order; each index holds only those jobs, so
-- the many done ones cost nothing. Failed jobs are counted from it too.
CREATE INDEX jobs_open_by_identity   ON jobs (identity, connector, id) WHERE state IN ('pending', 'running');
CREATE INDEX jobs_failed_by_identity ON jobs (identity, connector, id) WHERE state = 'failed';

-- Refused attempts by action and time, for the failures of the last day.
CREATE INDEX audit_events_denied ON audit_events (action, time) WHERE outcome = 'denied';
