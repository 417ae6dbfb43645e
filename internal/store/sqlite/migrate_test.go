package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
)

// embedded lists the real migrations' names (0001_init, ...), in order:
// the tests below stay right as migrations are added.
func embedded(t *testing.T) []string {
	t.Helper()
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, strings.TrimSuffix(e.Name(), ".sql"))
	}
	return names
}

// after is the number of the k-th migration after the real ones.
func after(t *testing.T, k int) string { return fmt.Sprintf("%04d", len(embedded(t))+k) }

// withInit returns a file system holding the real migrations and the
// given extra files.
func withInit(t *testing.T, extra map[string]string) fstest.MapFS {
	t.Helper()
	fsys := fstest.MapFS{}
	for _, m := range embedded(t) {
		name := m + ".sql"
		body, err := fs.ReadFile(migrationFiles, "migrations/"+name)
		if err != nil {
			t.Fatal(err)
		}
		fsys["m/"+name] = &fstest.MapFile{Data: body}
	}
	for name, body := range extra {
		fsys["m/"+name] = &fstest.MapFile{Data: []byte(body)}
	}
	return fsys
}

func TestLoadMigrations(t *testing.T) {
	for _, c := range []struct {
		name    string
		extra   map[string]string
		want    int
		wantErr string
	}{
		{"embedded", nil, len(embedded(t)), ""},
		{"another", map[string]string{after(t, 1) + "_more.sql": "SELECT 1;"}, len(embedded(t)) + 1, ""},
		{"gap", map[string]string{after(t, 2) + "_skip.sql": "SELECT 1;"}, 0, "want number " + after(t, 1)},
		{"bad name", map[string]string{after(t, 1) + "-more.sql": "SELECT 1;"}, 0, "not NNNN_name.sql"},
		{"stray file", map[string]string{"README": "x"}, 0, "not NNNN_name.sql"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ms, err := loadMigrations(withInit(t, c.extra), "m")
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("loadMigrations: %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil || len(ms) != c.want {
				t.Fatalf("loadMigrations = %d migrations, %v; want %d", len(ms), err, c.want)
			}
			for i, m := range ms {
				if m.Version != i+1 {
					t.Errorf("migration %d has version %d", i, m.Version)
				}
			}
		})
	}
	if _, err := loadMigrations(fstest.MapFS{"m": {Mode: fs.ModeDir}}, "m"); err == nil {
		t.Error("loadMigrations of an empty directory succeeded")
	}
}

// rawDB opens the file behind the store's back, as another tool would.
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func schemaVersions(t *testing.T, db *sql.DB) []string {
	t.Helper()
	rows, err := db.Query(`SELECT printf('%04d_%s', version, name) FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	return out
}

func TestMigrateUpgradesInOrder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "registry.db")
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	db := rawDB(t, path)
	ms, err := loadMigrations(withInit(t, map[string]string{
		after(t, 1) + "_device_label.sql": "ALTER TABLE devices ADD COLUMN label TEXT NOT NULL DEFAULT '';",
		// Needs the column above: fails unless applied after it.
		after(t, 2) + "_label_index.sql": "CREATE INDEX devices_by_label ON devices (label);",
	}), "m")
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second run finds nothing to do
		if err := migrate(t.Context(), db, ms); err != nil {
			t.Fatal(err)
		}
	}
	got := strings.Join(schemaVersions(t, db), " ")
	if want := strings.Join(append(embedded(t), after(t, 1)+"_device_label", after(t, 2)+"_label_index"), " "); got != want {
		t.Errorf("schema_migrations = %s", got)
	}
}

func TestFailingMigrationChangesNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "registry.db")
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	db := rawDB(t, path)
	ms, err := loadMigrations(withInit(t, map[string]string{
		after(t, 1) + "_broken.sql": "CREATE TABLE half_done (a INTEGER); INSERT INTO no_such_table VALUES (1);",
	}), "m")
	if err != nil {
		t.Fatal(err)
	}
	if err := migrate(t.Context(), db, ms); err == nil || !strings.Contains(err.Error(), after(t, 1)+"_broken") {
		t.Fatalf("migrate with a broken migration: %v, want an error naming it", err)
	}
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM sqlite_schema WHERE name = 'half_done'`).Scan(&n); err != nil || n != 0 {
		t.Errorf("broken migration left its table behind (%d, %v)", n, err)
	}
	if got := schemaVersions(t, db); len(got) != len(embedded(t)) {
		t.Errorf("schema_migrations = %v, want only the real ones", got)
	}
}

func TestOpenRefusesUnknownSchema(t *testing.T) {
	for _, c := range []struct {
		name    string
		tamper  string
		wantErr error
		wantMsg string
	}{
		{"newer", fmt.Sprintf(`INSERT INTO schema_migrations VALUES (%d, 'from_the_future', 0)`, len(embedded(t))+1), ErrSchemaTooNew,
			fmt.Sprintf("knows up to %d", len(embedded(t)))},
		{"other history", `UPDATE schema_migrations SET name = 'other' WHERE version = 1`, nil, `"other" in the database`},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "registry.db")
			s, err := Open(t.Context(), path)
			if err != nil {
				t.Fatal(err)
			}
			s.Close()
			if _, err := rawDB(t, path).Exec(c.tamper); err != nil {
				t.Fatal(err)
			}
			_, err = Open(t.Context(), path)
			if err == nil || c.wantErr != nil && !errors.Is(err, c.wantErr) || !strings.Contains(err.Error(), c.wantMsg) {
				t.Fatalf("Open: %v, want %v containing %q", err, c.wantErr, c.wantMsg)
			}
		})
	}
}

// TestConcurrentOpen opens one new file from several goroutines, as two
// processes starting together would: each migration is applied once.
func TestConcurrentOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "registry.db")
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			s, err := Open(context.Background(), path)
			if err == nil {
				err = s.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if got := schemaVersions(t, rawDB(t, path)); strings.Join(got, " ") != strings.Join(embedded(t), " ") {
		t.Errorf("schema_migrations = %v, want each migration once", got)
	}
}
