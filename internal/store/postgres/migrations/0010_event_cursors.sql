-- 0010: event cursors (issue 12; docs/lifecycle.md, "Events to your
-- systems"): for each event sink, the seq of the last device event
-- delivered to it, and which relay delivers to it until when (a lease,
-- so that replicas do not all deliver every event). The log is paged by
-- (xid, seq) (0008), not by seq, so a cursor only ever moves by
-- compare-and-set to a seq ListEvents returned after it: relays that
-- overlap (a lease that expired mid-delivery) never move it backwards.
CREATE TABLE event_cursors (
    name        text        PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 128),
    seq         bigint      NOT NULL CHECK (seq >= 0),
    holder      text,
    lease_until timestamptz
);
