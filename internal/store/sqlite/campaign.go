package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// Campaigns (migration 0012).

const campaignColumns = `id, product_id, image_digest, image_version, image_size, image_counter, migrate_to,
	target, wave_spec, halt_threshold, halt_min_finished, state, current_wave, reason, device_count,
	created_by, created_at, updated_at`

const campaignDeviceColumns = `campaign_id, identity, wave, state, reason, detail, firmware_version, updated_at`

// CreateCampaign inserts the campaign, its waves and its devices in one
// transaction, the devices with one prepared statement in identity order
// so the primary key grows at its end; it refuses an open campaign some of
// whose devices another open campaign targets (store.BusyDevicesError).
func (s *Store) CreateCampaign(ctx context.Context, c store.Campaign, devices []store.CampaignDevice) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		const q = `INSERT INTO campaigns (` + campaignColumns + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
		_, err := tx.ExecContext(ctx, q, c.ID, c.ProductID, c.Image.Digest[:], c.Image.Version, c.Image.Size,
			int64(c.Image.SecurityCounter), string(c.MigrateTo), c.Target, c.WaveSpec, c.HaltThreshold, c.HaltMinFinished,
			string(c.State), c.CurrentWave, c.Reason, len(devices), c.CreatedBy, micros(c.CreatedAt), micros(c.UpdatedAt))
		switch {
		case isKeyTaken(err):
			return store.ErrExists
		case isConstraint(err, sqlite3ForeignKey):
			return store.ErrNotFound
		case err != nil:
			return err
		}
		for i, w := range c.Waves {
			if _, err := tx.ExecContext(ctx, `INSERT INTO campaign_waves (campaign_id, wave, size, finished, failed)
				VALUES (?, ?, ?, 0, 0)`, c.ID, i, w.Size); err != nil {
				return fmt.Errorf("insert wave %d: %w", i, err)
			}
		}
		if err := insertCampaignDevices(ctx, tx, c, devices); err != nil {
			return err
		}
		return checkOpenCampaignDevices(ctx, tx, c)
	})
	if err != nil {
		return fmt.Errorf("sqlite: create campaign %s: %w", c.ID, err)
	}
	return nil
}

// sqlite3ForeignKey is SQLITE_CONSTRAINT_FOREIGNKEY.
const sqlite3ForeignKey = 787

func insertCampaignDevices(ctx context.Context, tx *sql.Tx, c store.Campaign, devices []store.CampaignDevice) error {
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO campaign_devices (`+campaignDeviceColumns+`) VALUES (?, ?, ?, ?, '', '', '', ?)`)
	if err != nil {
		return fmt.Errorf("prepare campaign device insert: %w", err)
	}
	defer stmt.Close()
	order := make([]int, len(devices))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return bytes.Compare(devices[a].Identity[:], devices[b].Identity[:]) })
	rowCtx := context.WithoutCancel(ctx)
	at := micros(c.CreatedAt)
	for n, i := range order {
		if n%1024 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		d := &devices[i]
		if _, err := stmt.ExecContext(rowCtx, c.ID, d.Identity[:], d.Wave, d.State, at); err != nil {
			if isConstraint(err, sqlite3ForeignKey) {
				return fmt.Errorf("device %s: %w", d.Identity, store.ErrNotFound)
			}
			if isKeyTaken(err) {
				return fmt.Errorf("device %s listed twice: %w", d.Identity, store.ErrExists)
			}
			return fmt.Errorf("insert campaign device %s: %w", d.Identity, err)
		}
	}
	return nil
}

// GetCampaign reads a campaign and its waves.
func (s *Store) GetCampaign(ctx context.Context, id string) (store.Campaign, error) {
	c, err := getCampaign(ctx, s.reader, id)
	if err != nil {
		return c, fmt.Errorf("sqlite: campaign %s: %w", id, err)
	}
	return c, nil
}

type rowQueryer interface {
	queryer
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func getCampaign(ctx context.Context, db rowQueryer, id string) (store.Campaign, error) {
	c, err := scanCampaign(db.QueryRowContext(ctx, `SELECT `+campaignColumns+` FROM campaigns WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return c, store.ErrNotFound
	}
	if err != nil {
		return c, err
	}
	c.Waves, err = queryAll(ctx, db, `SELECT size, finished, failed FROM campaign_waves WHERE campaign_id = ? ORDER BY wave`,
		[]any{id}, func(row scanner) (store.CampaignWave, error) {
			var w store.CampaignWave
			return w, row.Scan(&w.Size, &w.Finished, &w.Failed)
		})
	return c, err
}

