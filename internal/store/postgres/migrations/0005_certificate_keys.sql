-- 0005: an operational key is certified for one device only, and a device
-- has one current certificate (issue 10; docs/protocol.md). The
-- certificate's write becomes one server-side function, which
-- RecordOnboarding, RecordRenewal and hallmark_complete_onboarding share.

-- The SHA-256 of the certified key's DER SubjectPublicKeyInfo; NULL for
-- certificates recorded before this migration.
ALTER TABLE certificates ADD COLUMN key_hash bytea CHECK (key_hash IS NULL OR length(key_hash) = 32);
-- When a later certificate of the same device was recorded (a renewal or
-- a new onboarding); NULL while the certificate is the device's current
-- one. Revocation publication lists superseded certificates.
ALTER TABLE certificates ADD COLUMN superseded_at timestamptz;

-- Which device each operational key is certified for. The primary key
-- is the check, across replicas: a transaction inserting a key another
-- one inserted waits for it to end, then finds the key taken. A device
-- may be certified for its own key again (renewal keeping the key). No
-- foreign key: the writing function locks the device row first.
CREATE TABLE operational_keys (
    key_hash     bytea       PRIMARY KEY CHECK (length(key_hash) = 32),
    identity     bytea       NOT NULL CHECK (length(identity) = 32),
    certified_at timestamptz NOT NULL
);

-- Until now every certificate stayed current: keep each device's newest
-- (by issued_at, then the later recorded) and supersede the others now,
-- so they stop working on the device routes once the grace has passed.
UPDATE certificates AS c SET superseded_at = now()
WHERE EXISTS (
    SELECT 1 FROM certificates AS newer
    WHERE newer.identity = c.identity AND (newer.issued_at, newer.seq) > (c.issued_at, c.seq)
);

-- hallmark_record_certificate records a certificate for its device. Its
-- refusals raise, and roll the caller's transaction back:
--   HM004 device unknown   HM005 device revoked   23505 serial taken
--   HM006 key certified for another device
--   HM007 issuance limit (DETAIL: when to retry, Unix microseconds)
-- The device row is locked first, as RevokeDevice does: an onboarding
-- never undoes a concurrent revocation, and concurrent renewals of one
-- device run one after the other, so each counts the other's
-- certificate (every statement of a READ COMMITTED transaction sees what
-- committed before it began).
CREATE FUNCTION hallmark_record_certificate(
    p_at timestamptz,
    p_serial bytea, p_identity bytea, p_not_before timestamptz, p_not_after timestamptz,
    p_der bytea, p_issued_at timestamptz, p_revoked_at timestamptz, p_key_hash bytea,
    p_limit integer, p_window interval)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_state  text;
    v_count  bigint;
    v_oldest timestamptz;
    v_holder bytea;
BEGIN
    SELECT state INTO v_state FROM devices WHERE identity = p_identity FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'device unknown' USING ERRCODE = 'HM004';
    ELSIF v_state = 'revoked' THEN
        RAISE EXCEPTION 'device revoked' USING ERRCODE = 'HM005';
    END IF;
    IF p_limit > 0 THEN
        SELECT count(*), min(issued_at) INTO v_count, v_oldest FROM certificates
            WHERE identity = p_identity AND issued_at > p_at - p_window;
        IF v_count >= p_limit THEN
            RAISE EXCEPTION 'issuance limit' USING ERRCODE = 'HM007',
                DETAIL = (extract(epoch FROM v_oldest + p_window) * 1000000)::bigint::text;
        END IF;
    END IF;
    IF p_key_hash IS NOT NULL THEN
        INSERT INTO operational_keys (key_hash, identity, certified_at) VALUES (p_key_hash, p_identity, p_at)
            ON CONFLICT (key_hash) DO NOTHING;
        IF NOT FOUND THEN
            SELECT identity INTO v_holder FROM operational_keys WHERE key_hash = p_key_hash;
            IF v_holder <> p_identity THEN
                RAISE EXCEPTION 'key certified for another device' USING ERRCODE = 'HM006';
            END IF;
        END IF;
    END IF;
    UPDATE certificates SET superseded_at = p_at WHERE identity = p_identity AND superseded_at IS NULL;
    INSERT INTO certificates (serial, identity, not_before, not_after, der, issued_at, revoked_at, key_hash)
        VALUES (p_serial, p_identity, p_not_before, p_not_after, p_der, p_issued_at, p_revoked_at, p_key_hash);
    UPDATE devices SET state = 'onboarded', onboarded_at = coalesce(onboarded_at, p_at)
        WHERE identity = p_identity;
END
$$;

-- The onboarding's one write (migration 0004), now with the key hash and
-- through hallmark_record_certificate: the challenge first, so that of
-- concurrent answers the losers wait on its row lock and then find it
-- used, before they touch the device.
--   HM001 challenge unknown   HM002 challenge used   HM003 challenge expired
--   and those of hallmark_record_certificate
DROP FUNCTION hallmark_complete_onboarding(bytea, timestamptz, bytea, bytea, timestamptz, timestamptz, bytea,
    timestamptz, text[], text[], timestamptz[], timestamptz, text, text, text, text, text, text);

CREATE FUNCTION hallmark_complete_onboarding(
    p_challenge bytea, p_at timestamptz,
    p_serial bytea, p_identity bytea, p_not_before timestamptz, p_not_after timestamptz,
    p_der bytea, p_issued_at timestamptz, p_key_hash bytea,
    p_job_kinds text[], p_job_connectors text[], p_job_next timestamptz[],
    p_audit_time timestamptz, p_actor text, p_action text, p_subject text,
    p_outcome text, p_detail text, p_remote_addr text)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_used timestamptz;
BEGIN
    UPDATE challenges SET used_at = p_at
        WHERE id = p_challenge AND used_at IS NULL AND expires_at > p_at;
    IF NOT FOUND THEN
        SELECT used_at INTO v_used FROM challenges WHERE id = p_challenge;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'challenge unknown' USING ERRCODE = 'HM001';
        ELSIF v_used IS NOT NULL THEN
            RAISE EXCEPTION 'challenge used' USING ERRCODE = 'HM002';
        END IF;
        RAISE EXCEPTION 'challenge expired' USING ERRCODE = 'HM003';
    END IF;
    PERFORM hallmark_record_certificate(p_at, p_serial, p_identity, p_not_before, p_not_after,
        p_der, p_issued_at, NULL, p_key_hash, 0, NULL);
    INSERT INTO jobs (kind, connector, identity, state, next_run_at, created_at, updated_at)
        SELECT k, c, p_identity, 'pending', nx, p_at, p_at
        FROM unnest(p_job_kinds, p_job_connectors, p_job_next) WITH ORDINALITY AS t(k, c, nx, n) ORDER BY n;
    INSERT INTO audit_events (time, actor, action, subject, outcome, detail, remote_addr)
        VALUES (p_audit_time, p_actor, p_action, p_subject, p_outcome, p_detail, p_remote_addr);
END
$$;
