-- 0008: monitoring (issue 12; docs/lifecycle.md, "Monitoring"): the
-- latest status report of each device, and the device event log, written
-- by triggers in the transaction of the change it records.

-- One row per device that ever reported: its last report replaces the
-- one before. silent_noted_at is set when the silence sweep reported the
-- device silent, and cleared by its next report.
CREATE TABLE device_status (
    identity              bytea       PRIMARY KEY REFERENCES devices (identity) CHECK (length(identity) = 32),
    received_at           timestamptz NOT NULL,
    firmware_version      text        NOT NULL,
    security_counter      bigint      NOT NULL CHECK (security_counter BETWEEN 0 AND 4294967295),
    boot_result           text        NOT NULL,
    enrolment_algorithm   text        NOT NULL,
    operational_algorithm text        NOT NULL,
    uptime_seconds        bigint      NOT NULL CHECK (uptime_seconds >= 0),
    remote_addr           text        NOT NULL,
    silent_noted_at       timestamptz
);

CREATE INDEX device_status_unnoted ON device_status (received_at) WHERE silent_noted_at IS NULL;
CREATE INDEX device_status_by_received ON device_status (received_at);

-- The log is paged in commit order, as the audit log is (0003): by the
-- writing transaction's xid, then seq, showing only events of
-- transactions older than every running one.
CREATE TABLE device_events (
    seq      bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    xid      xid8        NOT NULL DEFAULT pg_current_xact_id(),
    time     timestamptz NOT NULL,
    kind     text        NOT NULL CHECK (kind IN ('device.onboarded', 'device.renewed', 'device.suspended',
        'device.resumed', 'device.revoked', 'device.decommissioned', 'device.reprovisioned',
        'certificate.expiring', 'device.silent')),
    identity bytea       NOT NULL CHECK (length(identity) = 32),
    serial   bytea       CHECK (serial IS NULL OR length(serial) = 16),
    detail   text        NOT NULL
);

CREATE INDEX device_events_by_xid      ON device_events (xid, seq);
CREATE INDEX device_events_by_kind     ON device_events (kind, xid, seq);
CREATE INDEX device_events_by_identity ON device_events (identity, xid, seq);

-- Each (certificate, threshold) is reported expiring once: the primary
-- key is the check, also between replicas sweeping at once.
CREATE TABLE expiry_notices (
    serial   bytea       NOT NULL CHECK (length(serial) = 16),
    within_s bigint      NOT NULL,
    noted_at timestamptz NOT NULL,
    PRIMARY KEY (serial, within_s)
);

CREATE INDEX certificates_current_expiry ON certificates (not_after)
    WHERE superseded_at IS NULL AND revoked_at IS NULL;

CREATE INDEX devices_by_product_state ON devices (product_id, state);

-- A state change is an event. An onboarding moves a device from
-- registered (its time is onboarded_at); every other change is an
-- administrative transition, which sets state_changed_at and
-- state_reason.
CREATE FUNCTION hallmark_device_state_event() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_onboarding boolean := OLD.state = 'registered' AND NEW.state = 'onboarded';
BEGIN
    INSERT INTO device_events (time, kind, identity, serial, detail) VALUES (
        CASE WHEN v_onboarding THEN NEW.onboarded_at
             ELSE coalesce(NEW.state_changed_at, NEW.onboarded_at, now()) END,
        CASE
            WHEN NEW.state = 'onboarded' AND OLD.state = 'suspended' THEN 'device.resumed'
            WHEN NEW.state = 'onboarded' THEN 'device.onboarded'
            WHEN NEW.state = 'registered' THEN 'device.reprovisioned'
            ELSE 'device.' || NEW.state
        END,
        NEW.identity, NULL,
        CASE WHEN v_onboarding THEN '' ELSE NEW.state_reason END);
    RETURN NULL;
END
$$;

CREATE TRIGGER device_events_on_state AFTER UPDATE OF state ON devices
    FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state)
    EXECUTE FUNCTION hallmark_device_state_event();

-- A certificate recorded for a device that is onboarded already is a
-- renewal (hallmark_record_certificate inserts the certificate before it
-- moves the device from registered, under the device's row lock).
CREATE FUNCTION hallmark_renewal_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT state FROM devices WHERE identity = NEW.identity) = 'onboarded' THEN
        INSERT INTO device_events (time, kind, identity, serial, detail)
            VALUES (NEW.issued_at, 'device.renewed', NEW.identity, NEW.serial, '');
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER device_events_on_renewal AFTER INSERT ON certificates
    FOR EACH ROW EXECUTE FUNCTION hallmark_renewal_event();
