-- 0004: the onboarding's one write as one server-side function, so that it
-- costs one round trip (and one implicit transaction) instead of eight
-- statements' worth. Its checks and their order are those of the Go
-- transaction it replaces (see onboarding.go); a refusal raises one of the
-- SQLSTATEs below, which roll everything back, and the Go side maps each
-- to the store's sentinel error.
--   HM001 challenge unknown   HM002 challenge used   HM003 challenge expired
--   HM004 device unknown      HM005 device revoked   23505 serial taken
CREATE FUNCTION hallmark_complete_onboarding(
    p_challenge bytea, p_at timestamptz,
    p_serial bytea, p_identity bytea, p_not_before timestamptz, p_not_after timestamptz,
    p_der bytea, p_issued_at timestamptz,
    p_job_kinds text[], p_job_connectors text[], p_job_next timestamptz[],
    p_audit_time timestamptz, p_actor text, p_action text, p_subject text,
    p_outcome text, p_detail text, p_remote_addr text)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_used  timestamptz;
    v_state text;
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
    SELECT state INTO v_state FROM devices WHERE identity = p_identity FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'device unknown' USING ERRCODE = 'HM004';
    ELSIF v_state = 'revoked' THEN
        RAISE EXCEPTION 'device revoked' USING ERRCODE = 'HM005';
    END IF;
    INSERT INTO certificates (serial, identity, not_before, not_after, der, issued_at, revoked_at)
        VALUES (p_serial, p_identity, p_not_before, p_not_after, p_der, p_issued_at, NULL);
    UPDATE devices SET state = 'onboarded', onboarded_at = coalesce(onboarded_at, p_at)
        WHERE identity = p_identity;
    INSERT INTO jobs (kind, connector, identity, state, next_run_at, created_at, updated_at)
        SELECT k, c, p_identity, 'pending', nx, p_at, p_at
        FROM unnest(p_job_kinds, p_job_connectors, p_job_next) WITH ORDINALITY AS t(k, c, nx, n) ORDER BY n;
    INSERT INTO audit_events (time, actor, action, subject, outcome, detail, remote_addr)
        VALUES (p_audit_time, p_actor, p_action, p_subject, p_outcome, p_detail, p_remote_addr);
END
$$;
