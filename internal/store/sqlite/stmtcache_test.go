package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
)

// openCachingDB opens a one-connection pool on a new file through the
// statement cache, with table t holding 1..n.
func openCachingDB(t *testing.T, n int) *sql.DB {
	t.Helper()
	db, err := openDB("file:" + filepath.Join(t.TempDir(), "cache.db") + "?" + connParams(false, SyncNormal).Encode())
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec(`CREATE TABLE t (x INTEGER PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= n; i++ {
		if _, err := db.Exec(`INSERT INTO t (x) VALUES (?)`, i); err != nil {
			t.Fatal(err)
		}
	}
	return db
}

// cached reports how many statements the pool's one connection keeps.
func cached(t *testing.T, db *sql.DB) int {
	t.Helper()
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var n int
	err = conn.Raw(func(dc any) error {
		c := dc.(*cachingConn)
		c.mu.Lock()
		defer c.mu.Unlock()
		n = len(c.byQuery)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func sum(t *testing.T, rows *sql.Rows, limit int) int {
	t.Helper()
	total := 0
	for i := 0; i < limit && rows.Next(); i++ {
		var x int
		if err := rows.Scan(&x); err != nil {
			t.Fatal(err)
		}
		total += x
	}
	return total
}

// A statement run again is the one prepared the first time: the cache
// holds one entry per distinct text, whatever the arguments.
func TestStatementCacheReuses(t *testing.T) {
	t.Parallel()
	db := openCachingDB(t, 3)
	before := cached(t, db)
	for i := 1; i <= 3; i++ {
		var x int
		if err := db.QueryRow(`SELECT x FROM t WHERE x = ?`, i).Scan(&x); err != nil || x != i {
			t.Fatalf("x = %d, %v; want %d", x, err, i)
		}
	}
	if got := cached(t, db); got != before+1 {
		t.Fatalf("%d statements cached after one query text run three times, want %d", got, before+1)
	}
}

// The same query again while the first one's rows are still open runs
// on its own statement: neither result is disturbed.
func TestStatementCacheNestedSameQuery(t *testing.T) {
	t.Parallel()
	db := openCachingDB(t, 10)
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	const q = `SELECT x FROM t ORDER BY x`
	outer, err := tx.Query(q)
	if err != nil {
		t.Fatal(err)
	}
	first := sum(t, outer, 4) // 1+2+3+4
	inner, err := tx.Query(q)
	if err != nil {
		t.Fatal(err)
	}
	if got := sum(t, inner, 100); got != 55 {
		t.Fatalf("inner query sums %d, want 55", got)
	}
	inner.Close()
	if got := first + sum(t, outer, 100); got != 55 {
		t.Fatalf("outer query sums %d, want 55", got)
	}
	if err := outer.Err(); err != nil {
		t.Fatal(err)
	}
	outer.Close()
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// More distinct statements than the cache holds: the least recently used
// go, the count stays bounded, and a statement evicted while its rows are
// open keeps serving them until they close.
func TestStatementCacheEvicts(t *testing.T) {
	t.Parallel()
	db := openCachingDB(t, 10)
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	open, err := tx.Query(`SELECT x FROM t ORDER BY x DESC`)
	if err != nil {
		t.Fatal(err)
	}
	first := sum(t, open, 2) // 10+9
	for i := range stmtCacheSize + 10 {
		var x int
		if err := tx.QueryRow(fmt.Sprintf(`SELECT x + %d FROM t WHERE x = 1`, i)).Scan(&x); err != nil || x != i+1 {
			t.Fatalf("query %d: %d, %v", i, x, err)
		}
	}
	if got := first + sum(t, open, 100); got != 55 {
		t.Fatalf("evicted statement's rows sum %d, want 55", got)
	}
	open.Close()
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := cached(t, db); got > stmtCacheSize {
		t.Fatalf("%d statements cached, bound %d", got, stmtCacheSize)
	}
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM t`).Scan(&n); err != nil || n != 10 {
		t.Fatalf("count = %d, %v", n, err)
	}
}

// A cached statement sees a schema change (SQLite prepares it again).
func TestStatementCacheSchemaChange(t *testing.T) {
	t.Parallel()
	db := openCachingDB(t, 1)
	const q = `SELECT * FROM t`
	cols := func() int {
		rows, err := db.Query(q)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		c, err := rows.Columns()
		if err != nil {
			t.Fatal(err)
		}
		return len(c)
	}
	if got := cols(); got != 1 {
		t.Fatalf("%d columns, want 1", got)
	}
	if _, err := db.Exec(`ALTER TABLE t ADD COLUMN y INTEGER NOT NULL DEFAULT 7`); err != nil {
		t.Fatal(err)
	}
	if got := cols(); got != 2 {
		t.Fatalf("%d columns after ALTER TABLE, want 2", got)
	}
}

// A failing statement leaves its cached statement usable.
func TestStatementCacheAfterError(t *testing.T) {
	t.Parallel()
	db := openCachingDB(t, 1)
	const q = `INSERT INTO t (x) VALUES (?)`
	if _, err := db.Exec(q, 1); !isKeyTaken(err) {
		t.Fatalf("duplicate insert: %v, want a key violation", err)
	}
	if _, err := db.Exec(q, 2); err != nil {
		t.Fatalf("insert after the failure: %v", err)
	}
	if _, err := db.Exec(`NOT SQL`); err == nil {
		t.Fatal("a statement that does not parse ran")
	}
}
