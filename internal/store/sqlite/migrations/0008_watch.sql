-- 0008: monitoring's watch (issue 12; docs/lifecycle.md, "Monitoring"):
-- each product's heartbeat interval and minimum firmware version, what
-- the silence sweep reads per product, and the state behind the
-- possible-clone and outdated-firmware events.
-- sqlite: rebuilds tables

ALTER TABLE products ADD COLUMN heartbeat_interval INTEGER NOT NULL DEFAULT 0 CHECK (heartbeat_interval >= 0);
ALTER TABLE products ADD COLUMN min_firmware_version TEXT NOT NULL DEFAULT '';

-- The silence sweep reads one index range per product (each product has
-- its own interval): the product is copied into the status row, which a
-- device's report writes anyway (a device never changes product).
-- firmware_noted_minimum is the minimum its firmware version was
-- reported outdated below; a report of another version clears it.
ALTER TABLE device_status ADD COLUMN product_id TEXT NOT NULL DEFAULT '';
ALTER TABLE device_status ADD COLUMN firmware_noted_minimum TEXT;
UPDATE device_status SET product_id = (SELECT d.product_id FROM devices AS d WHERE d.identity = device_status.identity);
DROP INDEX device_status_unnoted;
DROP INDEX device_status_by_received;
CREATE INDEX device_status_unnoted ON device_status (product_id, received_at) WHERE silent_noted_at IS NULL;
CREATE INDEX device_status_by_product ON device_status (product_id, received_at);

-- The last device.clone_suspected event of a device: the primary key and
-- a conditional upsert rate-limit them in the writing transaction.
CREATE TABLE clone_notices (
    identity BLOB    PRIMARY KEY REFERENCES devices (identity) CHECK (length(identity) = 32),
    noted_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

-- Where each device last onboarded from.
CREATE TABLE onboarding_sources (
    identity BLOB    PRIMARY KEY REFERENCES devices (identity) CHECK (length(identity) = 32),
    source   TEXT    NOT NULL,
    at       INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

-- Recent refused proofs of registered devices (at most the threshold per
-- device, each forgotten after the window).
CREATE TABLE proof_failures (
    identity BLOB    NOT NULL REFERENCES devices (identity) CHECK (length(identity) = 32),
    at       INTEGER NOT NULL
) STRICT;
CREATE INDEX proof_failures_by_identity ON proof_failures (identity, at);
CREATE INDEX proof_failures_by_time ON proof_failures (at);

-- New event kinds. A CHECK cannot be altered in SQLite, so device_events
-- is rebuilt with the longer list (SQLite's create, copy, drop, rename),
-- rather than the CHECK dropped and the kinds checked in Go only: the
-- database keeps refusing a kind no version of Hallmark writes. seq
-- values are copied as they are, and the AUTOINCREMENT sequence is
-- carried over, so no seq is ever handed out twice and followers'
-- cursors stay valid. The triggers that write events name the table:
-- they are dropped first and created again, as 0007 made them.
DROP TRIGGER device_events_on_state;
DROP TRIGGER device_events_on_renewal;

CREATE TABLE device_events_new (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    time     INTEGER NOT NULL,
    kind     TEXT    NOT NULL CHECK (kind IN ('device.onboarded', 'device.renewed', 'device.suspended',
        'device.resumed', 'device.revoked', 'device.decommissioned', 'device.reprovisioned',
        'certificate.expiring', 'device.silent', 'device.clone_suspected', 'firmware.outdated')),
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
