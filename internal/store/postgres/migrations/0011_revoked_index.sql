-- 0011: the CRL's read skips certificates long expired (issue 12;
-- docs/lifecycle.md). A CRL leaves out a certificate one validity after
-- it expired (RFC 5280 5.1.2.6), but a read in serial order still
-- walked every revoked certificate ever. Ordered by expiry, then serial,
-- a read from a cut-off is one range scan over the live entries only,
-- however many long-expired ones the registry keeps.
--
-- This index replaces certificates_revoked (migration 0006), which only
-- that read used.

DROP INDEX certificates_revoked;
CREATE INDEX certificates_revoked_by_expiry ON certificates (not_after, serial) WHERE revoked_at IS NOT NULL;
