-- 0009: monitoring's watch (issue 12; docs/lifecycle.md, "Monitoring"):
-- each product's heartbeat interval and minimum firmware version, what
-- the silence sweep reads per product, and the state behind the
-- possible-clone and outdated-firmware events.

ALTER TABLE products ADD COLUMN heartbeat_interval bigint NOT NULL DEFAULT 0 CHECK (heartbeat_interval >= 0);
ALTER TABLE products ADD COLUMN min_firmware_version text NOT NULL DEFAULT '';

-- The silence sweep reads one index range per product (each product has
-- its own interval): the product is copied into the status row, which a
-- device's report writes anyway (a device never changes product).
-- firmware_noted_minimum is the minimum its firmware version was
-- reported outdated below; a report of another version clears it.
ALTER TABLE device_status ADD COLUMN product_id text NOT NULL DEFAULT '';
ALTER TABLE device_status ADD COLUMN firmware_noted_minimum text;
UPDATE device_status AS st SET product_id = d.product_id FROM devices AS d WHERE d.identity = st.identity;
DROP INDEX device_status_unnoted;
DROP INDEX device_status_by_received;
CREATE INDEX device_status_unnoted ON device_status (product_id, received_at) WHERE silent_noted_at IS NULL;
CREATE INDEX device_status_by_product ON device_status (product_id, received_at);

-- The last device.clone_suspected event of a device: a conditional
-- upsert on the primary key rate-limits them, also between replicas.
CREATE TABLE clone_notices (
    identity bytea       PRIMARY KEY REFERENCES devices (identity) CHECK (length(identity) = 32),
    noted_at timestamptz NOT NULL
);

-- Where each device last onboarded from.
CREATE TABLE onboarding_sources (
    identity bytea       PRIMARY KEY REFERENCES devices (identity) CHECK (length(identity) = 32),
    source   text        NOT NULL,
    at       timestamptz NOT NULL
);

-- Recent refused proofs of registered devices (about the threshold per
-- device at most, each forgotten after the window).
CREATE TABLE proof_failures (
    identity bytea       NOT NULL REFERENCES devices (identity) CHECK (length(identity) = 32),
    at       timestamptz NOT NULL
);
CREATE INDEX proof_failures_by_identity ON proof_failures (identity, at);
CREATE INDEX proof_failures_by_time ON proof_failures (at);

-- New event kinds: PostgreSQL alters a CHECK in place.
ALTER TABLE device_events DROP CONSTRAINT device_events_kind_check;
ALTER TABLE device_events ADD CONSTRAINT device_events_kind_check CHECK (kind IN ('device.onboarded',
    'device.renewed', 'device.suspended', 'device.resumed', 'device.revoked', 'device.decommissioned',
    'device.reprovisioned', 'certificate.expiring', 'device.silent', 'device.clone_suspected', 'firmware.outdated'));
