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

// The operators' console (store.Console): its sessions, the batches page
// and the fleet summary. Every query is an index range or an aggregate
// over one index (migration 0019 made the ones it lacked).

// CreateConsoleSession keeps s (store.Console).
func (s *Store) CreateConsoleSession(ctx context.Context, cs store.ConsoleSession) error {
	if err := checkSession(cs); err != nil {
		return fmt.Errorf("sqlite: create console session: %w", err)
	}
	const q = `INSERT INTO console_sessions (id_hash, token_id, created_at, expires_at, remote_addr) VALUES (?, ?, ?, ?, ?)`
	_, err := s.writer.ExecContext(ctx, q, cs.IDHash[:], cs.TokenID, micros(cs.CreatedAt), micros(cs.ExpiresAt), cs.RemoteAddr)
	switch {
	case isKeyTaken(err):
		return fmt.Errorf("sqlite: create console session: %w", store.ErrExists)
	case isConstraint(err, sqlite3ForeignKey):
		return fmt.Errorf("sqlite: create console session: token %q: %w", cs.TokenID, store.ErrNotFound)
	case err != nil:
		return fmt.Errorf("sqlite: create console session: %w", err)
	}
	return nil
}

// checkSession refuses what the schema would refuse, with a clearer error.
func checkSession(cs store.ConsoleSession) error {
	switch {
	case cs.CreatedAt.IsZero() || cs.ExpiresAt.IsZero():
		return errors.New("session without creation or expiry time")
	case len(cs.RemoteAddr) > store.MaxSessionRemoteAddr:
		return fmt.Errorf("remote address longer than %d bytes", store.MaxSessionRemoteAddr)
	}
	return nil
}

// GetConsoleSession returns the session with that hash (store.Console).
func (s *Store) GetConsoleSession(ctx context.Context, idHash [32]byte) (store.ConsoleSession, error) {
	const q = `SELECT token_id, created_at, expires_at, remote_addr FROM console_sessions WHERE id_hash = ?`
	cs := store.ConsoleSession{IDHash: idHash}
	var created, expires int64
	err := s.reader.QueryRowContext(ctx, q, idHash[:]).Scan(&cs.TokenID, &created, &expires, &cs.RemoteAddr)
	if errors.Is(err, sql.ErrNoRows) {
		return store.ConsoleSession{}, fmt.Errorf("sqlite: console session: %w", store.ErrNotFound)
	}
	if err != nil {
		return store.ConsoleSession{}, fmt.Errorf("sqlite: get console session: %w", err)
	}
	cs.CreatedAt, cs.ExpiresAt = fromMicros(created), fromMicros(expires)
	return cs, nil
}

// DeleteConsoleSession ends a session (store.Console).
func (s *Store) DeleteConsoleSession(ctx context.Context, idHash [32]byte) error {
	if _, err := s.writer.ExecContext(ctx, `DELETE FROM console_sessions WHERE id_hash = ?`, idHash[:]); err != nil {
		return fmt.Errorf("sqlite: delete console session: %w", err)
	}
	return nil
}

// DeleteExpiredConsoleSessions deletes sessions that expired before
// before (store.Console).
func (s *Store) DeleteExpiredConsoleSessions(ctx context.Context, before time.Time) (int, error) {
	res, err := s.writer.ExecContext(ctx, `DELETE FROM console_sessions WHERE expires_at < ?`, micros(before))
	if err != nil {
		return 0, fmt.Errorf("sqlite: delete expired console sessions: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("sqlite: delete expired console sessions: %w", err)
	}
	return int(n), nil
}

// ListBatches returns one page of batches, newest first (store.Console).
// The row-value comparison is one backward range of whichever of the
// batches indexes matches the filter.
func (s *Store) ListBatches(ctx context.Context, f store.BatchFilter) ([]store.Batch, error) {
	q := `SELECT ` + batchColumns + ` FROM batches WHERE 1 = 1`
	var args []any
	if f.ProductID != "" {
		q += ` AND product_id = ?`
		args = append(args, f.ProductID)
	}
	if f.StationID != (identity.ID{}) {
		q += ` AND station_id = ?`
		args = append(args, f.StationID[:])
	}
	if f.After != "" {
		var imported int64
		err := s.reader.QueryRowContext(ctx, `SELECT imported_at FROM batches WHERE id = ?`, f.After).Scan(&imported)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("sqlite: list batches after %q: %w", f.After, store.ErrNotFound)
		}
		if err != nil {
			return nil, fmt.Errorf("sqlite: list batches: %w", err)
		}
		q += ` AND (imported_at, id) < (?, ?)`
		args = append(args, imported, f.After)
	}
	q += ` ORDER BY imported_at DESC, id DESC LIMIT ?`
	list, err := queryAll(ctx, s.reader, q, append(args, store.PageLimit(f.Limit)), scanBatch)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list batches: %w", err)
	}
	return list, nil
}

