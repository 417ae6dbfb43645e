-- 0019: locking the device at the end of provisioning
-- (docs/manufacturing.md, "Locking the device"). A device keeps the lock
-- state its station-signed manifest record gave it: 'open', the locks the
-- station closed in the manifest's spelling, or '' for a record written
-- before stations recorded locks (treated as open). A product can require
-- every device locked; products made before require nothing. Both columns
-- have constant defaults, so adding them rewrites no table.

ALTER TABLE products ADD COLUMN require_locked boolean NOT NULL DEFAULT false;
ALTER TABLE devices ADD COLUMN locks text NOT NULL DEFAULT '' CHECK (length(locks) <= 64);
