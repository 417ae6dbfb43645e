package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// Campaigns (0013_campaigns.sql). A report or an administrative action
// locks the campaign's row, so every replica decides waves and halts on
// the same sequence of reports.

const campaignColumns = `id, product_id, image_digest, image_version, image_size, image_counter, migrate_to,
	target, wave_spec, halt_threshold, halt_min_finished, state, current_wave, reason, device_count,
	created_by, created_at, updated_at`

const campaignDeviceColumns = `campaign_id, identity, wave, state, reason, detail, firmware_version, updated_at`

// CreateCampaign inserts the campaign and its waves, then its devices
// with COPY, in one transaction; under the creation lock, it refuses an
// open campaign some of whose devices another open campaign targets
// (store.BusyDevicesError).
func (s *Store) CreateCampaign(ctx context.Context, c store.Campaign, devices []store.CampaignDevice) error {
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if err := lockCampaignCreation(ctx, tx); err != nil {
			return err
		}
		const q = `INSERT INTO campaigns (` + campaignColumns + `)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)`
		_, err := tx.Exec(ctx, q, c.ID, c.ProductID, c.Image.Digest[:], c.Image.Version, c.Image.Size,
			int64(c.Image.SecurityCounter), string(c.MigrateTo), c.Target, c.WaveSpec, c.HaltThreshold, c.HaltMinFinished,
			string(c.State), c.CurrentWave, c.Reason, len(devices), c.CreatedBy, c.CreatedAt, c.UpdatedAt)
		switch {
		case isKeyTaken(err):
			return store.ErrExists
		case sqlState(err) == codeForeignKeyViolation:
			return store.ErrNotFound
		case err != nil:
			return err
		}
		for i, w := range c.Waves {
			if _, err := tx.Exec(ctx, `INSERT INTO campaign_waves (campaign_id, wave, size, finished, failed)
				VALUES ($1, $2, $3, 0, 0)`, c.ID, i, w.Size); err != nil {
				return fmt.Errorf("insert wave %d: %w", i, err)
			}
		}
		order := make([]int, len(devices))
		for i := range order {
			order[i] = i
		}
		slices.SortFunc(order, func(a, b int) int { return bytes.Compare(devices[a].Identity[:], devices[b].Identity[:]) })
		rows := make([][]any, len(order))
		for n, i := range order {
			d := &devices[i]
			rows[n] = []any{c.ID, d.Identity[:], d.Wave, d.State, "", "", "", c.CreatedAt}
		}
		cols := []string{"campaign_id", "identity", "wave", "state", "reason", "detail", "firmware_version", "updated_at"}
		_, err = tx.CopyFrom(ctx, pgx.Identifier{"campaign_devices"}, cols, pgx.CopyFromRows(rows))
		switch {
		case sqlState(err) == codeForeignKeyViolation:
			return fmt.Errorf("a device: %w", store.ErrNotFound)
		case isKeyTaken(err):
			return fmt.Errorf("a device listed twice: %w", store.ErrExists)
		case err != nil:
			return err
		}
		return checkOpenCampaignDevices(ctx, tx, c)
	})
	if err != nil {
		return fmt.Errorf("postgres: create campaign %s: %w", c.ID, err)
	}
	return nil
}

