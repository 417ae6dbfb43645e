-- 0004: an operational key is certified for one device only, and a device
-- has one current certificate (issue 10; docs/protocol.md).

-- The SHA-256 of the certified key's DER SubjectPublicKeyInfo; NULL for
-- certificates recorded before this migration.
ALTER TABLE certificates ADD COLUMN key_hash BLOB CHECK (key_hash IS NULL OR length(key_hash) = 32);
-- When a later certificate of the same device was recorded (a renewal or
-- a new onboarding); NULL while the certificate is the device's current
-- one. Revocation publication lists superseded certificates.
ALTER TABLE certificates ADD COLUMN superseded_at INTEGER;

-- Which device each operational key is certified for. The primary key
-- is the check: recording a certificate inserts its key here, in the same
-- transaction, and a key already held by another identity is refused. A
-- device may be certified for its own key again (renewal keeping the key).
-- No foreign key: the recording transaction reads the device first.
CREATE TABLE operational_keys (
    key_hash     BLOB    PRIMARY KEY CHECK (length(key_hash) = 32),
    identity     BLOB    NOT NULL CHECK (length(identity) = 32),
    certified_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

-- Until now every certificate stayed current: keep each device's newest
-- (by issued_at, then the later recorded) and supersede the others now,
-- so they stop working on the device routes once the grace has passed.
UPDATE certificates
SET superseded_at = CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)
WHERE EXISTS (
    SELECT 1 FROM certificates AS newer
    WHERE newer.identity = certificates.identity
      AND (newer.issued_at > certificates.issued_at
           OR (newer.issued_at = certificates.issued_at AND newer.rowid > certificates.rowid))
);
