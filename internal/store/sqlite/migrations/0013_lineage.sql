-- 0013: post-quantum migration (issue 13; docs/migration.md, "The
-- platform's side"): the terminal state migrated, the device.migrated
-- event, the lineage of migrated devices and migration challenges.
-- sqlite: rebuilds tables
--
-- SQLite cannot alter a CHECK constraint: devices is rebuilt with the new
-- state (as 0005 did) and device_events with the new kind (as 0008 did).
-- Both triggers that write events name these tables: they are dropped
-- first and created again exactly as 0008 made them; the indexes of both
-- tables are created again. The runner switches foreign keys off for the
-- rebuild and checks them before the commit.

DROP TRIGGER device_events_on_state;
DROP TRIGGER device_events_on_renewal;

CREATE TABLE devices_new (
    identity         BLOB    NOT NULL UNIQUE CHECK (length(identity) = 32),
    algorithm        TEXT    NOT NULL,
    public_key       BLOB    NOT NULL,
    root_of_trust    TEXT    NOT NULL,
    injection        TEXT    NOT NULL,
    batch_id         TEXT    NOT NULL REFERENCES batches (id),
    station_id       BLOB    NOT NULL,
    product_id       TEXT    NOT NULL,
    state            TEXT    NOT NULL CHECK (state IN ('registered', 'onboarded', 'suspended', 'revoked', 'decommissioned', 'migrated')),
    created_at       INTEGER NOT NULL,
    onboarded_at     INTEGER,
    revoked_at       INTEGER,
    revoke_note      TEXT    NOT NULL DEFAULT '',
    state_changed_at INTEGER,
    state_reason     TEXT    NOT NULL DEFAULT ''
) STRICT;
INSERT INTO devices_new (rowid, identity, algorithm, public_key, root_of_trust, injection, batch_id,
        station_id, product_id, state, created_at, onboarded_at, revoked_at, revoke_note,
        state_changed_at, state_reason)
    SELECT rowid, identity, algorithm, public_key, root_of_trust, injection, batch_id,
        station_id, product_id, state, created_at, onboarded_at, revoked_at, revoke_note,
        state_changed_at, state_reason
    FROM devices;
DROP TABLE devices;
ALTER TABLE devices_new RENAME TO devices;
CREATE INDEX devices_by_state         ON devices (state, identity);
CREATE INDEX devices_by_product       ON devices (product_id, identity);
CREATE INDEX devices_by_batch         ON devices (batch_id, identity);
CREATE INDEX devices_by_algorithm     ON devices (algorithm, identity);
CREATE INDEX devices_by_product_state ON devices (product_id, state);

CREATE TABLE device_events_new (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    time     INTEGER NOT NULL,
    kind     TEXT    NOT NULL CHECK (kind IN ('device.onboarded', 'device.renewed', 'device.suspended',
        'device.resumed', 'device.revoked', 'device.decommissioned', 'device.reprovisioned',
        'certificate.expiring', 'device.silent', 'device.clone_suspected', 'firmware.outdated',
        'device.migrated')),
    identity BLOB    NOT NULL CHECK (length(identity) = 32),
    serial   BLOB    CHECK (serial IS NULL OR length(serial) = 16),
    detail   TEXT    NOT NULL
) STRICT;
INSERT INTO device_events_new (seq, time, kind, identity, serial, detail)
    SELECT seq, time, kind, identity, serial, detail FROM device_events ORDER BY seq;
INSERT INTO sqlite_sequence (name, seq)
    SELECT 'device_events_new', 0 WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'device_events_new');
UPDATE sqlite_sequence SET seq = max(seq, coalesce((SELECT s.seq FROM sqlite_sequence AS s WHERE s.name = 'device_events'), 0))
    WHERE name = 'device_events_new';
DROP TABLE device_events;
ALTER TABLE device_events_new RENAME TO device_events;
CREATE INDEX device_events_by_kind     ON device_events (kind, seq);
CREATE INDEX device_events_by_identity ON device_events (identity, seq);

CREATE TRIGGER device_events_on_state AFTER UPDATE OF state ON devices
WHEN OLD.state <> NEW.state
BEGIN
    INSERT INTO device_events (time, kind, identity, serial, detail) VALUES (
        CASE WHEN OLD.state = 'registered' AND NEW.state = 'onboarded' THEN NEW.onboarded_at
             ELSE coalesce(NEW.state_changed_at, NEW.onboarded_at, 0) END,
        CASE
            WHEN NEW.state = 'onboarded' AND OLD.state = 'suspended' THEN 'device.resumed'
            WHEN NEW.state = 'onboarded' THEN 'device.onboarded'
            WHEN NEW.state = 'registered' THEN 'device.reprovisioned'
            ELSE 'device.' || NEW.state
        END,
        NEW.identity, NULL,
        CASE WHEN OLD.state = 'registered' AND NEW.state = 'onboarded' THEN '' ELSE NEW.state_reason END);
END;

CREATE TRIGGER device_events_on_renewal AFTER INSERT ON certificates
WHEN (SELECT state FROM devices WHERE identity = NEW.identity) = 'onboarded'
BEGIN
    INSERT INTO device_events (time, kind, identity, serial, detail)
        VALUES (NEW.issued_at, 'device.renewed', NEW.identity, NEW.serial, '');
END;

-- One row per migration: each identity has at most one successor and at
-- most one predecessor, so a lineage is a line, never a tree.
CREATE TABLE device_lineage (
    predecessor    BLOB    NOT NULL UNIQUE REFERENCES devices (identity) CHECK (length(predecessor) = 32),
    successor      BLOB    NOT NULL UNIQUE REFERENCES devices (identity) CHECK (length(successor) = 32),
    migrated_at    INTEGER NOT NULL,
    challenge_id   BLOB    NOT NULL CHECK (length(challenge_id) = 16),
    from_algorithm TEXT    NOT NULL,
    to_algorithm   TEXT    NOT NULL,
    CHECK (predecessor <> successor)
) STRICT;

-- Migration challenges are rare (one per device per campaign) and must
-- survive nothing: kept in the file, not in memory like onboarding's, so
-- the consume is a row update that cannot race.
CREATE TABLE migration_challenges (
    id          BLOB    PRIMARY KEY CHECK (length(id) = 16),
    identity    BLOB    NOT NULL CHECK (length(identity) = 32),
    nonce       BLOB    NOT NULL,
    server_name TEXT    NOT NULL,
    target      TEXT    NOT NULL,
    issued_at   INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER
) STRICT, WITHOUT ROWID;
CREATE INDEX migration_challenges_by_expiry ON migration_challenges (expires_at);
