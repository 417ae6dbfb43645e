-- 0018: locking the device at the end of provisioning
-- (docs/manufacturing.md, "Locking the device"). A device keeps the lock
-- state its station-signed manifest record gave it: 'open', the locks the
-- station closed in the manifest's spelling, or '' for a record written
-- before stations recorded locks (treated as open). A product can require
-- every device locked; products made before require nothing.

ALTER TABLE products ADD COLUMN require_locked INTEGER NOT NULL DEFAULT 0 CHECK (require_locked IN (0, 1));
ALTER TABLE devices ADD COLUMN locks TEXT NOT NULL DEFAULT '' CHECK (length(locks) <= 64);
