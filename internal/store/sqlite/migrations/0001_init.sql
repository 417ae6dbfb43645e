-- 0001: the registry's first schema.
--
-- Conventions: identities, serials, hashes and keys are BLOBs of fixed
-- length (checked); times are INTEGER Unix microseconds in UTC, NULL where
-- the Go field is the zero time; tables are STRICT so a wrong type is an
-- error, not a silent conversion.

CREATE TABLE stations (
    id         BLOB    PRIMARY KEY CHECK (length(id) = 32),
    name       TEXT    NOT NULL,
    algorithm  TEXT    NOT NULL,
    public_key BLOB    NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE products (
    id             TEXT    PRIMARY KEY,
    name           TEXT    NOT NULL,
    cert_validity  INTEGER NOT NULL, -- nanoseconds (time.Duration)
    cloud_endpoint TEXT    NOT NULL,
    created_at     INTEGER NOT NULL
) STRICT;

CREATE TABLE batches (
    id              TEXT    PRIMARY KEY,
    station_id      BLOB    NOT NULL REFERENCES stations (id),
    product_id      TEXT    NOT NULL REFERENCES products (id),
    manifest_digest BLOB    NOT NULL CHECK (length(manifest_digest) = 32),
    device_count    INTEGER NOT NULL,
    imported_at     INTEGER NOT NULL
) STRICT;

-- A rowid table, not WITHOUT ROWID: rows carry public keys of up to a few
-- kilobytes (ML-DSA), too large for a clustered 32-byte key to pay off.
-- station_id and product_id repeat the batch's so the filters have indexes.
CREATE TABLE devices (
    identity      BLOB    NOT NULL UNIQUE CHECK (length(identity) = 32),
    algorithm     TEXT    NOT NULL,
    public_key    BLOB    NOT NULL,
    root_of_trust TEXT    NOT NULL,
    injection     TEXT    NOT NULL,
    batch_id      TEXT    NOT NULL REFERENCES batches (id),
    station_id    BLOB    NOT NULL,
    product_id    TEXT    NOT NULL,
    state         TEXT    NOT NULL CHECK (state IN ('registered', 'onboarded', 'revoked')),
    created_at    INTEGER NOT NULL,
    onboarded_at  INTEGER,
    revoked_at    INTEGER,
    revoke_note   TEXT    NOT NULL DEFAULT ''
) STRICT;

-- Each filter index ends in identity, so a filtered page is one index range
-- scan in keyset order.
CREATE INDEX devices_by_state     ON devices (state, identity);
CREATE INDEX devices_by_product   ON devices (product_id, identity);
CREATE INDEX devices_by_batch     ON devices (batch_id, identity);
CREATE INDEX devices_by_algorithm ON devices (algorithm, identity);

-- No foreign key to devices: a challenge is issued for any claimed
-- identity, so an unknown one looks like a known one until the proof fails.
CREATE TABLE challenges (
    id          BLOB    PRIMARY KEY CHECK (length(id) = 16),
    identity    BLOB    NOT NULL CHECK (length(identity) = 32),
    nonce       BLOB    NOT NULL CHECK (length(nonce) = 32),
    server_name TEXT    NOT NULL,
    issued_at   INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER
) STRICT;

CREATE INDEX challenges_by_expiry ON challenges (expires_at);

CREATE TABLE certificates (
    serial     BLOB    PRIMARY KEY CHECK (length(serial) = 16),
    identity   BLOB    NOT NULL REFERENCES devices (identity),
    not_before INTEGER NOT NULL,
    not_after  INTEGER NOT NULL,
    der        BLOB    NOT NULL,
    issued_at  INTEGER NOT NULL,
    revoked_at INTEGER
) STRICT;

-- The implicit rowid at the end of the index breaks ties between
-- certificates issued in the same microsecond, newest (last inserted) first.
CREATE INDEX certificates_by_identity ON certificates (identity, issued_at);

CREATE TABLE tokens (
    id         TEXT    PRIMARY KEY,
    name       TEXT    NOT NULL,
    hash       BLOB    NOT NULL CHECK (length(hash) = 32),
    scopes     TEXT    NOT NULL, -- JSON array of strings
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    revoked_at INTEGER
) STRICT;

-- AUTOINCREMENT: a sequence number is never handed out twice, even if the
-- newest rows were ever lost.
CREATE TABLE audit_events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    time        INTEGER NOT NULL,
    actor       TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    subject     TEXT    NOT NULL,
    outcome     TEXT    NOT NULL,
    detail      TEXT    NOT NULL,
    remote_addr TEXT    NOT NULL
) STRICT;

CREATE INDEX audit_events_by_actor   ON audit_events (actor, seq);
CREATE INDEX audit_events_by_action  ON audit_events (action, seq);
CREATE INDEX audit_events_by_subject ON audit_events (subject, seq);

-- The log is append-only in the database itself, not only in the Go API.
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit log is append-only');
END;

CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit log is append-only');
END;
