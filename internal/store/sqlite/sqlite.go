// Package sqlite owns the registry's embedded storage backend: the store
// interfaces of internal/store on a single SQLite database file, through the
// pure-Go modernc.org/sqlite driver, with the schema kept by versioned
// migrations embedded in the binary.
//
// Concurrency: SQLite admits one writer at a time. Every write goes through
// one dedicated connection and starts its transaction with BEGIN IMMEDIATE,
// so writers in this process queue in Go instead of failing with
// SQLITE_BUSY, and a writer in another process waits out busy_timeout.
// Reads use a separate pool of read-only connections that, in WAL mode, see
// the last committed state without blocking or being blocked by the writer.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/hallmark-iot/hallmark/internal/store"
	schema "github.com/hallmark-iot/hallmark/internal/store/migration"
)

// Memory opens a private in-memory database, gone at Close. It is for
// tests that do not care about files; the server always uses a file.
const Memory = ":memory:"

// ErrSchemaTooNew reports a database migrated by a newer binary than this
// one: opening it could misread or damage data this binary does not know.
var ErrSchemaTooNew = schema.ErrTooNew

// busyTimeout bounds how long a statement waits for a lock held by another
// process (a second hallmark binary on the same file) before SQLITE_BUSY.
const busyTimeout = 5 * time.Second

// Store is the SQLite backend. It is safe for concurrent use.
type Store struct {
	writer *sql.DB // exactly one connection
	reader *sql.DB // read-only connections; the writer itself in Memory mode

	challenges challengeMap

	// The group committer (groupcommit.go).
	writes        chan *writeRequest
	closing       chan struct{}
	committerDone chan struct{}

	closeOnce sync.Once
	closeErr  error
}

var _ store.Store = (*Store)(nil)

// Synchronous is when SQLite syncs a commit to disk (PRAGMA synchronous).
type Synchronous string

const (
	// SyncFull syncs the -wal file at every commit, before the commit
	// returns: a committed write, such as the record of an issued
	// certificate, survives a power failure or kernel crash. The default.
	SyncFull Synchronous = "full"
	// SyncNormal syncs the -wal file only at checkpoints: faster, but a
	// power failure or kernel crash can roll back the writes committed
	// since the last one (docs/store.md). An explicit opt-in.
	SyncNormal Synchronous = "normal"
)

// ParseSynchronous reads a synchronous mode by name, in any case.
func ParseSynchronous(v string) (Synchronous, error) {
	switch m := Synchronous(strings.ToLower(strings.TrimSpace(v))); m {
	case SyncFull, SyncNormal:
		return m, nil
	}
	return "", fmt.Errorf("sqlite: synchronous %q: want full or normal", v)
}

// pragma is the mode's PRAGMA synchronous value.
func (m Synchronous) pragma() string {
	if m == SyncNormal {
		return "NORMAL"
	}
	return "FULL"
}

// Options are the settings a caller of OpenWith chooses.
type Options struct {
	// Synchronous is the durability of a commit; empty means SyncFull.
	Synchronous Synchronous
}

// Open opens or creates the database at path (or Memory) with the default
// Options: see OpenWith.
func Open(ctx context.Context, path string) (*Store, error) {
	return OpenWith(ctx, path, Options{})
}

// OpenWith opens or creates the database at path (or Memory), applies the
// migrations it lacks and refuses, with ErrSchemaTooNew, a database whose
// schema is newer than this binary knows. A new file is created 0600.
func OpenWith(ctx context.Context, path string, opts Options) (*Store, error) {
	if path == "" {
		return nil, errors.New("sqlite: open: empty database path")
	}
	if opts.Synchronous == "" {
		opts.Synchronous = SyncFull
	}
	var err error
	if opts.Synchronous, err = ParseSynchronous(string(opts.Synchronous)); err != nil {
		return nil, err
	}
	// Two processes opening a new file at once can meet SQLITE_BUSY that
	// the busy handler does not wait out: SQLite refuses the switch to WAL
	// mode at once while another connection holds the file, because
	// waiting could deadlock. Opening is idempotent (every migration is
	// its own transaction), so it is tried again, within busyTimeout.
	deadline := time.Now().Add(busyTimeout)
	for delay := 5 * time.Millisecond; ; delay = min(2*delay, 200*time.Millisecond) {
		s, err := open(ctx, path, opts)
		if err == nil || !isBusy(err) || time.Now().Add(delay).After(deadline) {
			return s, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("sqlite: open %s: %w", path, errors.Join(err, ctx.Err()))
		case <-time.After(delay):
		}
	}
}