// pgRowQueryer is what the pool and a transaction share.
type pgRowQueryer interface {
	queryer
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func getCampaign(ctx context.Context, db pgRowQueryer, id string, lock bool) (store.Campaign, error) {
	q := `SELECT ` + campaignColumns + ` FROM campaigns WHERE id = $1`
	if lock {
		q += ` FOR UPDATE`
	}
	c, err := scanCampaign(db.QueryRow(ctx, q, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return c, store.ErrNotFound
	}
	if err != nil {
		return c, err
	}
	c.Waves, err = queryAll(ctx, db, `SELECT size, finished, failed FROM campaign_waves WHERE campaign_id = $1 ORDER BY wave`,
		[]any{id}, func(row pgx.Row) (store.CampaignWave, error) {
			var w store.CampaignWave
			return w, row.Scan(&w.Size, &w.Finished, &w.Failed)
		})
	return c, err
}

func scanCampaign(row pgx.Row) (store.Campaign, error) {
	var c store.Campaign
	var digest []byte
	var counter int64
	var migrate, state string
	err := row.Scan(&c.ID, &c.ProductID, &digest, &c.Image.Version, &c.Image.Size, &counter, &migrate,
		&c.Target, &c.WaveSpec, &c.HaltThreshold, &c.HaltMinFinished, &state, &c.CurrentWave, &c.Reason, &c.DeviceCount,
		&c.CreatedBy, &c.CreatedAt, &c.UpdatedAt)
	if err != nil {
		return c, err
	}
	if err := fixed(c.Image.Digest[:], digest, "image digest"); err != nil {
		return c, err
	}
	c.Image.SecurityCounter, c.MigrateTo, c.State = uint32(counter), sigalg.ID(migrate), store.CampaignState(state)
	c.CreatedAt, c.UpdatedAt = c.CreatedAt.UTC(), c.UpdatedAt.UTC()
	return c, nil
}

// GetCampaign reads a campaign and its waves.
func (s *Store) GetCampaign(ctx context.Context, id string) (store.Campaign, error) {
	c, err := getCampaign(ctx, s.pool, id, false)
	if err != nil {
		return c, fmt.Errorf("postgres: campaign %s: %w", id, err)
	}
	return c, nil
}

// ListCampaigns returns campaigns newest first, each with its waves.
func (s *Store) ListCampaigns(ctx context.Context, f store.CampaignFilter) ([]store.Campaign, error) {
	where, args := []string{"true"}, []any{}
	if len(f.States) > 0 {
		states := make([]string, len(f.States))
		for i, st := range f.States {
			states[i] = string(st)
		}
		args = append(args, states)
		where = append(where, fmt.Sprintf("state = ANY($%d)", len(args)))
	}
	if f.ProductID != "" {
		args = append(args, f.ProductID)
		where = append(where, fmt.Sprintf("product_id = $%d", len(args)))
	}
	args = append(args, store.PageLimit(f.Limit))
	q := `SELECT ` + campaignColumns + ` FROM campaigns WHERE ` + strings.Join(where, " AND ") +
		fmt.Sprintf(` ORDER BY created_at DESC, id LIMIT $%d`, len(args))
	list, err := queryAll(ctx, s.pool, q, args, scanCampaign)
	if err != nil {
		return nil, fmt.Errorf("postgres: list campaigns: %w", err)
	}
	for i := range list {
		full, err := getCampaign(ctx, s.pool, list[i].ID, false)
		if err != nil {
			return nil, fmt.Errorf("postgres: list campaigns: %w", err)
		}
		list[i].Waves = full.Waves
	}
	return list, nil
}

// CampaignCandidates reads the onboarded devices of a product, with the
// firmware version of their last status report.
func (s *Store) CampaignCandidates(ctx context.Context, f store.CandidateFilter) ([]store.CampaignCandidate, error) {
	where, args := []string{"d.product_id = $1", "d.state = 'onboarded'"}, []any{f.ProductID}
	if f.BatchID != "" {
		args = append(args, f.BatchID)
		where = append(where, fmt.Sprintf("d.batch_id = $%d", len(args)))
	}
	if f.Algorithm != "" {
		args = append(args, string(f.Algorithm))
		where = append(where, fmt.Sprintf("d.algorithm = $%d", len(args)))
	}
	q := `SELECT d.identity, d.batch_id, d.algorithm, coalesce(st.firmware_version, '') FROM devices AS d
		LEFT JOIN device_status AS st ON st.identity = d.identity WHERE ` + strings.Join(where, " AND ") + ` ORDER BY d.identity`
	list, err := queryAll(ctx, s.pool, q, args, func(row pgx.Row) (store.CampaignCandidate, error) {
		var c store.CampaignCandidate
		var raw []byte
		var alg string
		if err := row.Scan(&raw, &c.BatchID, &alg, &c.FirmwareVersion); err != nil {
			return c, err
		}
		c.Algorithm = sigalg.ID(alg)
		return c, fixed(c.Identity[:], raw, "identity")
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: campaign candidates: %w", err)
	}
	return list, nil
}

// CampaignMembers reads the identities a campaign targets.
func (s *Store) CampaignMembers(ctx context.Context, id string) ([]identity.ID, error) {
	list, err := queryAll(ctx, s.pool, `SELECT identity FROM campaign_devices WHERE campaign_id = $1 ORDER BY identity`,
		[]any{id}, func(row pgx.Row) (identity.ID, error) {
			var out identity.ID
			var raw []byte
			if err := row.Scan(&raw); err != nil {
				return out, err
			}
			return out, fixed(out[:], raw, "identity")
		})
	if err != nil {
		return nil, fmt.Errorf("postgres: campaign %s members: %w", id, err)
	}
	return list, nil
}

func scanCampaignDevice(row pgx.Row) (store.CampaignDevice, error) {
	var d store.CampaignDevice
	var raw []byte
	if err := row.Scan(&d.CampaignID, &raw, &d.Wave, &d.State, &d.Reason, &d.Detail, &d.FirmwareVersion, &d.UpdatedAt); err != nil {
		return d, err
	}
	d.UpdatedAt = d.UpdatedAt.UTC()
	return d, fixed(d.Identity[:], raw, "identity")
}

func getCampaignDevice(ctx context.Context, db pgRowQueryer, campaignID string, id identity.ID, lock bool) (store.CampaignDevice, error) {
	q := `SELECT ` + campaignDeviceColumns + ` FROM campaign_devices WHERE campaign_id = $1 AND identity = $2`
	if lock {
		q += ` FOR UPDATE`
	}
	d, err := scanCampaignDevice(db.QueryRow(ctx, q, campaignID, id[:]))
	if errors.Is(err, pgx.ErrNoRows) {
		err = store.ErrNotFound
	}
	return d, err
}

// GetCampaignDevice reads one device's row of a campaign.
func (s *Store) GetCampaignDevice(ctx context.Context, campaignID string, id identity.ID) (store.CampaignDevice, error) {
	d, err := getCampaignDevice(ctx, s.pool, campaignID, id, false)
	if err != nil {
		return d, fmt.Errorf("postgres: campaign %s device %s: %w", campaignID, id, err)
	}
	return d, nil
}

// ListCampaignDevices reads a page of a campaign's devices by identity.
func (s *Store) ListCampaignDevices(ctx context.Context, campaignID string, f store.CampaignDeviceFilter) ([]store.CampaignDevice, error) {
	where, args := []string{"campaign_id = $1", "identity > $2"}, []any{campaignID, f.After[:]}
	if f.State != "" {
		args = append(args, f.State)
		where = append(where, fmt.Sprintf("state = $%d", len(args)))
	}
	args = append(args, store.PageLimit(f.Limit))
	q := `SELECT ` + campaignDeviceColumns + ` FROM campaign_devices WHERE ` + strings.Join(where, " AND ") +
		fmt.Sprintf(` ORDER BY identity LIMIT $%d`, len(args))
	list, err := queryAll(ctx, s.pool, q, args, scanCampaignDevice)
	if err != nil {
		return nil, fmt.Errorf("postgres: list campaign %s devices: %w", campaignID, err)
	}
	return list, nil
}

// DeviceCampaigns reads a device's rows in every campaign.
func (s *Store) DeviceCampaigns(ctx context.Context, id identity.ID) ([]store.CampaignDevice, error) {
	q := `SELECT cd.campaign_id, cd.identity, cd.wave, cd.state, cd.reason, cd.detail, cd.firmware_version, cd.updated_at
		FROM campaign_devices AS cd JOIN campaigns AS c ON c.id = cd.campaign_id
		WHERE cd.identity = $1 ORDER BY c.created_at DESC, c.id`
	list, err := queryAll(ctx, s.pool, q, []any{id[:]}, scanCampaignDevice)
	if err != nil {
		return nil, fmt.Errorf("postgres: campaigns of %s: %w", id, err)
	}
	return list, nil
}

// CountCampaignDevices counts by wave and state over the covering index.
func (s *Store) CountCampaignDevices(ctx context.Context, campaignID string) ([]store.CampaignCount, error) {
	list, err := queryAll(ctx, s.pool, `SELECT wave, state, count(*) FROM campaign_devices WHERE campaign_id = $1
		GROUP BY wave, state ORDER BY wave, state`, []any{campaignID}, func(row pgx.Row) (store.CampaignCount, error) {
		var c store.CampaignCount
		return c, row.Scan(&c.Wave, &c.State, &c.N)
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: count campaign %s: %w", campaignID, err)
	}
	return list, nil
}

// OfferCampaignDevice is one conditional UPDATE when the device is
// pending (a read otherwise): of concurrent polls one moves it, and the
// campaign's state and current wave are read by the same statement.
func (s *Store) OfferCampaignDevice(ctx context.Context, campaignID string, id identity.ID, at time.Time) (store.CampaignDevice, error) {
	d, err := getCampaignDevice(ctx, s.pool, campaignID, id, false)
	if err != nil || d.State != "pending" {
		if err != nil {
			err = fmt.Errorf("postgres: offer campaign %s to %s: %w", campaignID, id, err)
		}
		return d, err
	}
	const q = `UPDATE campaign_devices SET state = 'offered', updated_at = $1
		WHERE campaign_id = $2 AND identity = $3 AND state = 'pending'
		AND wave <= (SELECT current_wave FROM campaigns WHERE id = $2 AND state = 'running')`
	if _, err := s.pool.Exec(ctx, q, at, campaignID, id[:]); err != nil {
		return d, fmt.Errorf("postgres: offer campaign %s to %s: %w", campaignID, id, err)
	}
	if d, err = getCampaignDevice(ctx, s.pool, campaignID, id, false); err != nil {
		return d, fmt.Errorf("postgres: offer campaign %s to %s: %w", campaignID, id, err)
	}
	return d, nil
}

// DecideCampaign takes the device's row lock, then (only when a report
// may change the campaign, or for a decision about the campaign alone)
// the campaign's: reports of different devices of one campaign proceed
// at once. A final report also holds its wave's row lock, from the
// counters' increment to commit, so the counts it returns are exact and
// the report that finishes a wave or trips the halt rule is one. Lock
// order: device, wave, campaign; administrative decisions take the
// campaign's alone. Round trips: the device's and campaign's rows are
// read in one batch, the device's row and its wave's counters written in
// another (RETURNING what was written), and the campaign's lock, fresh
// read and update cost two more when taken.
//
// A report that read the campaign as running just before another
// transaction halted, paused or cancelled it is harmless: its device
// step does not depend on the campaign's state (reports are recorded in
// every state, docs/ota.md), and the campaign step, which does, reads
// the campaign again under its lock.
func (s *Store) DecideCampaign(ctx context.Context, campaignID string, id identity.ID, decide store.CampaignDecider) (store.Campaign, store.CampaignDevice, error) {
	var c store.Campaign
	var d store.CampaignDevice
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		d = store.CampaignDevice{}
		var ch store.DeviceChange
		if !id.IsZero() && decide.Device == nil {
			return errors.New("a decision about a device without a device step")
		}
		if !id.IsZero() {
			if c, d, err = readForReport(ctx, tx, campaignID, id); err != nil {
				return err
			}
			if ch, err = decide.Device(c, d); err != nil || ch.Device == nil {
				return err
			}
			var w store.CampaignWave
			if d, w, err = writeDeviceChange(ctx, tx, d, ch); err != nil {
				return err
			}
			if ch.Finished != 0 || ch.Failed != 0 {
				if d.Wave < 0 || d.Wave >= len(c.Waves) {
					return fmt.Errorf("device %s: wave %d of %d", id, d.Wave, len(c.Waves))
				}
				c.Waves[d.Wave] = w
			}
			if decide.NeedsCampaign != nil && !decide.NeedsCampaign(c, d, ch) {
				return nil
			}
		}
		if decide.Campaign == nil {
			return nil
		}
		if c, err = lockCampaign(ctx, tx, campaignID); err != nil {
			return err
		}
		u, err := decide.Campaign(c, d, ch)
		if err != nil || u == nil {
			return err
		}
		waves := c.Waves
		c, err = scanCampaign(tx.QueryRow(ctx, `UPDATE campaigns SET state = $1, current_wave = $2, reason = $3, updated_at = $4
			WHERE id = $5 RETURNING `+campaignColumns, string(u.State), u.CurrentWave, u.Reason, u.At, campaignID))
		c.Waves = waves
		return err
	})
	if err != nil {
		return c, d, fmt.Errorf("postgres: campaign %s: %w", campaignID, err)
	}
	return c, d, nil
}

const campaignWavesQuery = `SELECT size, finished, failed FROM campaign_waves WHERE campaign_id = $1 ORDER BY wave`

func scanWave(row pgx.Row) (store.CampaignWave, error) {
	var w store.CampaignWave
	return w, row.Scan(&w.Size, &w.Finished, &w.Failed)
}

// readWaves reads a batch's queued waves query.
func readWaves(br pgx.BatchResults) ([]store.CampaignWave, error) {
	rows, err := br.Query()
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.CampaignWave, error) { return scanWave(row) })
}

