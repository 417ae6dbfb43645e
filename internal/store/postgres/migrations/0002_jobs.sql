-- 0002: the durable job queue (an outbox): registration and deregistration
-- jobs, enqueued in the transaction that records the state change.

CREATE TABLE jobs (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY, -- never reused
    kind        text        NOT NULL CHECK (kind IN ('register', 'deregister')),
    connector   text        NOT NULL CHECK (length(connector) BETWEEN 1 AND 64),
    identity    bytea       NOT NULL REFERENCES devices (identity) CHECK (length(identity) = 32),
    state       text        NOT NULL CHECK (state IN ('pending', 'running', 'done', 'failed')),
    attempts    integer     NOT NULL DEFAULT 0,
    next_run_at timestamptz NOT NULL,
    last_error  text        NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    lease_until timestamptz,
    worker      text        NOT NULL DEFAULT ''
);

-- The claim query's two scans: due pending jobs, expired leases. Partial
-- indexes keep finished jobs out of both.
CREATE INDEX jobs_due         ON jobs (next_run_at, id) WHERE state = 'pending';
CREATE INDEX jobs_leased      ON jobs (lease_until, id) WHERE state = 'running';
CREATE INDEX jobs_by_identity ON jobs (identity, id);
