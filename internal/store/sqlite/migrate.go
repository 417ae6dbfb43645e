package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	schema "github.com/hallmark-iot/hallmark/internal/store/migration"
)

// The schema's history, in the form package migration describes.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

const migrationsDir = "migrations"

type migration = schema.Migration

// loadMigrations reads the migrations in dir of fsys.
func loadMigrations(fsys fs.FS, dir string) ([]migration, error) { return schema.Load(fsys, dir) }

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

// rebuildsTables marks a migration that rebuilds a table others
// reference (the way SQLite changes a CHECK constraint: create, copy,
// drop, rename). SQLite's procedure for it runs with foreign keys off,
// which can only be switched outside a transaction, and checks them
// before the commit instead (https://sqlite.org/lang_altertable.html).
const rebuildsTables = "-- sqlite: rebuilds tables"

func applyMigration(ctx context.Context, db *sql.DB, ms []migration, m migration) error {
	// One connection: the pragma is a connection's setting.
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("migration %04d: %w", m.Version, err)
	}
	defer conn.Close()
	rebuild := strings.Contains(m.SQL, rebuildsTables)
	if rebuild {
		if _, err := conn.ExecContext(ctx, "PRAGMA foreign_keys = OFF"); err != nil {
			return fmt.Errorf("migration %04d: foreign keys off: %w", m.Version, err)
		}
		defer conn.ExecContext(context.WithoutCancel(ctx), "PRAGMA foreign_keys = ON")
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migration %04d: begin: %w", m.Version, err)
	}
	defer tx.Rollback()
	// Read inside the write transaction: another process opening the same
	// file may have applied this migration a moment ago.
	applied, err := appliedMigrations(ctx, tx)
	if err != nil {
		return err
	}
	if err := schema.CheckHistory(applied, ms); err != nil {
		return err
	}
	if _, done := applied[m.Version]; done {
		return nil
	}
	if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
		return fmt.Errorf("migration %04d_%s: %w", m.Version, m.Name, err)
	}
	if rebuild {
		if err := checkForeignKeys(ctx, tx); err != nil {
			return fmt.Errorf("migration %04d_%s: %w", m.Version, m.Name, err)
		}
	}
	const record = `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`
	if _, err := tx.ExecContext(ctx, record, m.Version, m.Name, micros(time.Now())); err != nil {
		return fmt.Errorf("migration %04d: record: %w", m.Version, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migration %04d: commit: %w", m.Version, err)
	}
	return nil
}

// checkForeignKeys refuses a schema in which a row names a parent that
// does not exist: what foreign keys switched off did not check.
func checkForeignKeys(ctx context.Context, tx *sql.Tx) error {
	rows, err := tx.QueryContext(ctx, "PRAGMA foreign_key_check")
	if err != nil {
		return fmt.Errorf("check foreign keys: %w", err)
	}
	defer rows.Close()
	if rows.Next() {
		return errors.New("check foreign keys: a row references a missing parent")
	}
	return rows.Err()
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
