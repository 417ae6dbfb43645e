package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sqlitedriver "modernc.org/sqlite"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
	"github.com/hallmark-iot/hallmark/internal/store/storetest"
)

// openFile opens a store in a new file of its own. The file is a copy of
// one migrated once per test binary, so Open finds every migration applied,
// as on a restart: the contract suite opens a store per case, and applying
// the migrations costs a third of a second each time under the race
// detector. Opening and migrating a new file is what TestConnectionSettings,
// TestSynchronousModes, TestTwoStoresOneFile and migrate_test.go do, and
// TestOpenMemoryMigrates migrates a new in-memory database.
func openFile(t testing.TB) *Store {
	t.Helper()
	db, err := migratedFile()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "registry.db")
	if err := os.WriteFile(path, db, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var (
	migratedOnce sync.Once
	migratedDB   []byte
	migratedErr  error
)

// migratedFile returns the bytes of a database file with every migration
// applied and nothing else, made once.
func migratedFile() ([]byte, error) {
	migratedOnce.Do(func() {
		dir, err := os.MkdirTemp("", "sqlite-template-")
		if err != nil {
			migratedErr = err
			return
		}
		defer os.RemoveAll(dir)
		path := filepath.Join(dir, "registry.db")
		s, err := Open(context.Background(), path)
		if err != nil {
			migratedErr = err
			return
		}
		// Close checkpoints the write-ahead log into the file and removes
		// it: the file alone is then the database.
		if err := s.Close(); err != nil {
			migratedErr = err
			return
		}
		if _, err := os.Stat(path + "-wal"); !errors.Is(err, os.ErrNotExist) {
			migratedErr = fmt.Errorf("migrated template: %s-wal after Close (%v)", path, err)
			return
		}
		migratedDB, migratedErr = os.ReadFile(path)
	})
	return migratedDB, migratedErr
}

// The two contract runs share nothing, so they run beside each other.
func TestContractFile(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store { return openFile(t) })
}

