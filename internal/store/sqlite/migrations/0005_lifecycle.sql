-- 0005: device lifecycle (issue 12; docs/lifecycle.md): the states
-- suspended and decommissioned, the reason and time of a device's last
-- transition, and RFC 5280 revocation reasons on certificates.
--
-- sqlite: rebuilds tables
-- SQLite cannot alter a CHECK constraint: the devices table is rebuilt
-- with foreign keys off (certificates and jobs reference it), and the
-- runner checks them before the commit.

CREATE TABLE devices_new (
    identity         BLOB    NOT NULL UNIQUE CHECK (length(identity) = 32),
    algorithm        TEXT    NOT NULL,
    public_key       BLOB    NOT NULL,
    root_of_trust    TEXT    NOT NULL,
    injection        TEXT    NOT NULL,
    batch_id         TEXT    NOT NULL REFERENCES batches (id),
    station_id       BLOB    NOT NULL,
    product_id       TEXT    NOT NULL,
    state            TEXT    NOT NULL CHECK (state IN ('registered', 'onboarded', 'suspended', 'revoked', 'decommissioned')),
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
        revoked_at, revoke_note
    FROM devices;

DROP TABLE devices;
ALTER TABLE devices_new RENAME TO devices;

CREATE INDEX devices_by_state     ON devices (state, identity);
CREATE INDEX devices_by_product   ON devices (product_id, identity);
CREATE INDEX devices_by_batch     ON devices (batch_id, identity);
CREATE INDEX devices_by_algorithm ON devices (algorithm, identity);

-- The RFC 5280 CRLReason of a revoked certificate (6, certificateHold,
-- for one on hold); 0 (unspecified) while it is good, and for those
-- revoked before this migration.
ALTER TABLE certificates ADD COLUMN revocation_reason INTEGER NOT NULL DEFAULT 0
    CHECK (revocation_reason BETWEEN 0 AND 10 AND revocation_reason <> 7);

-- A CRL lists revoked certificates by serial, one page at a time: this
-- index holds only them, so a page is one range scan however many good
-- certificates there are.
CREATE INDEX certificates_revoked ON certificates (serial) WHERE revoked_at IS NOT NULL;
