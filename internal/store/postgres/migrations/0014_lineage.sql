-- 0014: post-quantum migration (issue 13; docs/migration.md, "The
-- platform's side"): the terminal state migrated, the device.migrated
-- event (written by hallmark_device_state_event as 'device.' || state),
-- the lineage of migrated devices and migration challenges.
-- PostgreSQL alters a CHECK in place.

ALTER TABLE devices DROP CONSTRAINT devices_state_check,
    ADD CONSTRAINT devices_state_check
        CHECK (state IN ('registered', 'onboarded', 'suspended', 'revoked', 'decommissioned', 'migrated'));

ALTER TABLE device_events DROP CONSTRAINT device_events_kind_check;
ALTER TABLE device_events ADD CONSTRAINT device_events_kind_check CHECK (kind IN ('device.onboarded',
    'device.renewed', 'device.suspended', 'device.resumed', 'device.revoked', 'device.decommissioned',
    'device.reprovisioned', 'certificate.expiring', 'device.silent', 'device.clone_suspected', 'firmware.outdated',
    'device.migrated'));

-- One row per migration: each identity has at most one successor and at
-- most one predecessor, so a lineage is a line, never a tree.
CREATE TABLE device_lineage (
    predecessor    bytea       NOT NULL UNIQUE REFERENCES devices (identity) CHECK (length(predecessor) = 32),
    successor      bytea       NOT NULL UNIQUE REFERENCES devices (identity) CHECK (length(successor) = 32),
    migrated_at    timestamptz NOT NULL,
    challenge_id   bytea       NOT NULL CHECK (length(challenge_id) = 16),
    from_algorithm text        NOT NULL,
    to_algorithm   text        NOT NULL,
    CHECK (predecessor <> successor)
);

-- Migration challenges: rare, short lived, single use. Logged (unlike
-- onboarding's), since every replica must see a challenge another issued
-- and they are few.
CREATE TABLE migration_challenges (
    id          bytea       PRIMARY KEY CHECK (length(id) = 16),
    identity    bytea       NOT NULL CHECK (length(identity) = 32),
    nonce       bytea       NOT NULL,
    server_name text        NOT NULL,
    target      text        NOT NULL,
    issued_at   timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz
);
CREATE INDEX migration_challenges_by_expiry ON migration_challenges (expires_at);