// cloudStateQuery is ListDevices' query for a cloud-state filter: it
// walks, in identity order, the partial index holding only open (pending
// or running) or only failed jobs, and keeps a job if no later job of the
// same connector exists (jobs_by_identity); a pending device has no
// connector whose latest job failed. idConds (keyset, prefix) bound the
// walk; conds filter the device. CROSS JOIN keeps jobs the outer loop, so
// the page comes in index order and the walk stops at the limit; GROUP BY
// lists a device with several such jobs once.
func cloudStateQuery(state string, idConds, conds []string) string {
	latest := func(j string) string {
		return `NOT EXISTS (SELECT 1 FROM jobs AS l WHERE l.identity = ` + j + `.identity AND l.connector = ` + j + `.connector AND l.id > ` + j + `.id)`
	}
	q := `SELECT d.` + strings.Join(strings.Fields(strings.ReplaceAll(deviceColumns, ",", " ")), ", d.")
	if state == store.CloudFailed {
		q += ` FROM jobs AS j INDEXED BY jobs_failed_by_identity CROSS JOIN devices AS d ON d.identity = j.identity
			WHERE j.state = 'failed' AND ` + latest("j")
	} else {
		q += ` FROM jobs AS j INDEXED BY jobs_open_by_identity CROSS JOIN devices AS d ON d.identity = j.identity
			WHERE j.state IN ('pending', 'running') AND ` + latest("j") + `
			AND NOT EXISTS (SELECT 1 FROM jobs AS x INDEXED BY jobs_failed_by_identity
				WHERE x.identity = j.identity AND x.state = 'failed' AND ` + latest("x") + `)`
	}
	for _, c := range idConds {
		q += ` AND j.` + c
	}
	for _, c := range conds {
		q += ` AND d.` + c
	}
	return q + ` GROUP BY j.identity ORDER BY j.identity LIMIT ?`
}

// activeCampaigns are the campaign states store.CampaignState.Final is
// false for.
var activeCampaigns = func() []any {
	var out []any
	for _, st := range store.CampaignStates {
		if !st.Final() {
			out = append(out, string(st))
		}
	}
	return out
}()

// FleetSummary reads the console's overview in one read transaction, so
// its counts agree with each other (store.Console).
func (s *Store) FleetSummary(ctx context.Context, now time.Time, within, silence time.Duration) (store.FleetSummary, error) {
	sum, err := s.fleetSummary(ctx, now, within, silence)
	if err != nil {
		return store.FleetSummary{}, fmt.Errorf("sqlite: fleet summary: %w", err)
	}
	return sum, nil
}

