package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// Monitoring: status reports and the device event log (migration 0007;
// the state-change events are written by its triggers).

const statusColumns = `identity, received_at, firmware_version, security_counter, boot_result,
	enrolment_algorithm, operational_algorithm, uptime_seconds, remote_addr`

// RecordStatus reads the report it replaces and upserts the new one in
// one write shared with others (group commit), since devices report
// often. The product is copied from the device into the status row for
// the silence sweep's index; a note of outdated firmware stays only while
// the device reports the version it was about.
func (s *Store) RecordStatus(ctx context.Context, st store.DeviceStatus) (store.StatusRecorded, error) {
	const prev = `SELECT d.product_id, st.received_at, st.firmware_version, st.security_counter, st.boot_result,
			st.enrolment_algorithm, st.operational_algorithm, st.uptime_seconds, st.remote_addr, st.firmware_noted_minimum
		FROM devices AS d LEFT JOIN device_status AS st ON st.identity = d.identity WHERE d.identity = ?`
	const upsert = `INSERT INTO device_status (` + statusColumns + `, silent_noted_at, product_id, firmware_noted_minimum)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, NULL)
		ON CONFLICT (identity) DO UPDATE SET received_at = excluded.received_at,
			firmware_noted_minimum = CASE WHEN device_status.firmware_version = excluded.firmware_version
				THEN device_status.firmware_noted_minimum END,
			firmware_version = excluded.firmware_version, security_counter = excluded.security_counter,
			boot_result = excluded.boot_result, enrolment_algorithm = excluded.enrolment_algorithm,
			operational_algorithm = excluded.operational_algorithm, uptime_seconds = excluded.uptime_seconds,
			remote_addr = excluded.remote_addr, silent_noted_at = NULL, product_id = excluded.product_id`
	var rec store.StatusRecorded
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		rec = store.StatusRecorded{}
		var received, counter, uptime sql.NullInt64
		var version, boot, enrol, op, addr, noted sql.NullString
		err := tx.QueryRowContext(ctx, prev, st.Identity[:]).Scan(&rec.ProductID, &received, &version, &counter, &boot,
			&enrol, &op, &uptime, &addr, &noted)
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		if received.Valid {
			rec.Previous = store.DeviceStatus{Identity: st.Identity, ReceivedAt: fromMicros(received.Int64),
				FirmwareVersion: version.String, SecurityCounter: uint32(counter.Int64), BootResult: boot.String,
				EnrolmentAlgorithm: sigalg.ID(enrol.String), OperationalAlgorithm: sigalg.ID(op.String),
				Uptime: time.Duration(uptime.Int64) * time.Second, RemoteAddr: addr.String}
			if version.String == st.FirmwareVersion {
				rec.FirmwareNoted = noted.String
			}
		}
		_, err = tx.ExecContext(ctx, upsert, st.Identity[:], micros(st.ReceivedAt), st.FirmwareVersion,
			int64(st.SecurityCounter), st.BootResult, string(st.EnrolmentAlgorithm), string(st.OperationalAlgorithm),
			int64(st.Uptime/time.Second), st.RemoteAddr, rec.ProductID)
		return err
	})
	if err != nil {
		return store.StatusRecorded{}, fmt.Errorf("sqlite: record status of %s: %w", st.Identity, err)
	}
	return rec, nil
}

// GetStatus reads a device's latest report.
func (s *Store) GetStatus(ctx context.Context, id identity.ID) (store.DeviceStatus, error) {
	const q = `SELECT ` + statusColumns + ` FROM device_status WHERE identity = ?`
	var st store.DeviceStatus
	var raw []byte
	var received, counter, uptime int64
	var enrol, op string
	err := s.reader.QueryRowContext(ctx, q, id[:]).Scan(&raw, &received, &st.FirmwareVersion, &counter,
		&st.BootResult, &enrol, &op, &uptime, &st.RemoteAddr)
	if errors.Is(err, sql.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return st, fmt.Errorf("sqlite: status of %s: %w", id, err)
	}
	st.Identity, st.ReceivedAt = id, fromMicros(received)
	st.SecurityCounter, st.Uptime = uint32(counter), time.Duration(uptime)*time.Second
	st.EnrolmentAlgorithm, st.OperationalAlgorithm = sigalg.ID(enrol), sigalg.ID(op)
	return st, nil
}

const eventColumns = `seq, time, kind, identity, serial, detail`

// ListEvents reads one page of the event log. SQLite has one writer, so
// sequence order is commit order: nothing to do before reading.
func (s *Store) ListEvents(ctx context.Context, f store.EventFilter) ([]store.DeviceEvent, error) {
	where, args, order := newestFirst(f.Newest, f.AfterSeq, f.BeforeSeq)
	if f.Kind != "" {
		where, args = append(where, "kind = ?"), append(args, string(f.Kind))
	}
	if !f.Identity.IsZero() {
		where, args = append(where, "identity = ?"), append(args, f.Identity[:])
	}
	q := `SELECT ` + eventColumns + ` FROM device_events WHERE ` + strings.Join(where, " AND ") + ` ORDER BY ` + order + ` LIMIT ?`
	list, err := queryAll(ctx, s.reader, q, append(args, store.PageLimit(f.Limit)), scanEvent)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list events: %w", err)
	}
	return list, nil
}

func scanEvent(row scanner) (store.DeviceEvent, error) {
	var e store.DeviceEvent
	var at int64
	var kind string
	var id, serial []byte
	if err := row.Scan(&e.Seq, &at, &kind, &id, &serial, &e.Detail); err != nil {
		return e, err
	}
	e.Time, e.Kind = fromMicros(at), store.EventKind(kind)
	if serial != nil {
		if err := fixed(e.Serial[:], serial, "serial"); err != nil {
			return e, err
		}
	}
	return e, fixed(e.Identity[:], id, "identity")
}

