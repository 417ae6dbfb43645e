// Package fleetseed owns the backend-specific bulk step of the console's
// million-device benchmark fleet (storetest.SeedConsoleFleet): the SQL
// that onboards a tenth of the registered devices on SQLite and on
// PostgreSQL. It is test-support code, in its own package so that the
// stores' in-package benchmarks and the platform's benchmarks share it
// without an import cycle: it reaches a database through the connection
// it is given, never through a store.
package fleetseed

import (
	"context"
	"database/sql"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/hallmark-iot/hallmark/internal/store/storetest"
)

// SQLiteExecer is an SQLite connection (a *sql.DB) to a registry the
// fleet's devices were imported into.
type SQLiteExecer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// PostgresExecer is a PostgreSQL connection (a *pgx.Conn or a
// *pgxpool.Pool) to a registry the fleet's devices were imported into.
type PostgresExecer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// OnboardSQLite is the bulk step storetest.BenchmarkConsole asks of a
// backend, on SQLite: per-device calls would take most of an hour.
func OnboardSQLite(b testing.TB, db SQLiteExecer) {
	b.Helper()
	now := storetest.ConsoleBenchNow.UnixMicro()
	week := (7 * 24 * time.Hour).Microseconds()
	// A tenth onboarded (rowid % 10 = 0) at times spread over the week; of
	// those, 1% with a failed job, 1% pending, 1% silent and 10% expiring
	// within 30 days. Certificates first: recorded for an onboarded device
	// they would be renewals.
	onboarded := `CAST(? - (rowid * 7919) % ` + strconv.FormatInt(week, 10) + ` AS INTEGER)`
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO certificates (serial, identity, not_before, not_after, der, issued_at)
			SELECT substr(identity, 1, 16), identity, ` + onboarded + `, ? + CASE WHEN rowid % 100 = 0 THEN 10 ELSE 300 END * 86400000000, x'00', ` + onboarded + `
			FROM devices WHERE rowid % 10 = 0`, []any{now, now, now}},
		{`UPDATE devices SET state = 'onboarded', onboarded_at = ` + onboarded + ` WHERE rowid % 10 = 0`, []any{now}},
		{`INSERT INTO jobs (kind, connector, identity, state, next_run_at, created_at, updated_at)
			SELECT 'register', 'mqtt', identity, CASE rowid % 1000 WHEN 0 THEN 'failed' WHEN 10 THEN 'pending' ELSE 'done' END, ?, ?, ?
			FROM devices WHERE rowid % 10 = 0`, []any{now, now, now}},
		{`INSERT INTO device_status (identity, received_at, firmware_version, security_counter, boot_result,
				enrolment_algorithm, operational_algorithm, uptime_seconds, remote_addr, product_id)
			SELECT identity, ? - CASE WHEN rowid % 1000 = 20 THEN 3 * 86400000000 ELSE 600000000 END, '1.0.0', 1, 'ok',
				algorithm, algorithm, 60, '192.0.2.1', product_id
			FROM devices WHERE rowid % 10 = 0`, []any{now}},
		{`WITH RECURSIVE i(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM i WHERE x < 5000)
			INSERT INTO audit_events (time, actor, action, subject, outcome, detail, remote_addr)
			SELECT ? - x * 17000000, 'anonymous', 'device.onboard', 'address:192.0.2.' || (x % 200), 'denied',
				CASE x % 3 WHEN 0 THEN 'proof-rejected' WHEN 1 THEN 'challenge-expired' ELSE 'rate-limited: 12 refused from a to b' END, '192.0.2.1'
			FROM i`, []any{now}},
		// What the store's Close runs: the planner's statistics.
		{`PRAGMA optimize`, nil},
	} {
		if _, err := db.ExecContext(b.Context(), q.sql, q.args...); err != nil {
			b.Fatalf("%s: %v", q.sql, err)
		}
	}
}

// OnboardPostgres is the bulk step storetest.BenchmarkConsole asks of a
// backend, on PostgreSQL.
func OnboardPostgres(b testing.TB, db PostgresExecer) {
	b.Helper()
	now := storetest.ConsoleBenchNow
	// n numbers the devices by the last two bytes of their identity; a
	// tenth (n % 10 = 0) onboarded at times spread over the week; of those,
	// 1% with a failed job, 1% pending, 1% silent and 10% expiring within
	// 30 days. Certificates first: recorded for an onboarded device they
	// would be renewals.
	const n = `(get_byte(identity, 30) * 256 + get_byte(identity, 31))`
	const onboarded = `$1::timestamptz - ((` + n + ` * 7919) % 604800) * interval '1 second'`
	for _, q := range []string{
		`INSERT INTO certificates (serial, identity, not_before, not_after, der, issued_at)
			SELECT substr(identity, 1, 16), identity, ` + onboarded + `,
				$1::timestamptz + CASE WHEN ` + n + ` % 100 = 0 THEN 10 ELSE 300 END * interval '1 day', '\x00', ` + onboarded + `
			FROM devices WHERE ` + n + ` % 10 = 0`,
		`UPDATE devices SET state = 'onboarded', onboarded_at = ` + onboarded + ` WHERE ` + n + ` % 10 = 0`,
		`INSERT INTO jobs (kind, connector, identity, state, next_run_at, created_at, updated_at)
			SELECT 'register', 'mqtt', identity, CASE ` + n + ` % 1000 WHEN 0 THEN 'failed' WHEN 10 THEN 'pending' ELSE 'done' END, $1, $1, $1
			FROM devices WHERE ` + n + ` % 10 = 0`,
		`INSERT INTO device_status (identity, received_at, firmware_version, security_counter, boot_result,
				enrolment_algorithm, operational_algorithm, uptime_seconds, remote_addr, product_id)
			SELECT identity, $1::timestamptz - CASE WHEN ` + n + ` % 1000 = 20 THEN interval '3 days' ELSE interval '10 minutes' END,
				'1.0.0', 1, 'ok', algorithm, algorithm, 60, '192.0.2.1', product_id
			FROM devices WHERE ` + n + ` % 10 = 0`,
		`INSERT INTO audit_events (time, actor, action, subject, outcome, detail, remote_addr)
			SELECT $1::timestamptz - x * interval '17 seconds', 'anonymous', 'device.onboard', 'address:192.0.2.' || (x % 200), 'denied',
				CASE x % 3 WHEN 0 THEN 'proof-rejected' WHEN 1 THEN 'challenge-expired' ELSE 'rate-limited: 12 refused from a to b' END, '192.0.2.1'
			FROM generate_series(1, 5000) AS x`,
	} {
		if _, err := db.Exec(b.Context(), q, now); err != nil {
			b.Fatalf("%s: %v", q, err)
		}
	}
	// What autovacuum does soon after: statistics, and the visibility map
	// that index-only scans need.
	if _, err := db.Exec(b.Context(), `VACUUM ANALYZE`); err != nil {
		b.Fatal(err)
	}
}
