package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hallmark-iot/hallmark/internal/store"
)

// TestEventCursorAtEndMissesNoRunningTransaction: a sink started at the
// end of the log while a transaction that wrote an event still runs is
// told of that event once it commits, though its seq may be lower than
// the end's (the log is paged by transaction, then seq).
func TestEventCursorAtEndMissesNoRunningTransaction(t *testing.T) {
	u := newDatabase(t)
	s := openURL(t, u)
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	const insert = `INSERT INTO device_events (time, kind, identity, detail) VALUES (now(), 'device.silent', $1, $2) RETURNING seq`
	id := make([]byte, 32)
	var first, low, high int64
	if err := s.pool.QueryRow(ctx, insert, id, "first").Scan(&first); err != nil {
		t.Fatal(err)
	}
	// x draws its seq and transaction first and runs on; y draws higher
	// ones and commits.
	x, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Rollback(context.Background())
	if err := x.QueryRow(ctx, insert, id, "x").Scan(&low); err != nil {
		t.Fatal(err)
	}
	if err := s.pool.QueryRow(ctx, insert, id, "y").Scan(&high); err != nil {
		t.Fatal(err)
	}
	cur, err := s.StartEventCursor(ctx, "sink", true)
	if err != nil {
		t.Fatal(err)
	}
	// The end is the first event (or the start, if another test's older
	// transaction hides even that): never y's, which x precedes.
	if cur != first && cur != 0 {
		t.Fatalf("the end cursor is %d while x runs; want %d (first), x %d and y %d after it", cur, first, low, high)
	}
	if err := x.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	var details []string
	for deadline := time.Now().Add(10 * time.Second); len(details) < 2 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		events, err := s.ListEvents(ctx, store.EventFilter{AfterSeq: cur})
		if err != nil {
			t.Fatal(err)
		}
		details = details[:0]
		for _, e := range events {
			if e.Detail != "first" {
				details = append(details, e.Detail)
			}
		}
	}
	if len(details) != 2 || details[0] != "x" || details[1] != "y" {
		t.Fatalf("events after the end cursor %d: %v; want x's, once it committed, then y's", cur, details)
	}
}
