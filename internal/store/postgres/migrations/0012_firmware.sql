-- 0012: the firmware repository (issue 13; docs/ota.md, "Firmware
-- repository"). Each product records what its devices' boot ROM checks
-- firmware against: the SHA-256 of each vendor root key in OTP slot order
-- (32 bytes each, at most 4 slots), the retired slots (a bit mask) and the
-- fingerprint of the device-class key encrypted images are sealed to.
-- Images are described here; their bytes live in the data directory's
-- content-addressed blob store that replicas share, never in the database.
ALTER TABLE products ADD COLUMN firmware_roots bytea NOT NULL DEFAULT '\x'
    CHECK (length(firmware_roots) % 32 = 0 AND length(firmware_roots) <= 128);
ALTER TABLE products ADD COLUMN firmware_retired smallint NOT NULL DEFAULT 0
    CHECK (firmware_retired BETWEEN 0 AND 15);
ALTER TABLE products ADD COLUMN firmware_class_key bytea
    CHECK (firmware_class_key IS NULL OR length(firmware_class_key) = 32);

CREATE TABLE firmware_images (
    digest           bytea       PRIMARY KEY CHECK (length(digest) = 32),
    product_id       text        NOT NULL REFERENCES products (id),
    type             text        NOT NULL,
    version          text        NOT NULL,
    security_counter bigint      NOT NULL CHECK (security_counter BETWEEN 0 AND 4294967295),
    size             bigint      NOT NULL CHECK (size > 0),
    encrypted        boolean     NOT NULL,
    signers          bytea       NOT NULL CHECK (length(signers) % 32 = 0),
    uploaded_at      timestamptz NOT NULL,
    uploaded_by      text        NOT NULL
);

CREATE INDEX firmware_images_product ON firmware_images (product_id, digest);
