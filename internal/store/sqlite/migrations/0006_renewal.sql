-- 0006: the renewal policy (issue 12; docs/lifecycle.md, "Renewal and
-- supersession"): a renewal window per product, renewals an
-- administrator allowed outside it, and the sweep that revokes
-- superseded certificates once their grace has passed.

-- How long before its certificate expires a device may renew, in
-- nanoseconds (time.Duration, like cert_validity); 0, the value of every
-- product created before this migration, allows a renewal at any time.
ALTER TABLE products ADD COLUMN renewal_window INTEGER NOT NULL DEFAULT 0 CHECK (renewal_window >= 0);

-- A renewal an administrator allowed outside the window: at most one per
-- device, consumed by the device's next renewal in the transaction that
-- records it. No foreign key: the granting transaction reads the device
-- first, as the recording one does.
CREATE TABLE renewal_grants (
    identity   BLOB    PRIMARY KEY CHECK (length(identity) = 32),
    granted_at INTEGER NOT NULL,
    reason     TEXT    NOT NULL
) STRICT, WITHOUT ROWID;

-- The superseded certificates the sweep has still to revoke (good, or
-- on hold while their device is suspended), by when they were
-- superseded: a sweep reads one range of it, however many certificates
-- there are, and a certificate leaves it once revoked.
CREATE INDEX certificates_superseded_pending ON certificates (superseded_at)
    WHERE superseded_at IS NOT NULL AND (revoked_at IS NULL OR revocation_reason = 6);