func scanCampaign(row scanner) (store.Campaign, error) {
	var c store.Campaign
	var digest []byte
	var counter, created, updated int64
	var migrate, state string
	err := row.Scan(&c.ID, &c.ProductID, &digest, &c.Image.Version, &c.Image.Size, &counter, &migrate,
		&c.Target, &c.WaveSpec, &c.HaltThreshold, &c.HaltMinFinished, &state, &c.CurrentWave, &c.Reason, &c.DeviceCount,
		&c.CreatedBy, &created, &updated)
	if err != nil {
		return c, err
	}
	if err := fixed(c.Image.Digest[:], digest, "image digest"); err != nil {
		return c, err
	}
	c.Image.SecurityCounter, c.MigrateTo, c.State = uint32(counter), sigalg.ID(migrate), store.CampaignState(state)
	c.CreatedAt, c.UpdatedAt = fromMicros(created), fromMicros(updated)
	return c, nil
}

// ListCampaigns returns campaigns newest first, each with its waves.
func (s *Store) ListCampaigns(ctx context.Context, f store.CampaignFilter) ([]store.Campaign, error) {
	where, args := []string{"1 = 1"}, []any{}
	if len(f.States) > 0 {
		marks := strings.Repeat(", ?", len(f.States))[2:]
		where = append(where, "state IN ("+marks+")")
		for _, st := range f.States {
			args = append(args, string(st))
		}
	}
	if f.ProductID != "" {
		where, args = append(where, "product_id = ?"), append(args, f.ProductID)
	}
	q := `SELECT ` + campaignColumns + ` FROM campaigns WHERE ` + strings.Join(where, " AND ") +
		` ORDER BY created_at DESC, id LIMIT ?`
	list, err := queryAll(ctx, s.reader, q, append(args, store.PageLimit(f.Limit)), scanCampaign)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list campaigns: %w", err)
	}
	for i := range list {
		full, err := getCampaign(ctx, s.reader, list[i].ID)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list campaigns: %w", err)
		}
		list[i].Waves = full.Waves
	}
	return list, nil
}

