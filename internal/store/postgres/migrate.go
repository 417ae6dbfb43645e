package postgres

import (
	"context"
	"embed"
	"fmt"
	"io/fs"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	schema "github.com/hallmark-iot/hallmark/internal/store/migration"
)

// The schema's history, in the form package migration describes.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

const migrationsDir = "migrations"

// migrationLock is the pg_advisory_xact_lock key every migration
// transaction takes first, so replicas starting at once apply each
// migration exactly once. Advisory locks are per database, so one key
// serves every database on a server. The value is arbitrary; it only
// has to be one no other application on the database uses.
const migrationLock int64 = 0x48616c6c6d61726b // "Hallmark"

type migration = schema.Migration

// loadMigrations reads the migrations in dir of fsys.
func loadMigrations(fsys fs.FS, dir string) ([]migration, error) { return schema.Load(fsys, dir) }

// migrate brings the database up to the last of ms, one transaction per
// migration (PostgreSQL's DDL is transactional), so a failing migration
// leaves the schema at the version before it. It refuses a database that
// has versions ms does not have, or whose applied migrations carry other
// names (a different history).
func migrate(ctx context.Context, pool *pgxpool.Pool, ms []migration) error {
	for _, m := range ms {
		if err := applyMigration(ctx, pool, ms, m); err != nil {
			return err
		}
	}
	return nil
}

func applyMigration(ctx context.Context, pool *pgxpool.Pool, ms []migration, m migration) error {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("migration %04d: begin: %w", m.Version, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	// The lock comes before everything else, the creation of
	// schema_migrations included: two sessions racing through CREATE
	// TABLE IF NOT EXISTS can both try to create it, and one fails.
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLock); err != nil {
		return fmt.Errorf("migration %04d: lock: %w", m.Version, err)
	}
	const create = `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    integer     PRIMARY KEY,
		name       text        NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now()
	)`
	// Exec mode: a cached prepared statement would outlive the table in
	// the rare case of a database dropped and recreated under the pool.
	if _, err := tx.Exec(ctx, create, pgx.QueryExecModeSimpleProtocol); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	// Read under the lock: another replica may have applied this
	// migration a moment ago.
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
	// The simple protocol runs a file of several statements at once.
	if _, err := tx.Exec(ctx, m.SQL, pgx.QueryExecModeSimpleProtocol); err != nil {
		return fmt.Errorf("migration %04d_%s: %w", m.Version, m.Name, err)
	}
	const record = `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`
	if _, err := tx.Exec(ctx, record, pgx.QueryExecModeSimpleProtocol, m.Version, m.Name); err != nil {
		return fmt.Errorf("migration %04d: record: %w", m.Version, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("migration %04d: commit: %w", m.Version, err)
	}
	return nil
}

func appliedMigrations(ctx context.Context, tx pgx.Tx) (map[int]string, error) {
	rows, err := tx.Query(ctx, `SELECT version, name FROM schema_migrations`, pgx.QueryExecModeSimpleProtocol)
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
