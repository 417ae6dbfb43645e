-- 0011: the firmware repository (issue 13; docs/ota.md, "Firmware
-- repository"). Each product records what its devices' boot ROM checks
-- firmware against: the SHA-256 of each vendor root key in OTP slot order
-- (32 bytes each, at most 4 slots), the retired slots (a bit mask) and the
-- fingerprint of the device-class key encrypted images are sealed to.
-- Images are described here; their bytes live in the data directory's
-- content-addressed blob store, never in the database.
ALTER TABLE products ADD COLUMN firmware_roots BLOB NOT NULL DEFAULT x''
    CHECK (length(firmware_roots) % 32 = 0 AND length(firmware_roots) <= 128);
ALTER TABLE products ADD COLUMN firmware_retired INTEGER NOT NULL DEFAULT 0
    CHECK (firmware_retired BETWEEN 0 AND 15);
ALTER TABLE products ADD COLUMN firmware_class_key BLOB
    CHECK (firmware_class_key IS NULL OR length(firmware_class_key) = 32);

CREATE TABLE firmware_images (
    digest           BLOB    PRIMARY KEY CHECK (length(digest) = 32),
    product_id       TEXT    NOT NULL REFERENCES products (id),
    type             TEXT    NOT NULL,
    version          TEXT    NOT NULL,
    security_counter INTEGER NOT NULL CHECK (security_counter BETWEEN 0 AND 4294967295),
    size             INTEGER NOT NULL CHECK (size > 0),
    encrypted        INTEGER NOT NULL CHECK (encrypted IN (0, 1)),
    signers          BLOB    NOT NULL CHECK (length(signers) % 32 = 0),
    uploaded_at      INTEGER NOT NULL,
    uploaded_by      TEXT    NOT NULL
) STRICT;

CREATE INDEX firmware_images_product ON firmware_images (product_id, digest);