// CampaignCandidates reads the onboarded devices of a product, with the
// firmware version of their last status report.
func (s *Store) CampaignCandidates(ctx context.Context, f store.CandidateFilter) ([]store.CampaignCandidate, error) {
	where, args := []string{"d.product_id = ?", "d.state = 'onboarded'"}, []any{f.ProductID}
	if f.BatchID != "" {
		where, args = append(where, "d.batch_id = ?"), append(args, f.BatchID)
	}
	if f.Algorithm != "" {
		where, args = append(where, "d.algorithm = ?"), append(args, string(f.Algorithm))
	}
	q := `SELECT d.identity, d.batch_id, d.algorithm, coalesce(st.firmware_version, '') FROM devices AS d
		LEFT JOIN device_status AS st ON st.identity = d.identity WHERE ` + strings.Join(where, " AND ") + ` ORDER BY d.identity`
	list, err := queryAll(ctx, s.reader, q, args, func(row scanner) (store.CampaignCandidate, error) {
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
		return nil, fmt.Errorf("sqlite: campaign candidates: %w", err)
	}
	return list, nil
}

// CampaignMembers reads the identities a campaign targets.
func (s *Store) CampaignMembers(ctx context.Context, id string) ([]identity.ID, error) {
	list, err := queryAll(ctx, s.reader, `SELECT identity FROM campaign_devices WHERE campaign_id = ? ORDER BY identity`,
		[]any{id}, func(row scanner) (identity.ID, error) {
			var out identity.ID
			var raw []byte
			if err := row.Scan(&raw); err != nil {
				return out, err
			}
			return out, fixed(out[:], raw, "identity")
		})
	if err != nil {
		return nil, fmt.Errorf("sqlite: campaign %s members: %w", id, err)
	}
	return list, nil
}

func scanCampaignDevice(row scanner) (store.CampaignDevice, error) {
	var d store.CampaignDevice
	var raw []byte
	var at int64
	if err := row.Scan(&d.CampaignID, &raw, &d.Wave, &d.State, &d.Reason, &d.Detail, &d.FirmwareVersion, &at); err != nil {
		return d, err
	}
	d.UpdatedAt = fromMicros(at)
	return d, fixed(d.Identity[:], raw, "identity")
}

func getCampaignDevice(ctx context.Context, db rowQueryer, campaignID string, id identity.ID) (store.CampaignDevice, error) {
	d, err := scanCampaignDevice(db.QueryRowContext(ctx, `SELECT `+campaignDeviceColumns+
		` FROM campaign_devices WHERE campaign_id = ? AND identity = ?`, campaignID, id[:]))
	if errors.Is(err, sql.ErrNoRows) {
		err = store.ErrNotFound
	}
	return d, err
}

// GetCampaignDevice reads one device's row of a campaign.
func (s *Store) GetCampaignDevice(ctx context.Context, campaignID string, id identity.ID) (store.CampaignDevice, error) {
	d, err := getCampaignDevice(ctx, s.reader, campaignID, id)
	if err != nil {
		return d, fmt.Errorf("sqlite: campaign %s device %s: %w", campaignID, id, err)
	}
	return d, nil
}

// ListCampaignDevices reads a page of a campaign's devices by identity.
func (s *Store) ListCampaignDevices(ctx context.Context, campaignID string, f store.CampaignDeviceFilter) ([]store.CampaignDevice, error) {
	where, args := []string{"campaign_id = ?", "identity > ?"}, []any{campaignID, f.After[:]}
	if f.State != "" {
		where, args = append(where, "state = ?"), append(args, f.State)
	}
	q := `SELECT ` + campaignDeviceColumns + ` FROM campaign_devices WHERE ` + strings.Join(where, " AND ") +
		` ORDER BY identity LIMIT ?`
	list, err := queryAll(ctx, s.reader, q, append(args, store.PageLimit(f.Limit)), scanCampaignDevice)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list campaign %s devices: %w", campaignID, err)
	}
	return list, nil
}

// DeviceCampaigns reads a device's rows in every campaign.
func (s *Store) DeviceCampaigns(ctx context.Context, id identity.ID) ([]store.CampaignDevice, error) {
	q := `SELECT cd.campaign_id, cd.identity, cd.wave, cd.state, cd.reason, cd.detail, cd.firmware_version, cd.updated_at
		FROM campaign_devices AS cd JOIN campaigns AS c ON c.id = cd.campaign_id
		WHERE cd.identity = ? ORDER BY c.created_at DESC, c.id`
	list, err := queryAll(ctx, s.reader, q, []any{id[:]}, scanCampaignDevice)
	if err != nil {
		return nil, fmt.Errorf("sqlite: campaigns of %s: %w", id, err)
	}
	return list, nil
}

