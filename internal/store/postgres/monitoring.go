package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// Monitoring: status reports and the device event log (migration 0008;
// the state-change events are written by its triggers).

const statusColumns = `identity, received_at, firmware_version, security_counter, boot_result,
	enrolment_algorithm, operational_algorithm, uptime_seconds, remote_addr`

// RecordStatus reads the report it replaces and upserts the new one in
// one transaction. It locks the device's row (FOR NO KEY UPDATE, which
// foreign key checks do not wait for), so that two reports of one
// identity at once are recorded one after the other, each seeing the
// other's as the one before: that is how two devices sharing an identity
// show (monitoring's clone signals).
func (s *Store) RecordStatus(ctx context.Context, st store.DeviceStatus) (store.StatusRecorded, error) {
	const prev = `SELECT d.product_id, st.received_at, st.firmware_version, st.security_counter, st.boot_result,
			st.enrolment_algorithm, st.operational_algorithm, st.uptime_seconds, st.remote_addr, st.firmware_noted_minimum
		FROM devices AS d LEFT JOIN device_status AS st ON st.identity = d.identity WHERE d.identity = $1
		FOR NO KEY UPDATE OF d`
	const upsert = `INSERT INTO device_status (` + statusColumns + `, silent_noted_at, product_id, firmware_noted_minimum)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL, $10, NULL)
		ON CONFLICT (identity) DO UPDATE SET received_at = excluded.received_at,
			firmware_noted_minimum = CASE WHEN device_status.firmware_version = excluded.firmware_version
				THEN device_status.firmware_noted_minimum END,
			firmware_version = excluded.firmware_version, security_counter = excluded.security_counter,
			boot_result = excluded.boot_result, enrolment_algorithm = excluded.enrolment_algorithm,
			operational_algorithm = excluded.operational_algorithm, uptime_seconds = excluded.uptime_seconds,
			remote_addr = excluded.remote_addr, silent_noted_at = NULL, product_id = excluded.product_id`
	var rec store.StatusRecorded
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		rec = store.StatusRecorded{}
		var received *time.Time
		var counter, uptime *int64
		var version, boot, enrol, op, addr, noted *string
		err := tx.QueryRow(ctx, prev, st.Identity[:]).Scan(&rec.ProductID, &received, &version, &counter, &boot,
			&enrol, &op, &uptime, &addr, &noted)
		if errors.Is(err, pgx.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		if received != nil {
			rec.Previous = store.DeviceStatus{Identity: st.Identity, ReceivedAt: received.UTC(), FirmwareVersion: *version,
				SecurityCounter: uint32(*counter), BootResult: *boot, EnrolmentAlgorithm: sigalg.ID(*enrol),
				OperationalAlgorithm: sigalg.ID(*op), Uptime: time.Duration(*uptime) * time.Second, RemoteAddr: *addr}
			if *version == st.FirmwareVersion && noted != nil {
				rec.FirmwareNoted = *noted
			}
		}
		_, err = tx.Exec(ctx, upsert, st.Identity[:], st.ReceivedAt, st.FirmwareVersion, int64(st.SecurityCounter),
			st.BootResult, string(st.EnrolmentAlgorithm), string(st.OperationalAlgorithm), int64(st.Uptime/time.Second),
			st.RemoteAddr, rec.ProductID)
		return err
	})
	if err != nil {
		return store.StatusRecorded{}, fmt.Errorf("postgres: record status of %s: %w", st.Identity, err)
	}
	return rec, nil
}

// GetStatus reads a device's latest report.
func (s *Store) GetStatus(ctx context.Context, id identity.ID) (store.DeviceStatus, error) {
	const q = `SELECT ` + statusColumns + ` FROM device_status WHERE identity = $1`
	var st store.DeviceStatus
	var raw []byte
	var counter, uptime int64
	var enrol, op string
	err := s.pool.QueryRow(ctx, q, id[:]).Scan(&raw, &st.ReceivedAt, &st.FirmwareVersion, &counter,
		&st.BootResult, &enrol, &op, &uptime, &st.RemoteAddr)
	if errors.Is(err, pgx.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return st, fmt.Errorf("postgres: status of %s: %w", id, err)
	}
	st.Identity, st.ReceivedAt = id, st.ReceivedAt.UTC()
	st.SecurityCounter, st.Uptime = uint32(counter), time.Duration(uptime)*time.Second
	st.EnrolmentAlgorithm, st.OperationalAlgorithm = sigalg.ID(enrol), sigalg.ID(op)
	return st, nil
}

const eventColumns = `seq, time, kind, identity, serial, detail`

