-- 0009: event cursors (issue 12; docs/lifecycle.md, "Events to your
-- systems"): for each event sink, the seq of the last device event
-- delivered to it, and which relay delivers to it until when (a lease,
-- so that replicas sharing a database do not all deliver every event).
-- SQLite has one writer, so seq order is the order ListEvents pages the
-- log in.
CREATE TABLE event_cursors (
    name        TEXT    PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 128),
    seq         INTEGER NOT NULL CHECK (seq >= 0),
    holder      TEXT,
    lease_until INTEGER
) STRICT;
