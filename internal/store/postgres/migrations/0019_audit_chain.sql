-- 0019: the hash chain over the audit log (docs/evidence.md,
-- docs/decisions/0010-audit-chain.md). Events are appended to
-- audit_events as before; one sealer at a time (an advisory lock) links
-- them into audit_chain in the log's order, (xid, seq), taking only
-- events of transactions older than every running one, so an event that
-- commits late is never skipped; the sealer signs the head into
-- audit_checkpoints with the audit key. event_xid keeps the order key of
-- the head's event, which a prune may delete.

CREATE TABLE audit_chain (
    pos       bigint PRIMARY KEY,
    event_seq bigint NOT NULL UNIQUE,
    event_xid xid8   NOT NULL,
    hash      bytea  NOT NULL CHECK (length(hash) = 32)
);

CREATE TABLE audit_checkpoints (
    seq       bigint      PRIMARY KEY,
    head      bytea       NOT NULL CHECK (length(head) = 32),
    first     bigint      NOT NULL,
    time      timestamptz NOT NULL,
    key_id    text        NOT NULL,
    alg       text        NOT NULL,
    signature bytea       NOT NULL
);

-- DELETE is refused unless the transaction is a prune (PruneAudit sets
-- hallmark.audit_prune for itself only); UPDATE and TRUNCATE always.
CREATE FUNCTION audit_prune_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('hallmark.audit_prune', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit log is append-only' USING ERRCODE = 'insufficient_privilege';
END;
$$;

DROP TRIGGER audit_events_no_update ON audit_events;
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_prune_only();

CREATE TRIGGER audit_chain_no_update BEFORE UPDATE ON audit_chain
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_chain_no_delete BEFORE DELETE ON audit_chain
    FOR EACH ROW EXECUTE FUNCTION audit_prune_only();
CREATE TRIGGER audit_chain_no_truncate BEFORE TRUNCATE ON audit_chain
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();

CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_prune_only();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();