func (s *Store) fleetSummary(ctx context.Context, now time.Time, within, silence time.Duration) (store.FleetSummary, error) {
	sum := store.FleetSummary{At: now.UTC(), ByState: map[store.DeviceState]int{}, ByProduct: map[string]int{},
		ByClass: map[string]int{}, BySuite: map[sigalg.ID]int{}, Jobs: map[store.JobState]int{}}
	tx, err := s.reader.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return sum, err
	}
	defer tx.Rollback()

	// One walk of the covering index; the groups are few (products ×
	// states × suites × classes), however many devices.
	err = eachRow(ctx, tx, `SELECT product_id, state, algorithm, root_of_trust, count(*)
		FROM devices INDEXED BY devices_by_product_state GROUP BY product_id, state, algorithm, root_of_trust`, nil,
		func(row scanner) error {
			var product, state, alg, class string
			var n int
			if err := row.Scan(&product, &state, &alg, &class, &n); err != nil {
				return err
			}
			sum.Total += n
			sum.ByProduct[product] += n
			sum.ByState[store.DeviceState(state)] += n
			sum.BySuite[sigalg.ID(alg)] += n
			sum.ByClass[class] += n
			return nil
		})
	if err != nil {
		return sum, fmt.Errorf("count devices: %w", err)
	}

	start := now.Truncate(time.Hour).Add(-167 * time.Hour)
	sum.Onboardings = make([]store.TimeCount, 168)
	for i := range sum.Onboardings {
		sum.Onboardings[i].Start = start.Add(time.Duration(i) * time.Hour).UTC()
	}
	err = eachRow(ctx, tx, `SELECT (time - ?) / 3600000000, count(*) FROM device_events INDEXED BY device_events_by_kind_time
		WHERE kind = 'device.onboarded' AND time >= ? AND time <= ? GROUP BY 1`,
		[]any{micros(start), micros(start), micros(now)}, func(row scanner) error {
			var bucket int64
			var n int
			if err := row.Scan(&bucket, &n); err != nil {
				return err
			}
			if bucket >= 0 && bucket < int64(len(sum.Onboardings)) {
				sum.Onboardings[bucket].Count = n
			}
			return nil
		})
	if err != nil {
		return sum, fmt.Errorf("count onboardings: %w", err)
	}

	// An aggregator's summary is "<reason>: <n> refused from … to …"
	// (internal/audit): it counts as its n attempts, less the first when
	// that was written on its own (and so is counted as an event here).
	const summary = `detail GLOB '[a-z]*: [0-9]* refused from *'`
	err = eachRow(ctx, tx, `SELECT reason, sum(n) FROM (
			SELECT CASE WHEN `+summary+` THEN substr(detail, 1, instr(detail, ': ') - 1) ELSE detail END AS reason,
				CASE WHEN `+summary+` THEN CAST(substr(detail, instr(detail, ': ') + 2) AS INTEGER)
					- (detail GLOB '* (the first logged on its own)') ELSE 1 END AS n
			FROM audit_events INDEXED BY audit_events_denied
			WHERE action IN ('device.onboard', 'device.challenge') AND outcome = 'denied' AND time > ? AND time <= ?)
		GROUP BY reason HAVING sum(n) > 0 ORDER BY 2 DESC, 1`,
		[]any{micros(now.Add(-24 * time.Hour)), micros(now)}, func(row scanner) error {
			var rc store.ReasonCount
			if err := row.Scan(&rc.Reason, &rc.Count); err != nil {
				return err
			}
			sum.Failures = append(sum.Failures, rc)
			return nil
		})
	if err != nil {
		return sum, fmt.Errorf("count failures: %w", err)
	}

	var pending, running, failed, campaigns int
	err = tx.QueryRowContext(ctx, `SELECT
			(SELECT count(*) FROM jobs INDEXED BY jobs_due WHERE state = 'pending'),
			(SELECT count(*) FROM jobs INDEXED BY jobs_leased WHERE state = 'running'),
			(SELECT count(*) FROM jobs INDEXED BY jobs_failed_by_identity WHERE state = 'failed'),
			(SELECT count(*) FROM certificates INDEXED BY certificates_current_expiry
				WHERE superseded_at IS NULL AND revoked_at IS NULL AND not_after > ? AND not_after <= ?),
			(SELECT count(*) FROM products AS p
				JOIN device_status AS st INDEXED BY device_status_by_product ON st.product_id = p.id AND st.received_at < ?
				JOIN devices AS d ON d.identity = st.identity AND d.state = 'onboarded'),
			(SELECT count(*) FROM campaigns WHERE state IN (`+strings.Repeat("?, ", len(activeCampaigns)-1)+`?))`,
		append([]any{micros(now), micros(now.Add(within)), micros(now.Add(-silence))}, activeCampaigns...)...).
		Scan(&pending, &running, &failed, &sum.ExpiringSoon, &sum.Silent, &campaigns)
	if err != nil {
		return sum, fmt.Errorf("count jobs, certificates, silent devices and campaigns: %w", err)
	}
	sum.CampaignsActive = campaigns
	for st, n := range map[store.JobState]int{store.JobPending: pending, store.JobRunning: running, store.JobFailed: failed} {
		if n > 0 {
			sum.Jobs[st] = n
		}
	}
	return sum, nil
}
