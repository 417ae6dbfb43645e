package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"strconv"
	"time"
)

// The schema's history: migrations/NNNN_name.sql, numbered from 0001
// without gaps. A released migration is never edited; a change is a new
// file.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

const migrationsDir = "migrations"

var migrationName = regexp.MustCompile(`^([0-9]{4})_([a-z0-9_]+)\.sql$`)

type migration struct {
	version int
	name    string
	sql     string
}

// loadMigrations reads dir in fsys and checks the files are numbered
// 1, 2, 3... with nothing else beside them.
func loadMigrations(fsys fs.FS, dir string) ([]migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var ms []migration
	for _, e := range entries { // sorted by name, hence by number
		m := migrationName.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("migration file %q: name is not NNNN_name.sql", e.Name())
		}
		version, _ := strconv.Atoi(m[1])
		if version != len(ms)+1 {
			return nil, fmt.Errorf("migration file %q: want number %04d", e.Name(), len(ms)+1)
		}
		body, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("read migration: %w", err)
		}
		ms = append(ms, migration{version: version, name: m[2], sql: string(body)})
	}
	if len(ms) == 0 {
		return nil, fmt.Errorf("no migrations in %s", dir)
	}
	return ms, nil
}

// migrate brings the database up to the last of ms, one transaction per
// migration, so a failing migration leaves the schema at the version before
// it. It refuses a database that has versions ms does not have, or whose
// applied migrations carry other names (a different history).
func migrate(ctx context.Context, db *sql.DB, ms []migration) error {
	const create = `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT    NOT NULL,
		applied_at INTEGER NOT NULL
	) STRICT`
	if _, err := db.ExecContext(ctx, create); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	for _, m := range ms {
		if err := applyMigration(ctx, db, ms, m); err != nil {
			return err
		}
	}
	return nil
}

func applyMigration(ctx context.Context, db *sql.DB, ms []migration, m migration) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migration %04d: begin: %w", m.version, err)
	}
	defer tx.Rollback()
	// Read inside the write transaction: another process opening the same
	// file may have applied this migration a moment ago.
	applied, err := appliedMigrations(ctx, tx)
	if err != nil {
		return err
	}
	if err := checkHistory(applied, ms); err != nil {
		return err
	}
	if _, done := applied[m.version]; done {
		return nil
	}
	if _, err := tx.ExecContext(ctx, m.sql); err != nil {
		return fmt.Errorf("migration %04d_%s: %w", m.version, m.name, err)
	}
	const record = `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`
	if _, err := tx.ExecContext(ctx, record, m.version, m.name, micros(time.Now())); err != nil {
		return fmt.Errorf("migration %04d: record: %w", m.version, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migration %04d: commit: %w", m.version, err)
	}
	return nil
}

func appliedMigrations(ctx context.Context, tx *sql.Tx) (map[int]string, error) {
	rows, err := tx.QueryContext(ctx, `SELECT version, name FROM schema_migrations`)
	if err != nil {
		return nil, fmt.Errorf("read schema version: %w", err)
	}
	defer rows.Close()
	applied := map[int]string{}
	for rows.Next() {
		var version int
		var name string
		if err := rows.Scan(&version, &name); err != nil {
			return nil, fmt.Errorf("read schema version: %w", err)
		}
		applied[version] = name
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read schema version: %w", err)
	}
	return applied, nil
}

func checkHistory(applied map[int]string, ms []migration) error {
	for version, name := range applied {
		if version > len(ms) {
			return fmt.Errorf("schema version %d, this binary knows up to %d: %w", version, len(ms), ErrSchemaTooNew)
		}
		if version < 1 {
			return fmt.Errorf("schema version %d (%q) is not a migration number", version, name)
		}
		if want := ms[version-1].name; want != name {
			return fmt.Errorf("schema version %d is %q in the database but %q in this binary", version, name, want)
		}
	}
	return nil
}
