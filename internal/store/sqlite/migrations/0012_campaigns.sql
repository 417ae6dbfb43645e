-- 0012: update campaigns (issue 13; docs/ota.md, "Campaigns"): a
-- campaign, its waves with their counters, and one row per targeted
-- device, resolved once at creation. No foreign key to the firmware
-- repository's table: the campaign keeps a copy of what it needs of the
-- image, so an assignment is answered from the campaign alone.
CREATE TABLE campaigns (
    id                TEXT    PRIMARY KEY,
    product_id        TEXT    NOT NULL REFERENCES products (id),
    image_digest      BLOB    NOT NULL CHECK (length(image_digest) = 32),
    image_version     TEXT    NOT NULL,
    image_size        INTEGER NOT NULL CHECK (image_size >= 0),
    image_counter     INTEGER NOT NULL CHECK (image_counter BETWEEN 0 AND 4294967295),
    migrate_to        TEXT    NOT NULL,
    target            TEXT    NOT NULL,
    wave_spec         TEXT    NOT NULL,
    halt_threshold    REAL    NOT NULL CHECK (halt_threshold >= 0 AND halt_threshold <= 1),
    halt_min_finished INTEGER NOT NULL CHECK (halt_min_finished >= 1),
    state             TEXT    NOT NULL CHECK (state IN ('running', 'paused', 'halted', 'cancelled', 'completed')),
    current_wave      INTEGER NOT NULL CHECK (current_wave >= 0),
    reason            TEXT    NOT NULL,
    device_count      INTEGER NOT NULL,
    created_by        TEXT    NOT NULL,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
) STRICT;

CREATE INDEX campaigns_by_state ON campaigns (state, created_at);

-- Finished and failed are kept as counters, changed with the device's
-- row, so the halt rule and the next wave are decided without counting a
-- wave of tens of thousands of rows at every report.
CREATE TABLE campaign_waves (
    campaign_id TEXT    NOT NULL REFERENCES campaigns (id),
    wave        INTEGER NOT NULL CHECK (wave >= 0),
    size        INTEGER NOT NULL CHECK (size >= 1),
    finished    INTEGER NOT NULL CHECK (finished BETWEEN 0 AND size),
    failed      INTEGER NOT NULL CHECK (failed BETWEEN 0 AND finished),
    PRIMARY KEY (campaign_id, wave)
) STRICT, WITHOUT ROWID;

CREATE TABLE campaign_devices (
    campaign_id      TEXT    NOT NULL REFERENCES campaigns (id),
    identity         BLOB    NOT NULL REFERENCES devices (identity) CHECK (length(identity) = 32),
    wave             INTEGER NOT NULL CHECK (wave >= 0),
    state            TEXT    NOT NULL CHECK (state IN ('pending', 'offered', 'downloading', 'installed', 'booted',
        'migrated', 'failed', 'rolled-back')),
    reason           TEXT    NOT NULL,
    detail           TEXT    NOT NULL,
    firmware_version TEXT    NOT NULL,
    updated_at       INTEGER NOT NULL,
    PRIMARY KEY (campaign_id, identity)
) STRICT, WITHOUT ROWID;

-- The devices page by state, the counts by wave and state (covering),
-- and a device's campaigns (the migration hooks).
CREATE INDEX campaign_devices_by_state ON campaign_devices (campaign_id, state, identity);
CREATE INDEX campaign_devices_by_wave ON campaign_devices (campaign_id, wave, state);
CREATE INDEX campaign_devices_by_identity ON campaign_devices (identity);