// NoteExpiringCertificates finds the certificates in the range of the
// partial index certificates_current_expiry and notes them, in one write
// transaction (one writer: no concurrent sweep can note one twice).
func (s *Store) NoteExpiringCertificates(ctx context.Context, now time.Time, within time.Duration, limit int) (int, error) {
	const due = `SELECT c.serial, c.identity FROM certificates AS c INDEXED BY certificates_current_expiry
		WHERE c.superseded_at IS NULL AND c.revoked_at IS NULL AND c.not_after > ? AND c.not_after <= ?
		  AND NOT EXISTS (SELECT 1 FROM expiry_notices AS n WHERE n.serial = c.serial AND n.within_s = ?)
		ORDER BY c.not_after LIMIT ?`
	const notice = `INSERT INTO expiry_notices (serial, within_s, noted_at) VALUES (?, ?, ?)`
	const event = `INSERT INTO device_events (time, kind, identity, serial, detail) VALUES (?, ?, ?, ?, ?)`
	secs := int64(within / time.Second)
	n := 0
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, due, micros(now), micros(now.Add(within)), secs, sweepLimit(limit))
		if err != nil {
			return err
		}
		var found [][2][]byte
		for rows.Next() {
			var serial, id []byte
			if err := rows.Scan(&serial, &id); err != nil {
				rows.Close()
				return err
			}
			found = append(found, [2][]byte{serial, id})
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, c := range found {
			if _, err := tx.ExecContext(ctx, notice, c[0], secs, micros(now)); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, event, micros(now), string(store.EventCertificateExpiring), c[1], c[0],
				store.ExpiringDetail(within)); err != nil {
				return err
			}
		}
		n = len(found)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: note expiring certificates: %w", err)
	}
	return n, nil
}

// markSilent marks up to a batch of one product's onboarded devices
// silent, from one range of the partial index device_status_unnoted.
const markSilent = `UPDATE device_status SET silent_noted_at = ?
		WHERE identity IN (SELECT st.identity FROM device_status AS st INDEXED BY device_status_unnoted
			JOIN devices AS d ON d.identity = st.identity
			WHERE st.silent_noted_at IS NULL AND st.product_id = ? AND st.received_at < ? AND d.state = 'onboarded'
			ORDER BY st.received_at LIMIT ?)
		RETURNING identity, received_at`

// NoteSilentDevices marks and reports onboarded devices of product silent
// since since, from one range of the partial index device_status_unnoted.
func (s *Store) NoteSilentDevices(ctx context.Context, now time.Time, product string, since time.Time, limit int) (int, error) {
	const event = `INSERT INTO device_events (time, kind, identity, serial, detail) VALUES (?, ?, ?, NULL, ?)`
	n := 0
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, markSilent, micros(now), product, micros(since), sweepLimit(limit))
		if err != nil {
			return err
		}
		type silent struct {
			id   []byte
			last int64
		}
		var found []silent
		for rows.Next() {
			var s silent
			if err := rows.Scan(&s.id, &s.last); err != nil {
				rows.Close()
				return err
			}
			found = append(found, s)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, d := range found {
			if _, err := tx.ExecContext(ctx, event, micros(now), string(store.EventDeviceSilent), d.id,
				store.SilentDetail(fromMicros(d.last))); err != nil {
				return err
			}
		}
		n = len(found)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: note silent devices: %w", err)
	}
	return n, nil
}

// sweepLimit bounds one sweep's batch like a page.
func sweepLimit(n int) int { return store.RevokedPageLimit(n) }

// CountMonitoring runs the metrics' grouped counts, each from an index.
func (s *Store) CountMonitoring(ctx context.Context, now time.Time, expiring []time.Duration, silentSince map[string]time.Time) (store.MonitoringCounts, error) {
	c := store.MonitoringCounts{Devices: map[string]map[store.DeviceState]int{}, Expiring: map[time.Duration]int{},
		Events: map[store.EventKind]int{}}
	err := eachRow(ctx, s.reader, `SELECT product_id, state, count(*) FROM devices INDEXED BY devices_by_product_state
		GROUP BY product_id, state`, nil, func(row scanner) error {
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
		err = s.reader.QueryRowContext(ctx, `SELECT count(*) FROM certificates INDEXED BY certificates_current_expiry
			WHERE superseded_at IS NULL AND revoked_at IS NULL AND not_after > ? AND not_after <= ?`,
			micros(now), micros(now.Add(within))).Scan(&n)
		c.Expiring[within] = n
	}
	for product, since := range silentSince {
		if err != nil {
			break
		}
		var n int
		err = s.reader.QueryRowContext(ctx, `SELECT count(*) FROM device_status AS st INDEXED BY device_status_by_product
			JOIN devices AS d ON d.identity = st.identity WHERE st.product_id = ? AND st.received_at < ? AND d.state = 'onboarded'`,
			product, micros(since)).Scan(&n)
		c.Silent += n
	}
	if err == nil {
		err = eachRow(ctx, s.reader, `SELECT kind, count(*) FROM device_events GROUP BY kind`, nil, func(row scanner) error {
			var kind string
			var n int
			err := row.Scan(&kind, &n)
			c.Events[store.EventKind(kind)] = n
			return err
		})
	}
	if err != nil {
		return store.MonitoringCounts{}, fmt.Errorf("sqlite: count monitoring: %w", err)
	}
	return c, nil
}

// eachRow runs q and calls fn for every row.
func eachRow(ctx context.Context, db queryer, q string, args []any, fn func(scanner) error) error {
	rows, err := db.QueryContext(ctx, q, args...)
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
