-- 0018: the hash chain over the audit log (docs/evidence.md,
-- docs/decisions/0010-audit-chain.md). Events are appended to
-- audit_events as before; the sealer links them, in seq order (SQLite's
-- single writer hands out seq in commit order), into audit_chain, and
-- signs the head into audit_checkpoints with the audit key.

CREATE TABLE audit_chain (
    pos       INTEGER PRIMARY KEY,
    event_seq INTEGER NOT NULL UNIQUE,
    hash      BLOB    NOT NULL CHECK (length(hash) = 32)
) STRICT;

CREATE TABLE audit_checkpoints (
    seq       INTEGER PRIMARY KEY,
    head      BLOB    NOT NULL CHECK (length(head) = 32),
    first     INTEGER NOT NULL,
    time      INTEGER NOT NULL,
    key_id    TEXT    NOT NULL,
    alg       TEXT    NOT NULL,
    signature BLOB    NOT NULL
) STRICT;

-- A prune (PruneAudit) holds one row here inside its transaction: the
-- newest position it may delete. Outside a prune the table is empty and
-- the log, the chain and the checkpoints refuse DELETE as before.
CREATE TABLE audit_prune (
    through INTEGER NOT NULL
) STRICT;

DROP TRIGGER audit_events_no_delete;

CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
WHEN NOT EXISTS (SELECT 1 FROM audit_prune p JOIN audit_chain c ON c.event_seq = OLD.seq AND c.pos <= p.through)
BEGIN
    SELECT RAISE(ABORT, 'audit log is append-only');
END;

CREATE TRIGGER audit_chain_no_update BEFORE UPDATE ON audit_chain
BEGIN
    SELECT RAISE(ABORT, 'audit chain is append-only');
END;

CREATE TRIGGER audit_chain_no_delete BEFORE DELETE ON audit_chain
WHEN NOT EXISTS (SELECT 1 FROM audit_prune WHERE OLD.pos <= through)
BEGIN
    SELECT RAISE(ABORT, 'audit chain is append-only');
END;

CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
BEGIN
    SELECT RAISE(ABORT, 'audit checkpoints are append-only');
END;

CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
WHEN NOT EXISTS (SELECT 1 FROM audit_prune WHERE OLD.seq < through)
BEGIN
    SELECT RAISE(ABORT, 'audit checkpoints are append-only');
END;