func open(ctx context.Context, path string, opts Options) (*Store, error) {
	s, err := openPools(path, opts.Synchronous)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	if err := s.init(ctx, path); err != nil {
		s.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	s.challenges.m = map[[16]byte]store.Challenge{}
	s.startCommitter()
	return s, nil
}

func openPools(path string, mode Synchronous) (*Store, error) {
	if path == Memory {
		// Every connection to ":memory:" is a separate database, so the
		// one connection serves reads too and must never be recycled.
		db, err := openDB(Memory + "?" + connParams(false, mode).Encode())
		if err != nil {
			return nil, err
		}
		db.SetMaxOpenConns(1)
		db.SetMaxIdleConns(1)
		db.SetConnMaxLifetime(0)
		db.SetConnMaxIdleTime(0)
		return &Store{writer: db, reader: db}, nil
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	// Created here, not by SQLite, to get mode 0600; SQLite gives its -wal
	// and -shm files the database file's mode.
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	f.Close()
	uri := (&url.URL{Scheme: "file", Path: abs}).String()
	writer, err := openDB(uri + "?" + connParams(false, mode).Encode())
	if err != nil {
		return nil, err
	}
	writer.SetMaxOpenConns(1)
	writer.SetMaxIdleConns(1)
	writer.SetConnMaxLifetime(0)
	reader, err := openDB(uri + "?" + connParams(true, mode).Encode())
	if err != nil {
		writer.Close()
		return nil, err
	}
	readers := max(4, 2*runtime.GOMAXPROCS(0))
	reader.SetMaxOpenConns(readers)
	reader.SetMaxIdleConns(readers)
	return &Store{writer: writer, reader: reader}, nil
}

// openDB opens a pool whose connections keep the statements they ran
// (stmtcache.go).
func openDB(dsn string) (*sql.DB, error) {
	c, err := newCachingConnector(dsn)
	if err != nil {
		return nil, err
	}
	return sql.OpenDB(c), nil
}

// connParams are the per-connection settings, applied by the driver to
// every connection it opens. docs/store.md explains each choice.
func connParams(readOnly bool, mode Synchronous) url.Values {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	q.Add("_pragma", "foreign_keys(1)")
	// Only the writer commits; the readers get the same value so that
	// every connection reports the mode the store runs in.
	q.Add("_pragma", "synchronous("+mode.pragma()+")")
	q.Add("_pragma", "temp_store(MEMORY)")
	// Reads of the database file through a shared memory map instead of
	// a read system call and a copy into each connection's page cache:
	// the readers' caches are small (2 MiB each), and under a campaign
	// over a large registry most of their page reads missed. Up to 256
	// MiB; pages past it, and the -wal file, are read as before.
	q.Add("_pragma", "mmap_size(268435456)")
	if readOnly {
		q.Set("_query_only", "1")
		return q
	}
	// 8 KiB pages hold three ML-DSA-65 device rows (about 2 KiB each)
	// where 4 KiB pages hold one: a mixed 100,000-device batch takes 115
	// MiB instead of 156. A page size is fixed when the file is created,
	// so it must come before WAL mode, which the driver applies after the
	// _pragma list.
	q.Add("_pragma", "page_size(8192)")
	q.Set("_journal_mode", "WAL")
	// After a checkpoint, cut the -wal file back to 64 MiB: one large
	// import would otherwise leave it at its peak size until Close.
	q.Add("_pragma", "journal_size_limit(67108864)")
	// A larger page cache keeps the device table's indexes in memory
	// during a 100,000-device import: 32 MiB.
	q.Add("_pragma", "cache_size(-32768)")
	// Bounds the ANALYZE that PRAGMA optimize may run at Close.
	q.Add("_pragma", "analysis_limit(1000)")
	q.Set("_txlock", "immediate")
	return q
}

func (s *Store) init(ctx context.Context, path string) error {
	if path != Memory {
		var mode string
		if err := s.writer.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
			return fmt.Errorf("read journal mode: %w", err)
		}
		if mode != "wal" {
			return fmt.Errorf("journal mode is %q, want wal (does the file system support shared memory?)", mode)
		}
	}
	ms, err := loadMigrations(migrationFiles, migrationsDir)
	if err != nil {
		return err
	}
	return migrate(ctx, s.writer, ms)
}

// Ping reports whether the database answers a query. It uses a read
// connection, so a long import holding the writer does not fail readiness.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.reader.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("sqlite: ping: %w", err)
	}
	return nil
}

// Close closes the database; later calls return the first call's result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.stopCommitter()
		// Refresh the planner's statistics where they went stale, so a
		// combined device filter picks its most selective index.
		s.writer.Exec("PRAGMA optimize")
		var rerr error
		if s.reader != s.writer {
			rerr = s.reader.Close()
		}
		// The writer closes last: the last connection to a WAL database
		// checkpoints it and removes the -wal file.
		s.closeErr = errors.Join(rerr, s.writer.Close())
		if s.closeErr != nil {
			s.closeErr = fmt.Errorf("sqlite: close: %w", s.closeErr)
		}
	})
	return s.closeErr
}

// inTx runs fn in one write transaction (BEGIN IMMEDIATE on the writer
// connection) and commits it, or rolls it back if fn or the commit fails.
func (s *Store) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// isConstraint reports whether err is a SQLite constraint violation of one
// of the given extended result codes.
func isConstraint(err error, codes ...int) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	for _, c := range codes {
		if se.Code() == c {
			return true
		}
	}
	return false
}

// isBusy reports SQLITE_BUSY with any extended code.
func isBusy(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_BUSY
}

// isKeyTaken reports a primary-key or unique violation.
func isKeyTaken(err error) bool {
	return isConstraint(err, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, sqlite3.SQLITE_CONSTRAINT_UNIQUE)
}

// Times are stored as Unix microseconds, UTC, and NULL for the zero time.

func micros(t time.Time) int64 { return t.UnixMicro() }

func nullMicros(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMicro(), Valid: true}
}

func fromMicros(v int64) time.Time { return time.UnixMicro(v).UTC() }

func fromNullMicros(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return fromMicros(v.Int64)
}

// scanner is what *sql.Row and *sql.Rows have in common.
type scanner interface {
	Scan(dest ...any) error
}

// fixed copies a BLOB column into a fixed-size array, refusing a length
// the schema should have made impossible.
func fixed(dst []byte, src []byte, what string) error {
	if len(src) != len(dst) {
		return fmt.Errorf("stored %s has %d bytes, want %d", what, len(src), len(dst))
	}
	copy(dst, src)
	return nil
}
