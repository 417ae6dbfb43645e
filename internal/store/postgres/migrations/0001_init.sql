-- 0001: the registry's first schema, the same tables as the SQLite
-- backend's 0001_init.
--
-- Conventions: identities, serials, hashes and keys are bytea of fixed
-- length (checked); bytea compares as unsigned bytes, so ORDER BY identity
-- is the order of bytes.Compare. Times are timestamptz, which keeps
-- microseconds, NULL where the Go field is the zero time. Text keys and
-- station names are COLLATE "C": lists sort byte by byte, as in SQLite,
-- whatever the database's default collation.

CREATE TABLE stations (
    id         bytea       PRIMARY KEY CHECK (length(id) = 32),
    name       text        COLLATE "C" NOT NULL,
    algorithm  text        NOT NULL,
    public_key bytea       NOT NULL,
    created_at timestamptz NOT NULL
);

CREATE TABLE products (
    id             text        COLLATE "C" PRIMARY KEY,
    name           text        NOT NULL,
    cert_validity  bigint      NOT NULL, -- nanoseconds (time.Duration)
    cloud_endpoint text        NOT NULL,
    created_at     timestamptz NOT NULL
);

CREATE TABLE batches (
    id              text        COLLATE "C" PRIMARY KEY,
    station_id      bytea       NOT NULL REFERENCES stations (id),
    product_id      text        COLLATE "C" NOT NULL REFERENCES products (id),
    manifest_digest bytea       NOT NULL CHECK (length(manifest_digest) = 32),
    device_count    integer     NOT NULL,
    imported_at     timestamptz NOT NULL
);

-- station_id and product_id repeat the batch's so the filters have indexes.
CREATE TABLE devices (
    identity      bytea       PRIMARY KEY CHECK (length(identity) = 32),
    algorithm     text        NOT NULL,
    public_key    bytea       NOT NULL,
    root_of_trust text        NOT NULL,
    injection     text        NOT NULL,
    batch_id      text        COLLATE "C" NOT NULL REFERENCES batches (id),
    station_id    bytea       NOT NULL,
    product_id    text        COLLATE "C" NOT NULL,
    state         text        NOT NULL CHECK (state IN ('registered', 'onboarded', 'revoked')),
    created_at    timestamptz NOT NULL,
    onboarded_at  timestamptz,
    revoked_at    timestamptz,
    revoke_note   text        NOT NULL DEFAULT ''
);

-- Keys are random bytes: trying to compress an ML-DSA key (about 2 KiB,
-- enough to be TOASTed) only costs CPU during a large import.
ALTER TABLE devices ALTER COLUMN public_key SET STORAGE EXTERNAL;

-- Each filter index ends in identity, so a filtered page is one index range
-- scan in keyset order.
CREATE INDEX devices_by_state     ON devices (state, identity);
CREATE INDEX devices_by_product   ON devices (product_id, identity);
CREATE INDEX devices_by_batch     ON devices (batch_id, identity);
CREATE INDEX devices_by_algorithm ON devices (algorithm, identity);

-- No foreign key to devices: a challenge is issued for any claimed
-- identity, so an unknown one looks like a known one until the proof fails.
CREATE TABLE challenges (
    id          bytea       PRIMARY KEY CHECK (length(id) = 16),
    identity    bytea       NOT NULL CHECK (length(identity) = 32),
    nonce       bytea       NOT NULL CHECK (length(nonce) = 32),
    server_name text        NOT NULL,
    issued_at   timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz
);

CREATE INDEX challenges_by_expiry ON challenges (expires_at);

-- seq stands in for SQLite's rowid: it orders certificates issued in the
-- same microsecond, the later recorded first.
CREATE TABLE certificates (
    serial     bytea       PRIMARY KEY CHECK (length(serial) = 16),
    identity   bytea       NOT NULL REFERENCES devices (identity),
    not_before timestamptz NOT NULL,
    not_after  timestamptz NOT NULL,
    der        bytea       NOT NULL,
    issued_at  timestamptz NOT NULL,
    revoked_at timestamptz,
    seq        bigint      GENERATED ALWAYS AS IDENTITY
);

CREATE INDEX certificates_by_identity ON certificates (identity, issued_at, seq);

CREATE TABLE tokens (
    id         text        COLLATE "C" PRIMARY KEY,
    name       text        NOT NULL,
    hash       bytea       NOT NULL CHECK (length(hash) = 32),
    scopes     text[]      NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz,
    revoked_at timestamptz
);

-- An identity column: a sequence never hands a number out twice, even
-- when the transaction that drew it rolled back (numbers may have gaps).
CREATE TABLE audit_events (
    seq         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    time        timestamptz NOT NULL,
    actor       text        NOT NULL,
    action      text        NOT NULL,
    subject     text        NOT NULL,
    outcome     text        NOT NULL,
    detail      text        NOT NULL,
    remote_addr text        NOT NULL
);

CREATE INDEX audit_events_by_actor   ON audit_events (actor, seq);
CREATE INDEX audit_events_by_action  ON audit_events (action, seq);
CREATE INDEX audit_events_by_subject ON audit_events (subject, seq);

-- The log is append-only in the database itself, not only in the Go API:
-- UPDATE, DELETE and TRUNCATE are refused from any client.
CREATE FUNCTION audit_events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit log is append-only' USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER audit_events_no_update BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();

CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();