// ListEvents pages the log in commit order, as auditQuery pages the audit
// log: by transaction, then seq, showing only events of transactions
// older than every running one, so a follower never skips one.
func (s *Store) ListEvents(ctx context.Context, f store.EventFilter) ([]store.DeviceEvent, error) {
	where, args, order := newestFirst("device_events", f.Newest, f.AfterSeq, f.BeforeSeq)
	if f.Kind != "" {
		args = append(args, string(f.Kind))
		where = append(where, "kind = $"+strconv.Itoa(len(args)))
	}
	if !f.Identity.IsZero() {
		args = append(args, f.Identity[:])
		where = append(where, "identity = $"+strconv.Itoa(len(args)))
	}
	args = append(args, store.PageLimit(f.Limit))
	q := `SELECT ` + eventColumns + ` FROM device_events WHERE ` + strings.Join(where, " AND ") +
		` ORDER BY ` + order + ` LIMIT $` + strconv.Itoa(len(args))
	list, err := queryAll(ctx, s.pool, q, args, func(row pgx.Row) (store.DeviceEvent, error) {
		var e store.DeviceEvent
		var kind string
		var id, serial []byte
		if err := row.Scan(&e.Seq, &e.Time, &kind, &id, &serial, &e.Detail); err != nil {
			return e, err
		}
		e.Time, e.Kind = e.Time.UTC(), store.EventKind(kind)
		if serial != nil {
			if err := fixed(e.Serial[:], serial, "serial"); err != nil {
				return e, err
			}
		}
		return e, fixed(e.Identity[:], id, "identity")
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: list events: %w", err)
	}
	return list, nil
}

// NoteExpiringCertificates is one statement: the notices' primary key
// decides, between replicas sweeping at once, which sweep reports a
// certificate; only the notices it inserted become events.
func (s *Store) NoteExpiringCertificates(ctx context.Context, now time.Time, within time.Duration, limit int) (int, error) {
	const q = `WITH due AS (
			SELECT c.serial, c.identity FROM certificates AS c
			WHERE c.superseded_at IS NULL AND c.revoked_at IS NULL AND c.not_after > $1 AND c.not_after <= $2
			  AND NOT EXISTS (SELECT 1 FROM expiry_notices AS n WHERE n.serial = c.serial AND n.within_s = $3)
			ORDER BY c.not_after LIMIT $4),
		noted AS (
			INSERT INTO expiry_notices (serial, within_s, noted_at) SELECT serial, $3, $1 FROM due
			ON CONFLICT DO NOTHING RETURNING serial)
		INSERT INTO device_events (time, kind, identity, serial, detail)
			SELECT $1, $5, due.identity, due.serial, $6 FROM due JOIN noted USING (serial)`
	tag, err := s.pool.Exec(ctx, q, now, now.Add(within), int64(within/time.Second), store.RevokedPageLimit(limit),
		string(store.EventCertificateExpiring), store.ExpiringDetail(within))
	if err != nil {
		return 0, fmt.Errorf("postgres: note expiring certificates: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// NoteSilentDevices marks and reports silent devices of product in one
// statement, from one range of the index device_status_unnoted;
// SKIP LOCKED keeps concurrent sweeps from marking one device twice.
func (s *Store) NoteSilentDevices(ctx context.Context, now time.Time, product string, since time.Time, limit int) (int, error) {
	const q = `WITH due AS (
			SELECT st.identity FROM device_status AS st JOIN devices AS d ON d.identity = st.identity
			WHERE st.silent_noted_at IS NULL AND st.product_id = $5 AND st.received_at < $2 AND d.state = 'onboarded'
			ORDER BY st.received_at LIMIT $3 FOR UPDATE OF st SKIP LOCKED),
		marked AS (
			UPDATE device_status AS st SET silent_noted_at = $1 FROM due
			WHERE st.identity = due.identity AND st.silent_noted_at IS NULL
			RETURNING st.identity, st.received_at)
		INSERT INTO device_events (time, kind, identity, serial, detail)
			SELECT $1, $4, identity, NULL, 'last seen ' || to_char(received_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
			FROM marked`
	tag, err := s.pool.Exec(ctx, q, now, since, store.RevokedPageLimit(limit), string(store.EventDeviceSilent), product)
	if err != nil {
		return 0, fmt.Errorf("postgres: note silent devices: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// CountMonitoring runs the metrics' grouped counts, each from an index.
func (s *Store) CountMonitoring(ctx context.Context, now time.Time, expiring []time.Duration, silentSince map[string]time.Time) (store.MonitoringCounts, error) {
	c := store.MonitoringCounts{Devices: map[string]map[store.DeviceState]int{}, Expiring: map[time.Duration]int{},
		Events: map[store.EventKind]int{}}
	err := eachRow(ctx, s.pool, `SELECT product_id, state, count(*) FROM devices GROUP BY product_id, state`, nil,
		func(row pgx.Row) error {
			var product, state string
			var n int
			if err := row.Scan(&product, &state, &n); err != nil {
				return err
			}
			if c.Devices[product] == nil {
				c.Devices[product] = map[store.DeviceState]int{}
			}
			c.Devices[product][store.DeviceState(state)] = n
			return nil
		})
	for _, within := range expiring {
		if err != nil {
			break
		}
		var n int
		err = s.pool.QueryRow(ctx, `SELECT count(*) FROM certificates
			WHERE superseded_at IS NULL AND revoked_at IS NULL AND not_after > $1 AND not_after <= $2`,
			now, now.Add(within)).Scan(&n)
		c.Expiring[within] = n
	}
	for product, since := range silentSince {
		if err != nil {
			break
		}
		var n int
		err = s.pool.QueryRow(ctx, `SELECT count(*) FROM device_status AS st JOIN devices AS d ON d.identity = st.identity
			WHERE st.product_id = $1 AND st.received_at < $2 AND d.state = 'onboarded'`, product, since).Scan(&n)
		c.Silent += n
	}
	if err == nil {
		err = eachRow(ctx, s.pool, `SELECT kind, count(*) FROM device_events GROUP BY kind`, nil, func(row pgx.Row) error {
			var kind string
			var n int
			err := row.Scan(&kind, &n)
			c.Events[store.EventKind(kind)] = n
			return err
		})
	}
	if err != nil {
		return store.MonitoringCounts{}, fmt.Errorf("postgres: count monitoring: %w", err)
	}
	return c, nil
}

// eachRow runs q and calls fn for every row.
func eachRow(ctx context.Context, db queryer, q string, args []any, fn func(pgx.Row) error) error {
	rows, err := db.Query(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}