// readForReport locks the device's row and reads the campaign and its
// waves without a lock, in one round trip. A campaign that does not
// exist, or does not target the device, is store.ErrNotFound.
func readForReport(ctx context.Context, tx pgx.Tx, campaignID string, id identity.ID) (store.Campaign, store.CampaignDevice, error) {
	var b pgx.Batch
	b.Queue(`SELECT `+campaignDeviceColumns+` FROM campaign_devices WHERE campaign_id = $1 AND identity = $2 FOR UPDATE`,
		campaignID, id[:])
	b.Queue(`SELECT `+campaignColumns+` FROM campaigns WHERE id = $1`, campaignID)
	b.Queue(campaignWavesQuery, campaignID)
	br := tx.SendBatch(ctx, &b)
	defer br.Close()
	d, err := scanCampaignDevice(br.QueryRow())
	if errors.Is(err, pgx.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return store.Campaign{}, d, err
	}
	c, err := scanCampaign(br.QueryRow())
	if err != nil {
		return c, d, err // the device's row names the campaign: it exists
	}
	if c.Waves, err = readWaves(br); err != nil {
		return c, d, err
	}
	return c, d, br.Close()
}

// writeDeviceChange writes the device's row and, for a final report,
// adds to its wave's counters, in one round trip; it returns the row and
// the wave's counters as written (the wave's row stays locked to commit).
func writeDeviceChange(ctx context.Context, tx pgx.Tx, d store.CampaignDevice, ch store.DeviceChange) (store.CampaignDevice, store.CampaignWave, error) {
	a := ch.Device
	var b pgx.Batch
	b.Queue(`UPDATE campaign_devices SET state = $1, reason = $2, detail = $3, firmware_version = $4, updated_at = $5
		WHERE campaign_id = $6 AND identity = $7 RETURNING `+campaignDeviceColumns,
		a.State, a.Reason, a.Detail, a.FirmwareVersion, a.UpdatedAt, d.CampaignID, d.Identity[:])
	counted := ch.Finished != 0 || ch.Failed != 0
	if counted {
		b.Queue(`UPDATE campaign_waves SET finished = finished + $1, failed = failed + $2
			WHERE campaign_id = $3 AND wave = $4 RETURNING size, finished, failed`, ch.Finished, ch.Failed, d.CampaignID, d.Wave)
	}
	br := tx.SendBatch(ctx, &b)
	defer br.Close()
	var w store.CampaignWave
	out, err := scanCampaignDevice(br.QueryRow())
	if err != nil {
		return d, w, fmt.Errorf("write device: %w", err)
	}
	if counted {
		if w, err = scanWave(br.QueryRow()); err != nil {
			return d, w, fmt.Errorf("count wave %d: %w", d.Wave, err)
		}
	}
	return out, w, br.Close()
}

// lockCampaign locks the campaign's row and then reads its waves, in one
// round trip: the waves' statement starts once the lock is held, so its
// snapshot sees every decision committed before (one statement reading
// both would read the waves as of before its wait for the lock).
func lockCampaign(ctx context.Context, tx pgx.Tx, campaignID string) (store.Campaign, error) {
	var b pgx.Batch
	b.Queue(`SELECT `+campaignColumns+` FROM campaigns WHERE id = $1 FOR UPDATE`, campaignID)
	b.Queue(campaignWavesQuery, campaignID)
	br := tx.SendBatch(ctx, &b)
	defer br.Close()
	c, err := scanCampaign(br.QueryRow())
	if errors.Is(err, pgx.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return c, err
	}
	if c.Waves, err = readWaves(br); err != nil {
		return c, err
	}
	return c, br.Close()
}
