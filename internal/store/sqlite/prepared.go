package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
)

// Prepared statements. Parsing a statement was 8–10 % of the server's CPU
// under onboarding load (docs/performance.md): the hot statements are
// prepared once per pool, and database/sql keeps each prepared on every
// connection that ran it, reusing it inside transactions on that
// connection.

type stmtCache struct {
	mu sync.Mutex
	m  map[stmtKey]*sql.Stmt
}

type stmtKey struct {
	db *sql.DB
	q  string
}

// prepared returns q prepared on db. Never call it for the writer inside
// a transaction: preparing needs a connection, and the writer's one is the
// transaction's (preparedTx only looks up what prepareWriter prepared).
func (s *Store) prepared(ctx context.Context, db *sql.DB, q string) (*sql.Stmt, error) {
	s.stmts.mu.Lock()
	defer s.stmts.mu.Unlock()
	if st, ok := s.stmts.m[stmtKey{db, q}]; ok {
		return st, nil
	}
	st, err := db.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	if s.stmts.m == nil {
		s.stmts.m = map[stmtKey]*sql.Stmt{}
	}
	s.stmts.m[stmtKey{db, q}] = st
	return st, nil
}

// closeStatements closes the prepared statements, before the pools.
func (s *Store) closeStatements() {
	s.stmts.mu.Lock()
	defer s.stmts.mu.Unlock()
	for k, st := range s.stmts.m {
		st.Close()
		delete(s.stmts.m, k)
	}
}

// preparedTx runs a write transaction's statements through the writer's
// prepared statements.
type preparedTx struct {
	*sql.Tx
	s *Store
}

func (s *Store) preparedTx(tx *sql.Tx) preparedTx { return preparedTx{tx, s} }

// writerStatements are prepared on the writer when the store opens: the
// statements of an onboarding's write.
var writerStatements = []string{selectDeviceState, countRecentCerts, claimKey, selectKeyHolder, supersedeCerts,
	insertCertificate, onboardDevice, insertAuditEvent, insertJob}

// prepareWriter prepares writerStatements, before any transaction holds
// the writer's connection.
func (s *Store) prepareWriter(ctx context.Context) error {
	for _, q := range writerStatements {
		if _, err := s.prepared(ctx, s.writer, q); err != nil {
			return fmt.Errorf("prepare %q: %w", q, err)
		}
	}
	return nil
}

// writerStmt returns q's writer statement if prepareWriter prepared it.
func (s *Store) writerStmt(q string) *sql.Stmt {
	s.stmts.mu.Lock()
	defer s.stmts.mu.Unlock()
	return s.stmts.m[stmtKey{s.writer, q}]
}

func (t preparedTx) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	if st := t.s.writerStmt(q); st != nil {
		return t.Tx.StmtContext(ctx, st).ExecContext(ctx, args...)
	}
	return t.Tx.ExecContext(ctx, q, args...)
}

func (t preparedTx) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	if st := t.s.writerStmt(q); st != nil {
		return t.Tx.StmtContext(ctx, st).QueryRowContext(ctx, args...)
	}
	return t.Tx.QueryRowContext(ctx, q, args...)
}
