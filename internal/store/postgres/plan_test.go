package postgres

import (
	"strings"
	"testing"
)

// A migration's hand-over of operational keys goes through the index on
// identity; it once read every certified key of the fleet. Sequential
// scans are switched off for the plan, since on a near-empty table one
// would win whatever the indexes.
func TestPassOperationalKeysPlan(t *testing.T) {
	t.Parallel()
	s := openNew(t)
	tx, err := s.pool.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(t.Context())
	if _, err := tx.Exec(t.Context(), `SET LOCAL enable_seqscan = off`); err != nil {
		t.Fatal(err)
	}
	rows, err := tx.Query(t.Context(), `EXPLAIN `+passOperationalKeys, make([]byte, 32), make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	var plan []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, line)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if p := strings.Join(plan, "\n"); !strings.Contains(p, "operational_keys_by_identity") {
		t.Fatalf("plan:\n%s\nwant the index operational_keys_by_identity", p)
	}
}
