package sqlite

import (
	"container/list"
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"sync"

	"modernc.org/sqlite"
)

// Per-connection statement cache. Parsing and planning a statement
// (sqlite3_prepare_v2) cost as much as running it: under a migration
// campaign it was 17 % of the server's CPU (docs/performance.md, "profile
// and what was cut"). Every connection of both pools therefore keeps the
// statements it ran, by their text, and runs a query it has seen again
// through the statement it prepared. This sits under database/sql, in the
// driver connection, so it serves statements inside and outside
// transactions alike and never needs a second connection: preparing on
// the writer while a transaction holds it (which would deadlock a pool of
// one) cannot happen, because the cache prepares on the connection already
// in hand.

// stmtCacheSize bounds the statements one connection keeps. The hot paths
// use a few dozen distinct statements; the rest (dynamic device filters,
// admin listings) are evicted least recently used first.
const stmtCacheSize = 128

// cachingConnector opens the driver's connections wrapped in a
// statement cache.
type cachingConnector struct {
	driver.Connector
}

func newCachingConnector(dsn string) (driver.Connector, error) {
	c, err := sqlite.NewConnector(dsn)
	if err != nil {
		return nil, err
	}
	return cachingConnector{c}, nil
}

func (c cachingConnector) Connect(ctx context.Context) (driver.Conn, error) {
	dc, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	inner, ok := dc.(innerConn)
	if !ok {
		dc.Close()
		return nil, fmt.Errorf("sqlite driver connection %T lacks the context interfaces", dc)
	}
	return &cachingConn{innerConn: inner, lru: list.New(), byQuery: map[string]*list.Element{}}, nil
}

// innerConn is what modernc.org/sqlite's connection implements and
// database/sql looks for.
type innerConn interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.ExecerContext
	driver.QueryerContext
	driver.Pinger
	driver.SessionResetter
	driver.Validator
}

// innerStmt is what the driver's statements implement.
type innerStmt interface {
	driver.Stmt
	driver.StmtExecContext
	driver.StmtQueryContext
}

// innerRows is what the driver's rows implement, passed through so that
// sql.Rows.ColumnTypes keeps working.
type innerRows interface {
	driver.Rows
	driver.RowsColumnTypeDatabaseTypeName
	driver.RowsColumnTypeLength
	driver.RowsColumnTypeNullable
	driver.RowsColumnTypePrecisionScale
	driver.RowsColumnTypeScanType
}

// cachingConn is one driver connection with its statements. database/sql
// uses a connection from one goroutine at a time, but may close a query's
// rows from another (when the query's context ends), hence the mutex.
type cachingConn struct {
	innerConn

	mu      sync.Mutex
	lru     *list.List // of *cachedStmt, most recently used first
	byQuery map[string]*list.Element
}

// cachedStmt is a prepared statement and whether rows still read from it:
// the driver's statement has one cursor, so a second query of the same
// text while the first's rows are open runs uncached.
type cachedStmt struct {
	query   string
	stmt    innerStmt
	busy    bool
	evicted bool // closed once its rows are
}

// take returns the idle cached statement of query, preparing and caching
// it if there is none, marked busy; nil when it is busy (the caller runs
// the query uncached).
func (c *cachingConn) take(ctx context.Context, query string) (*cachedStmt, error) {
	c.mu.Lock()
	if e, ok := c.byQuery[query]; ok {
		cs := e.Value.(*cachedStmt)
		if cs.busy {
			c.mu.Unlock()
			return nil, nil
		}
		cs.busy = true
		c.lru.MoveToFront(e)
		c.mu.Unlock()
		return cs, nil
	}
	c.mu.Unlock()
	ds, err := c.innerConn.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	st, ok := ds.(innerStmt)
	if !ok {
		ds.Close()
		return nil, nil
	}
	cs := &cachedStmt{query: query, stmt: st, busy: true}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.byQuery[query] = c.lru.PushFront(cs)
	for c.lru.Len() > stmtCacheSize {
		old := c.lru.Back()
		c.lru.Remove(old)
		ev := old.Value.(*cachedStmt)
		delete(c.byQuery, ev.query)
		ev.evicted = true
		if !ev.busy {
			ev.stmt.Close()
		}
	}
	return cs, nil
}

// release marks cs idle again, closing it if it was evicted meanwhile.
func (c *cachingConn) release(cs *cachedStmt) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cs.busy = false
	if cs.evicted {
		cs.stmt.Close()
	}
}

func (c *cachingConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	cs, err := c.take(ctx, query)
	if err != nil {
		return nil, err
	}
	if cs == nil {
		return c.innerConn.ExecContext(ctx, query, args)
	}
	defer c.release(cs)
	return cs.stmt.ExecContext(ctx, args)
}

func (c *cachingConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	cs, err := c.take(ctx, query)
	if err != nil {
		return nil, err
	}
	if cs == nil {
		return c.innerConn.QueryContext(ctx, query, args)
	}
	r, err := cs.stmt.QueryContext(ctx, args)
	if err != nil {
		c.release(cs)
		return nil, err
	}
	rows, ok := r.(innerRows)
	if !ok {
		r.Close()
		c.release(cs)
		return nil, errors.New("sqlite driver rows lack the column type interfaces")
	}
	return &cachedRows{innerRows: rows, release: func() { c.release(cs) }}, nil
}

// Close finalizes the cached statements, then closes the connection:
// SQLite keeps a connection with unfinalized statements open.
func (c *cachingConn) Close() error {
	c.mu.Lock()
	var errs []error
	for e := c.lru.Front(); e != nil; e = e.Next() {
		errs = append(errs, e.Value.(*cachedStmt).stmt.Close())
	}
	c.lru.Init()
	clear(c.byQuery)
	c.mu.Unlock()
	return errors.Join(append(errs, c.innerConn.Close())...)
}

// cachedRows gives the statement back when the rows close.
type cachedRows struct {
	innerRows
	once    sync.Once
	release func()
}

func (r *cachedRows) Close() error {
	err := r.innerRows.Close()
	r.once.Do(r.release)
	return err
}
