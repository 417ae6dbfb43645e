-- 0006: device lifecycle (issue 12; docs/lifecycle.md): the states
-- suspended and decommissioned, the reason and time of a device's last
-- transition, and RFC 5280 revocation reasons on certificates.

ALTER TABLE devices DROP CONSTRAINT devices_state_check,
    ADD CONSTRAINT devices_state_check
        CHECK (state IN ('registered', 'onboarded', 'suspended', 'revoked', 'decommissioned')),
    ADD COLUMN state_changed_at timestamptz,
    ADD COLUMN state_reason     text NOT NULL DEFAULT '';

UPDATE devices SET state_changed_at = revoked_at, state_reason = revoke_note WHERE state = 'revoked';

-- The RFC 5280 CRLReason of a revoked certificate (6, certificateHold,
-- for one on hold); 0 (unspecified) while it is good, and for those
-- revoked before this migration.
ALTER TABLE certificates ADD COLUMN revocation_reason smallint NOT NULL DEFAULT 0
    CHECK (revocation_reason BETWEEN 0 AND 10 AND revocation_reason <> 7);

-- A CRL lists revoked certificates by serial, one page at a time: this
-- index holds only them, so a page is one range scan however many good
-- certificates there are.
CREATE INDEX certificates_revoked ON certificates (serial) WHERE revoked_at IS NOT NULL;

-- hallmark_record_certificate (migration 0005) now refuses every device
-- that may not hold a certificate (suspended, revoked, decommissioned)
-- with HM005, its state in DETAIL.
CREATE OR REPLACE FUNCTION hallmark_record_certificate(
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
    ELSIF v_state NOT IN ('registered', 'onboarded') THEN
        RAISE EXCEPTION 'device %', v_state USING ERRCODE = 'HM005', DETAIL = v_state;
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