// CountCampaignDevices counts by wave and state over the covering index.
func (s *Store) CountCampaignDevices(ctx context.Context, campaignID string) ([]store.CampaignCount, error) {
	list, err := queryAll(ctx, s.reader, `SELECT wave, state, count(*) FROM campaign_devices WHERE campaign_id = ?
		GROUP BY wave, state ORDER BY wave, state`, []any{campaignID}, func(row scanner) (store.CampaignCount, error) {
		var c store.CampaignCount
		return c, row.Scan(&c.Wave, &c.State, &c.N)
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: count campaign %s: %w", campaignID, err)
	}
	return list, nil
}

// OfferCampaignDevice reads the row first on a read connection: a device
// that was offered already (it polls again) costs no write.
func (s *Store) OfferCampaignDevice(ctx context.Context, campaignID string, id identity.ID, at time.Time) (store.CampaignDevice, error) {
	d, err := getCampaignDevice(ctx, s.reader, campaignID, id)
	if err != nil || d.State != "pending" {
		if err != nil {
			err = fmt.Errorf("sqlite: offer campaign %s to %s: %w", campaignID, id, err)
		}
		return d, err
	}
	const q = `UPDATE campaign_devices SET state = 'offered', updated_at = ?
		WHERE campaign_id = ? AND identity = ? AND state = 'pending'
		AND wave <= (SELECT current_wave FROM campaigns WHERE id = ? AND state = 'running')`
	err = s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, q, micros(at), campaignID, id[:], campaignID); err != nil {
			return err
		}
		d, err = getCampaignDevice(ctx, tx, campaignID, id)
		return err
	})
	if err != nil {
		return d, fmt.Errorf("sqlite: offer campaign %s to %s: %w", campaignID, id, err)
	}
	return d, nil
}

// DecideCampaign runs decide's steps in one write: SQLite's one writer
// is the device's, the wave's and the campaign's lock at once, so the
// campaign read first is as fresh as under the campaign's lock and is
// given to both steps, with the device's wave's counters after the
// change.
func (s *Store) DecideCampaign(ctx context.Context, campaignID string, id identity.ID, decide store.CampaignDecider) (store.Campaign, store.CampaignDevice, error) {
	var c store.Campaign
	var d store.CampaignDevice
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		var err error
		if c, err = getCampaign(ctx, tx, campaignID); err != nil {
			return err
		}
		d = store.CampaignDevice{}
		var ch store.DeviceChange
		if !id.IsZero() && decide.Device == nil {
			return errors.New("a decision about a device without a device step")
		}
		if !id.IsZero() {
			if d, err = getCampaignDevice(ctx, tx, campaignID, id); err != nil {
				return err
			}
			if ch, err = decide.Device(c, d); err != nil || ch.Device == nil {
				return err
			}
			var w store.CampaignWave
			if d, w, err = writeCampaignDevice(ctx, tx, d, ch); err != nil {
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
		u, err := decide.Campaign(c, d, ch)
		if err != nil || u == nil {
			return err
		}
		waves := c.Waves
		c, err = scanCampaign(tx.QueryRowContext(ctx, `UPDATE campaigns SET state = ?, current_wave = ?, reason = ?, updated_at = ?
			WHERE id = ? RETURNING `+campaignColumns, string(u.State), u.CurrentWave, u.Reason, micros(u.At), campaignID))
		c.Waves = waves
		return err
	})
	if err != nil {
		return c, d, fmt.Errorf("sqlite: campaign %s: %w", campaignID, err)
	}
	return c, d, nil
}

// writeCampaignDevice writes the device's row and, for a final report,
// adds to its wave's counters; it returns both as written.
func writeCampaignDevice(ctx context.Context, tx *sql.Tx, before store.CampaignDevice, ch store.DeviceChange) (store.CampaignDevice, store.CampaignWave, error) {
	after := ch.Device
	var w store.CampaignWave
	d, err := scanCampaignDevice(tx.QueryRowContext(ctx, `UPDATE campaign_devices SET state = ?, reason = ?, detail = ?,
		firmware_version = ?, updated_at = ? WHERE campaign_id = ? AND identity = ? RETURNING `+campaignDeviceColumns,
		after.State, after.Reason, after.Detail, after.FirmwareVersion, micros(after.UpdatedAt), before.CampaignID, before.Identity[:]))
	if err != nil || ch.Finished == 0 && ch.Failed == 0 {
		return d, w, err
	}
	err = tx.QueryRowContext(ctx, `UPDATE campaign_waves SET finished = finished + ?, failed = failed + ?
		WHERE campaign_id = ? AND wave = ? RETURNING size, finished, failed`, ch.Finished, ch.Failed, before.CampaignID, before.Wave).
		Scan(&w.Size, &w.Finished, &w.Failed)
	return d, w, err
}