// TestContractMemory runs the suite on Memory stores that start as a copy
// of the migrated template (memoryFromTemplate), for the reason openFile
// gives: migrating a new in-memory database for each of the suite's cases
// took a third of this package's time. Open still checks every migration
// is applied, as on a restart; TestOpenMemoryMigrates covers migrating an
// empty in-memory database.
func TestContractMemory(t *testing.T) {
	t.Parallel()
	// Parallel tests start once every sequential test of the package has
	// ended, so from here on only this test opens Memory stores.
	if err := memoryFromTemplate(); err != nil {
		t.Fatal(err)
	}
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := Open(t.Context(), Memory)
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// memoryTemplate, once set, is what every new connection to a Memory
// database starts with in place of an empty database.
var memoryTemplate atomic.Pointer[[]byte]

func init() {
	// A hook, not a change to Open: the store opens Memory exactly as
	// it does for everyone else, and only its first page reads differ.
	sqlitedriver.RegisterConnectionHook(func(c sqlitedriver.ExecQuerierContext, dsn string) error {
		db := memoryTemplate.Load()
		if db == nil || !strings.HasPrefix(dsn, Memory+"?") {
			return nil
		}
		d, ok := c.(interface{ Deserialize([]byte) error })
		if !ok {
			return fmt.Errorf("sqlite connection %T cannot deserialize", c)
		}
		return d.Deserialize(*db)
	})
}

// memoryFromTemplate makes new Memory databases start as the migrated
// template of migratedFile.
func memoryFromTemplate() error {
	db, err := migratedFile()
	if err != nil {
		return err
	}
	// The template is a WAL-mode file (header bytes 18 and 19 are 2); an
	// in-memory database cannot have a write-ahead log, so the copy says
	// rollback journal (1), as a Memory database created empty does.
	db = bytes.Clone(db)
	if len(db) < 100 || db[18] != 2 || db[19] != 2 {
		return fmt.Errorf("migrated template: not a WAL-mode SQLite file")
	}
	db[18], db[19] = 1, 1
	memoryTemplate.Store(&db)
	return nil
}

// TestOpenMemoryMigrates opens an empty in-memory database: every
// migration is applied, and the store works. It is sequential, so it runs
// before TestContractMemory installs the template.
func TestOpenMemoryMigrates(t *testing.T) {
	if memoryTemplate.Load() != nil {
		t.Fatal("the Memory template is installed before the sequential tests ended")
	}
	s, err := Open(t.Context(), Memory)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got := schemaVersions(t, s.writer)
	if want := embedded(t); !slices.Equal(got, want) {
		t.Errorf("schema_migrations = %v, want %v", got, want)
	}
	st := store.Station{ID: identity.FromSPKI([]byte("memory station")), Name: "memory", Algorithm: sigalg.Ed25519,
		PublicKey: []byte("memory station"), CreatedAt: time.Unix(1_700_000_000, 0).UTC()}
	if err := s.CreateStation(t.Context(), st); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetStation(t.Context(), st.ID); err != nil || got.Name != st.Name {
		t.Errorf("GetStation = %+v, %v", got, err)
	}
}

func BenchmarkStore(b *testing.B) {
	storetest.Benchmark(b, func(b *testing.B) store.Store { return openFile(b) })
}

// TestConnectionSettings checks every connection of both pools got the
// documented settings, and the file its permissions.
func TestConnectionSettings(t *testing.T) {
	path := filepath.Join(t.TempDir(), "registry.db")
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for name, db := range map[string]*sql.DB{"writer": s.writer, "reader": s.reader} {
		for pragma, want := range map[string]string{
			// synchronous 2 is FULL: every commit is synced before it returns.
			"journal_mode": "wal", "foreign_keys": "1", "synchronous": "2", "busy_timeout": "5000",
			"page_size": "8192", "mmap_size": "268435456",
		} {
			var got string
			if err := db.QueryRowContext(t.Context(), "PRAGMA "+pragma).Scan(&got); err != nil || got != want {
				t.Errorf("%s: PRAGMA %s = %q, %v; want %q", name, pragma, got, err, want)
			}
		}
	}
	if _, err := s.reader.ExecContext(t.Context(), `DELETE FROM tokens`); err == nil {
		t.Error("the read pool accepted a write")
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("database file mode %v, want 0600", perm)
	}
}

// TestSynchronousModes: FULL unless NORMAL is asked for by name, on
// every connection the pools open, including ones opened later.
func TestSynchronousModes(t *testing.T) {
	for _, tc := range []struct {
		mode Synchronous
		want string // PRAGMA synchronous: 1 NORMAL, 2 FULL
	}{{"", "2"}, {SyncFull, "2"}, {SyncNormal, "1"}, {"NORMAL", "1"}, {"Full", "2"}} {
		s, err := OpenWith(t.Context(), filepath.Join(t.TempDir(), "registry.db"), Options{Synchronous: tc.mode})
		if err != nil {
			t.Fatalf("%q: %v", tc.mode, err)
		}
		// Hold one reader so the pool must open a second connection.
		held, err := s.reader.Conn(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for name, q := range map[string]interface {
			QueryRowContext(context.Context, string, ...any) *sql.Row
		}{"writer": s.writer, "held reader": held, "second reader": s.reader} {
			var got string
			if err := q.QueryRowContext(t.Context(), "PRAGMA synchronous").Scan(&got); err != nil || got != tc.want {
				t.Errorf("mode %q, %s: PRAGMA synchronous = %q, %v; want %s", tc.mode, name, got, err, tc.want)
			}
		}
		held.Close()
		s.Close()
	}
	for _, bad := range []Synchronous{"off", "extra", "0", "full;"} {
		if s, err := OpenWith(t.Context(), filepath.Join(t.TempDir(), "registry.db"), Options{Synchronous: bad}); err == nil {
			s.Close()
			t.Errorf("mode %q accepted", bad)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.db")
	if err := os.WriteFile(garbage, bytes.Repeat([]byte("not a database "), 512), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"", filepath.Join(dir, "missing", "registry.db"), garbage, dir} {
		if s, err := Open(t.Context(), path); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded", path)
		}
	}
}

// TestAuditAppendOnly: the schema itself refuses to change the audit log,
// whoever asks.
func TestAuditAppendOnly(t *testing.T) {
	s := openFile(t)
	defer s.Close()
	if _, err := s.AppendAudit(t.Context(), store.AuditEvent{Actor: "system", Action: "test"}); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`UPDATE audit_events SET outcome = 'ok'`, `DELETE FROM audit_events`} {
		if _, err := s.writer.ExecContext(t.Context(), q); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: %v, want the append-only refusal", q, err)
		}
	}
	events, err := s.ListAudit(t.Context(), store.AuditFilter{})
	if err != nil || len(events) != 1 || events[0].Outcome != "" {
		t.Errorf("audit log after refused changes: %+v, %v", events, err)
	}
}

// TestTwoStoresOneFile runs writers through two Stores on one file, as two
// processes would (the platform does not, but an admin tool may open the
// file while it runs): BEGIN IMMEDIATE and busy_timeout must keep every
// write from failing with SQLITE_BUSY. Challenges are each Store's own (in
// memory), so each round's goes to exactly one of its Store's racers.
func TestTwoStoresOneFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "registry.db")
	var stores [2]*Store
	for i := range stores {
		s, err := Open(t.Context(), path)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		stores[i] = s
	}
	ctx := t.Context()
	const rounds, racers = 20, 8
	devices := registerDevices(t, stores[0], rounds*racers)
	expires := time.Now().Add(time.Hour)
	var wg sync.WaitGroup
	wins := make([]atomic.Int32, rounds)
	errs := make(chan error, rounds*racers*3)
	for r := range rounds {
		c := store.Challenge{ID: [16]byte{byte(r + 1)}, ExpiresAt: expires}
		if err := stores[r%2].CreateChallenge(ctx, c); err != nil {
			t.Fatal(err)
		}
		for i := range racers {
			s := stores[(r+i)%2]
			wg.Go(func() {
				_, err := s.ConsumeChallenge(ctx, c.ID, time.Now())
				switch {
				case err == nil:
					wins[r].Add(1)
				case s == stores[r%2] && !errors.Is(err, store.ErrChallengeUsed):
					errs <- err
				case s != stores[r%2] && !errors.Is(err, store.ErrNotFound):
					errs <- fmt.Errorf("another store's challenge: %w", err)
				}
				// Read, then write: in a deferred transaction the upgrade
				// to a write lock could fail at once with SQLITE_BUSY.
				cert := store.Certificate{Serial: [16]byte{byte(r), byte(i)}, Identity: devices[r*racers+i], DER: []byte{0x30}}
				errs <- s.RecordOnboarding(ctx, cert, time.Now())
				_, err = s.AppendAudit(ctx, store.AuditEvent{Actor: "system", Action: "race"})
				errs <- err
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for r := range wins {
		if n := wins[r].Load(); n != 1 {
			t.Errorf("challenge %d consumed %d times through two stores, want once", r, n)
		}
	}
}

// registerDevices imports n devices in one batch and returns their
// identities.
func registerDevices(t testing.TB, s *Store, n int) []identity.ID {
	t.Helper()
	ctx := t.Context()
	st := store.Station{ID: identity.ID{1}, Name: "s", Algorithm: sigalg.Ed25519, PublicKey: []byte{1}}
	p := store.Product{ID: "p", Name: "p"}
	if err := errors.Join(s.CreateStation(ctx, st), s.CreateProduct(ctx, p)); err != nil {
		t.Fatal(err)
	}
	devices := make([]store.Device, n)
	ids := make([]identity.ID, n)
	for i := range devices {
		ids[i] = identity.FromSPKI([]byte{byte(i), byte(i >> 8)})
		devices[i] = store.Device{Identity: ids[i], Algorithm: sigalg.Ed25519, PublicKey: []byte{byte(i)}}
	}
	res, err := s.ImportBatch(ctx, store.Batch{ID: "b", StationID: st.ID, ProductID: p.ID}, devices)
	if err != nil || res.Imported != n {
		t.Fatalf("ImportBatch = %+v, %v", res, err)
	}
	return ids
}

// TestQueryPlans checks that every list query is an index range scan in
// page order: a full scan or a sort would make each page cost the whole
// table, which is invisible with test-sized data.
func TestQueryPlans(t *testing.T) {
	s := openFile(t)
	defer s.Close()
	var queries []string
	var args [][]any
	for _, f := range []store.DeviceFilter{
		{After: identity.ID{1}},
		{State: store.StateRegistered}, {State: store.StateOnboarded, After: identity.ID{1}},
		{ProductID: "p"}, {BatchID: "b", After: identity.ID{1}}, {Algorithm: sigalg.MLDSA65},
		{State: store.StateRevoked, ProductID: "p", BatchID: "b", Algorithm: sigalg.Ed25519, After: identity.ID{1}},
	} {
		q, a, err := deviceQuery(f)
		if err != nil {
			t.Fatal(err)
		}
		queries, args = append(queries, q), append(args, a)
	}
	for _, f := range []store.AuditFilter{{Actor: "a"}, {Action: "a", AfterSeq: 5}, {Subject: "s"}, {Actor: "a", Subject: "s"}} {
		q, a := auditQuery(f)
		queries, args = append(queries, q), append(args, a)
	}
	// A migration's hand-over of operational keys, once a scan of every
	// certified key.
	queries, args = append(queries, passOperationalKeys), append(args, []any{[]byte{1}, []byte{2}})
	for i, q := range queries {
		plan := queryPlan(t, s, q, args[i])
		if !strings.Contains(plan, "SEARCH") || strings.Contains(plan, "TEMP B-TREE") {
			t.Errorf("%s\nplan: %s; want an index search without a sort", q, plan)
		}
	}
}

func queryPlan(t *testing.T, s *Store, q string, args []any) string {
	t.Helper()
	rows, err := s.reader.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+q, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	return strings.Join(plan, "; ")
}

// TestOpenOddPath: the path goes into a file: URI, so characters that mean
// something in a URI must reach the file system unchanged.
func TestOpenOddPath(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data dir?x=1#frag%20")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "registry.db")
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(s.Ping(t.Context()), s.Close()); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 1 || entries[0].Name() != "registry.db" {
		t.Fatalf("directory holds %v (%v), want only registry.db", entries, err)
	}
}
