package store

import (
	"context"
	"fmt"
	"time"
)

// Event cursors (docs/lifecycle.md, "Events to your systems"): how far
// each event sink has been told the device event log. A cursor is the Seq
// of the last event delivered to its sink, a position in the order
// ListEvents pages the log (commit order), so ListEvents with it as
// AfterSeq gives the events still to deliver.
//
// Replicas sharing one database each run a relay for every sink; a lease
// on the cursor (ClaimEventCursor) lets one of them deliver at a time, and
// compare-and-set keeps relays that overlap anyway (a lease that expired
// during a slow delivery) from moving a cursor backwards: at worst an
// event is delivered twice.

// MaxCursorName bounds a cursor's name (an event sink's name).
const MaxCursorName = 128

// EventCursors keeps one durable cursor per event sink.
type EventCursors interface {
	// StartEventCursor returns the named cursor, creating it first if it
	// does not exist: at 0 (the start of the log) or, with atEnd, at the
	// last event ListEvents would return now, so that a new sink hears of
	// what happens from now on only. Concurrent calls create it once and
	// return the same position.
	StartEventCursor(ctx context.Context, name string, atEnd bool) (int64, error)
	// EventCursor returns the named cursor; ErrNotFound if it was never
	// started.
	EventCursor(ctx context.Context, name string) (int64, error)
	// AdvanceEventCursor moves the named cursor from from to to, if it is
	// still at from, and reports whether it moved; false means another
	// process moved it (read it again). An unknown cursor is ErrNotFound.
	AdvanceEventCursor(ctx context.Context, name string, from, to int64) (bool, error)
	// ClaimEventCursor makes holder the one relay delivering to the named
	// sink until until, and reports whether it is: it is if no other
	// holder's lease runs past now (a holder renews its own). A holder
	// gives the sink up by claiming it until now. An unknown cursor is
	// ErrNotFound.
	ClaimEventCursor(ctx context.Context, name, holder string, now, until time.Time) (bool, error)
}

// CheckCursorName refuses a cursor name no backend keeps: empty or longer
// than MaxCursorName bytes.
func CheckCursorName(name string) error {
	if name == "" || len(name) > MaxCursorName {
		return fmt.Errorf("event cursor name must be 1 to %d bytes", MaxCursorName)
	}
	return nil
}
