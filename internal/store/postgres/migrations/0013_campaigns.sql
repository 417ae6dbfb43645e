-- 0013: update campaigns (issue 13; docs/ota.md, "Campaigns"): a
-- campaign, its waves with their counters, and one row per targeted
-- device, resolved once at creation. No foreign key to the firmware
-- repository's table: the campaign keeps a copy of what it needs of the
-- image. Reports lock the campaign's row (SELECT ... FOR UPDATE), so
-- replicas decide waves and halts one report at a time.
CREATE TABLE campaigns (
    id                text        PRIMARY KEY,
    product_id        text        NOT NULL REFERENCES products (id),
    image_digest      bytea       NOT NULL CHECK (length(image_digest) = 32),
    image_version     text        NOT NULL,
    image_size        bigint      NOT NULL CHECK (image_size >= 0),
    image_counter     bigint      NOT NULL CHECK (image_counter BETWEEN 0 AND 4294967295),
    migrate_to        text        NOT NULL,
    target            text        NOT NULL,
    wave_spec         text        NOT NULL,
    halt_threshold    double precision NOT NULL CHECK (halt_threshold >= 0 AND halt_threshold <= 1),
    halt_min_finished integer     NOT NULL CHECK (halt_min_finished >= 1),
    state             text        NOT NULL CHECK (state IN ('running', 'paused', 'halted', 'cancelled', 'completed')),
    current_wave      integer     NOT NULL CHECK (current_wave >= 0),
    reason            text        NOT NULL,
    device_count      integer     NOT NULL,
    created_by        text        NOT NULL,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL
);

CREATE INDEX campaigns_by_state ON campaigns (state, created_at);

CREATE TABLE campaign_waves (
    campaign_id text    NOT NULL REFERENCES campaigns (id),
    wave        integer NOT NULL CHECK (wave >= 0),
    size        integer NOT NULL CHECK (size >= 1),
    finished    integer NOT NULL CHECK (finished BETWEEN 0 AND size),
    failed      integer NOT NULL CHECK (failed BETWEEN 0 AND finished),
    PRIMARY KEY (campaign_id, wave)
);

CREATE TABLE campaign_devices (
    campaign_id      text        NOT NULL REFERENCES campaigns (id),
    identity         bytea       NOT NULL REFERENCES devices (identity) CHECK (length(identity) = 32),
    wave             integer     NOT NULL CHECK (wave >= 0),
    state            text        NOT NULL CHECK (state IN ('pending', 'offered', 'downloading', 'installed', 'booted',
        'migrated', 'failed', 'rolled-back')),
    reason           text        NOT NULL,
    detail           text        NOT NULL,
    firmware_version text        NOT NULL,
    updated_at       timestamptz NOT NULL,
    PRIMARY KEY (campaign_id, identity)
);

CREATE INDEX campaign_devices_by_state ON campaign_devices (campaign_id, state, identity);
CREATE INDEX campaign_devices_by_wave ON campaign_devices (campaign_id, wave, state);
CREATE INDEX campaign_devices_by_identity ON campaign_devices (identity);
