-- 0002: the durable job queue (an outbox): registration and deregistration
-- jobs, enqueued in the transaction that records the state change.

CREATE TABLE jobs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused
    kind        TEXT    NOT NULL CHECK (kind IN ('register', 'deregister')),
    connector   TEXT    NOT NULL CHECK (length(connector) BETWEEN 1 AND 64),
    identity    BLOB    NOT NULL REFERENCES devices (identity) CHECK (length(identity) = 32),
    state       TEXT    NOT NULL CHECK (state IN ('pending', 'running', 'done', 'failed')),
    attempts    INTEGER NOT NULL DEFAULT 0,
    next_run_at INTEGER NOT NULL,
    last_error  TEXT    NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    lease_until INTEGER,
    worker      TEXT    NOT NULL DEFAULT ''
) STRICT;

-- The claim query's two scans: due pending jobs, expired leases. Partial
-- indexes keep finished jobs out of both.
CREATE INDEX jobs_due     ON jobs (next_run_at, id) WHERE state = 'pending';
CREATE INDEX jobs_leased  ON jobs (lease_until, id) WHERE state = 'running';
CREATE INDEX jobs_by_identity ON jobs (identity, id);
