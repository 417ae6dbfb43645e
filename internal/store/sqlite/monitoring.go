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

// RecordStatus upserts the device's report; a write shared with others
// (group commit), since devices report often.
func (s *Store) RecordStatus(ctx context.Context, st store.DeviceStatus) error {
	const upsert = `INSERT INTO device_status (` + statusColumns + `, silent_noted_at)
		SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL WHERE EXISTS (SELECT 1 FROM devices WHERE identity = ?)
		ON CONFLICT (identity) DO UPDATE SET received_at = excluded.received_at,
			firmware_version = excluded.firmware_version, security_counter = excluded.security_counter,
			boot_result = excluded.boot_result, enrolment_algorithm = excluded.enrolment_algorithm,
			operational_algorithm = excluded.operational_algorithm, uptime_seconds = excluded.uptime_seconds,
			remote_addr = excluded.remote_addr, silent_noted_at = NULL`
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, upsert, st.Identity[:], micros(st.ReceivedAt), st.FirmwareVersion,
			int64(st.SecurityCounter), st.BootResult, string(st.EnrolmentAlgorithm), string(st.OperationalAlgorithm),
			int64(st.Uptime/time.Second), st.RemoteAddr, st.Identity[:])
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err == nil && n == 0 {
			return store.ErrNotFound
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: record status of %s: %w", st.Identity, err)
	}
	return nil
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
	where, args := []string{"seq > ?"}, []any{f.AfterSeq}
	if f.Kind != "" {
		where, args = append(where, "kind = ?"), append(args, string(f.Kind))
	}
	if !f.Identity.IsZero() {
		where, args = append(where, "identity = ?"), append(args, f.Identity[:])
	}
	q := `SELECT ` + eventColumns + ` FROM device_events WHERE ` + strings.Join(where, " AND ") + ` ORDER BY seq LIMIT ?`
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

// NoteSilentDevices marks and reports onboarded devices silent since
// since, from the partial index device_status_unnoted.
func (s *Store) NoteSilentDevices(ctx context.Context, now, since time.Time, limit int) (int, error) {
	const mark = `UPDATE device_status SET silent_noted_at = ?
		WHERE identity IN (SELECT st.identity FROM device_status AS st INDEXED BY device_status_unnoted
			JOIN devices AS d ON d.identity = st.identity
			WHERE st.silent_noted_at IS NULL AND st.received_at < ? AND d.state = 'onboarded'
			ORDER BY st.received_at LIMIT ?)
		RETURNING identity, received_at`
	const event = `INSERT INTO device_events (time, kind, identity, serial, detail) VALUES (?, ?, ?, NULL, ?)`
	n := 0
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, mark, micros(now), micros(since), sweepLimit(limit))
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
func (s *Store) CountMonitoring(ctx context.Context, now time.Time, expiring []time.Duration, since time.Time) (store.MonitoringCounts, error) {
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
	if err == nil {
		err = s.reader.QueryRowContext(ctx, `SELECT count(*) FROM device_status AS st INDEXED BY device_status_by_received
			JOIN devices AS d ON d.identity = st.identity WHERE st.received_at < ? AND d.state = 'onboarded'`,
			micros(since)).Scan(&c.Silent)
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
