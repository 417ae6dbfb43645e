-- 0003: the onboarding's writes without a global lock or a disk flush for
-- challenges.

-- Challenges are short-lived and single-use. Unlogged, they cost no WAL
-- and their writes no flush; a crash empties the table, which only makes
-- devices ask again: a challenge lost cannot be answered, used or not.
-- (Unlogged tables are not replicated to standbys: a failover has the
-- same effect.)
ALTER TABLE challenges SET UNLOGGED;

-- The audit log's order is commit order: sequence numbers are drawn before
-- commit, so concurrent appends can commit out of seq order, and a reader
-- paging by seq could skip an event committed after it read past its
-- number. Each event therefore records its transaction; ListAudit orders
-- by (transaction, seq) and shows only events of transactions older than
-- every transaction still running. That prefix of the log never changes
-- once shown, and appends need no lock (the lock they took before this
-- migration serialized every onboarding on a disk flush).
ALTER TABLE audit_events ADD COLUMN xid xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX audit_events_by_xid ON audit_events (xid, seq);
