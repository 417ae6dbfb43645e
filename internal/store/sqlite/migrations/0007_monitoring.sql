-- 0007: monitoring (issue 12; docs/lifecycle.md, "Monitoring"): the
-- latest status report of each device, and the device event log, written
-- by triggers in the transaction of the change it records.

-- One row per device that ever reported: its last report replaces the
-- one before, so the table stays one row per device however often they
-- report. silent_noted_at is set when the silence sweep reported the
-- device silent, and cleared by its next report.
CREATE TABLE device_status (
    identity              BLOB    PRIMARY KEY REFERENCES devices (identity) CHECK (length(identity) = 32),
    received_at           INTEGER NOT NULL,
    firmware_version      TEXT    NOT NULL,
    security_counter      INTEGER NOT NULL CHECK (security_counter BETWEEN 0 AND 4294967295),
    boot_result           TEXT    NOT NULL,
    enrolment_algorithm   TEXT    NOT NULL,
    operational_algorithm TEXT    NOT NULL,
    uptime_seconds        INTEGER NOT NULL CHECK (uptime_seconds >= 0),
    remote_addr           TEXT    NOT NULL,
    silent_noted_at       INTEGER
) STRICT, WITHOUT ROWID;

-- The silence sweep and its metric read one range: devices not yet
-- noted silent, by last report.
CREATE INDEX device_status_unnoted ON device_status (received_at) WHERE silent_noted_at IS NULL;
CREATE INDEX device_status_by_received ON device_status (received_at);

-- AUTOINCREMENT: a sequence number is never handed out twice. SQLite has
-- one writer, so events commit in sequence order and a follower polling
-- with the last seq it saw misses none.
CREATE TABLE device_events (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    time     INTEGER NOT NULL,
    kind     TEXT    NOT NULL CHECK (kind IN ('device.onboarded', 'device.renewed', 'device.suspended',
        'device.resumed', 'device.revoked', 'device.decommissioned', 'device.reprovisioned',
        'certificate.expiring', 'device.silent')),
    identity BLOB    NOT NULL CHECK (length(identity) = 32),
    serial   BLOB    CHECK (serial IS NULL OR length(serial) = 16),
    detail   TEXT    NOT NULL
) STRICT;

CREATE INDEX device_events_by_kind     ON device_events (kind, seq);
CREATE INDEX device_events_by_identity ON device_events (identity, seq);

-- Each (certificate, threshold) is reported expiring once: the primary
-- key is the check, in the sweep's transaction.
CREATE TABLE expiry_notices (
    serial    BLOB    NOT NULL CHECK (length(serial) = 16),
    within_s  INTEGER NOT NULL,
    noted_at  INTEGER NOT NULL,
    PRIMARY KEY (serial, within_s)
) STRICT, WITHOUT ROWID;

-- The expiry sweep and its metric: current, good certificates by expiry,
-- one range scan however many certificates there are.
CREATE INDEX certificates_current_expiry ON certificates (not_after)
    WHERE superseded_at IS NULL AND revoked_at IS NULL;

-- Devices by product and state for the metrics: a covering index, so the
-- grouped count never reads the rows (which hold public keys).
CREATE INDEX devices_by_product_state ON devices (product_id, state);

-- A state change is an event. An onboarding moves a device from
-- registered (its time is onboarded_at); every other change is an
-- administrative transition, which sets state_changed_at and
-- state_reason. A table rebuild of devices (a future migration) must
-- create this trigger again.
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

-- A certificate recorded for a device that is onboarded already is a
-- renewal (an onboarding records the certificate before it moves the
-- device from registered).
CREATE TRIGGER device_events_on_renewal AFTER INSERT ON certificates
WHEN (SELECT state FROM devices WHERE identity = NEW.identity) = 'onboarded'
BEGIN
    INSERT INTO device_events (time, kind, identity, serial, detail)
        VALUES (NEW.issued_at, 'device.renewed', NEW.identity, NEW.serial, '');
END;
