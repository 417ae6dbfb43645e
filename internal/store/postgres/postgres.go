// Package postgres owns the registry's PostgreSQL storage backend: the
// store interfaces of internal/store on a PostgreSQL database, through a
// pgx connection pool, with the schema kept by versioned migrations
// embedded in the binary.
//
// Several replicas may share one database. Everything that must happen at
// most once is decided by the database, never by one process: a challenge
// is consumed by a conditional UPDATE, jobs are claimed with SELECT ... FOR
// UPDATE SKIP LOCKED, and migrations run under an advisory lock.
// Transactions run at READ COMMITTED; the few that could meet a deadlock or
// serialization failure are retried a bounded number of times.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hallmark-iot/hallmark/internal/store"
	schema "github.com/hallmark-iot/hallmark/internal/store/migration"
)

// ErrSchemaTooNew reports a database migrated by a newer binary than this
// one: using it could misread or damage data this binary does not know.
var ErrSchemaTooNew = schema.ErrTooNew

// Store is the PostgreSQL backend. It is safe for concurrent use, and any
// number of Stores, in any number of processes, may share one database.
type Store struct {
	pool *pgxpool.Pool

	closeOnce sync.Once
}

var _ store.Store = (*Store)(nil)

// Open connects to the database at url (postgres://user:password@host:port/db?options),
// applies the migrations it lacks and refuses, with ErrSchemaTooNew, a
// database whose schema is newer than this binary knows. The pool holds
// max(4, 2·GOMAXPROCS) connections unless the URL sets pool_max_conns;
// the other pgxpool and libpq options of the URL apply too. Errors never
// contain the URL's password.
func Open(ctx context.Context, url string) (*Store, error) {
	s, err := open(ctx, url)
	if err != nil {
		return nil, redact(fmt.Errorf("postgres: open: %w", err), url)
	}
	return s, nil
}

func open(ctx context.Context, connString string) (*Store, error) {
	if !strings.HasPrefix(connString, "postgres://") && !strings.HasPrefix(connString, "postgresql://") {
		return nil, errors.New("database URL must start with postgres:// or postgresql://")
	}
	cfg, err := pgxpool.ParseConfig(connString)
	if err != nil {
		return nil, err
	}
	if !hasPoolMaxConns(connString) {
		cfg.MaxConns = int32(max(4, 2*runtime.GOMAXPROCS(0)))
	}
	// The server keeps times as instants; naming UTC makes text output
	// (logs, errors) match what the API returns, unless the URL chose.
	if _, set := cfg.ConnConfig.RuntimeParams["timezone"]; !set {
		cfg.ConnConfig.RuntimeParams["timezone"] = "UTC"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	s := &Store{pool: pool}
	ms, err := loadMigrations(migrationFiles, migrationsDir)
	if err == nil {
		if err = pool.Ping(ctx); err != nil {
			err = fmt.Errorf("connect: %w", err)
		}
	}
	if err == nil {
		err = migrate(ctx, pool, ms)
	}
	if err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// hasPoolMaxConns reports whether the URL sets the pool size itself.
func hasPoolMaxConns(connString string) bool {
	u, err := url.Parse(connString)
	return err == nil && u.Query().Has("pool_max_conns")
}

// redactedError hides the password of a connection URL from an error's
// text: pgx parse and connect errors may quote the URL or its parts. The
// error it wraps stays reachable for errors.Is and errors.As.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// redact returns err with every form of connString's password in its
// text replaced, and userinfo of any URL it quotes cut out.
func redact(err error, connString string) error {
	msg := err.Error()
	if u, perr := url.Parse(connString); perr == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok && pw != "" {
			for _, form := range []string{pw, url.QueryEscape(pw), url.PathEscape(pw), u.User.String()} {
				msg = strings.ReplaceAll(msg, form, "xxxxx")
			}
		}
	}
	if pw := passwordParam(connString); pw != "" {
		msg = strings.ReplaceAll(msg, pw, "xxxxx")
	}
	// An unparseable URL can still carry user:password@host.
	if _, rest, ok := strings.Cut(connString, "://"); ok {
		authority, _, _ := strings.Cut(rest, "/")
		authority, _, _ = strings.Cut(authority, "?")
		if at := strings.LastIndex(authority, "@"); at >= 0 {
			if _, pw, ok := strings.Cut(authority[:at], ":"); ok && pw != "" {
				msg = strings.ReplaceAll(msg, pw, "xxxxx")
			}
		}
	}
	return &redactedError{msg: msg, err: err}
}

// passwordParam returns the value of a password= option in the URL's query.
func passwordParam(connString string) string {
	_, query, ok := strings.Cut(connString, "?")
	if !ok {
		return ""
	}
	for kv := range strings.SplitSeq(query, "&") {
		if v, ok := strings.CutPrefix(kv, "password="); ok {
			if un, err := url.QueryUnescape(v); err == nil && un != "" {
				return un
			}
			return v
		}
	}
	return ""
}

// Ping reports whether the database answers a query.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("postgres: ping: %w", err)
	}
	return nil
}

// Close closes the pool, waiting for connections in use to be returned;
// calling it again does nothing.
func (s *Store) Close() error {
	s.closeOnce.Do(s.pool.Close)
	return nil
}

// maxAttempts bounds how often inTx runs a transaction that failed with a
// deadlock or serialization failure.
const maxAttempts = 5

// inTx runs fn in one READ COMMITTED transaction and commits it, or rolls
// it back if fn or the commit fails. A transaction the server aborted as a
// deadlock victim or for a serialization failure is run again, up to
// maxAttempts times: fn must be safe to repeat.
func (s *Store) inTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	for attempt := 1; ; attempt++ {
		err := s.tryTx(ctx, fn)
		if err == nil || !retryable(err) || attempt == maxAttempts {
			return err
		}
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(time.Duration(attempt) * 5 * time.Millisecond):
		}
	}
}

func (s *Store) tryTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		// The rollback's own error adds nothing: fn's error says why, and
		// a connection that failed to roll back is closed by pgx.
		_ = tx.Rollback(context.WithoutCancel(ctx))
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// SQLSTATE codes the backend branches on.
const (
	codeUniqueViolation      = "23505"
	codeSerializationFailure = "40001"
	codeDeadlockDetected     = "40P01"
)

func sqlState(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

func retryable(err error) bool {
	c := sqlState(err)
	return c == codeSerializationFailure || c == codeDeadlockDetected
}

// isKeyTaken reports a primary-key or unique violation.
func isKeyTaken(err error) bool { return sqlState(err) == codeUniqueViolation }

// Times are timestamptz, NULL for the zero time. PostgreSQL keeps
// microseconds; pgx returns times in the local zone, so every time read is
// turned to UTC.

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func fromNullTime(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

// fixed copies a bytea column into a fixed-size array, refusing a length
// the schema should have made impossible.
func fixed(dst []byte, src []byte, what string) error {
	if len(src) != len(dst) {
		return fmt.Errorf("stored %s has %d bytes, want %d", what, len(src), len(dst))
	}
	copy(dst, src)
	return nil
}

// queryer is what the pool and a transaction have in common for reads.
type queryer interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// queryAll runs q and scans every row with scan.
func queryAll[T any](ctx context.Context, db queryer, q string, args []any, scan func(pgx.Row) (T, error)) ([]T, error) {
	rows, err := db.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (T, error) { return scan(row) })
	if len(list) == 0 {
		list = nil // as database/sql's loop would leave it
	}
	return list, err
}
