package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// checkOpenCampaignDevices refuses, inside tx, a new open campaign c some
// of whose devices (inserted in tx already) another open campaign
// targets. The write transaction began IMMEDIATE, so no other creation,
// in this process or another, commits between this check and the
// commit: the single writer is the lock the PostgreSQL backend takes
// explicitly. It reads nothing per device when no other campaign is
// open, the common case.
func checkOpenCampaignDevices(ctx context.Context, tx *sql.Tx, c store.Campaign) error {
	if c.State.Final() {
		return nil
	}
	running, paused := string(store.CampaignRunning), string(store.CampaignPaused)
	var others bool
	if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM campaigns WHERE state IN (?, ?) AND id <> ?)`,
		running, paused, c.ID).Scan(&others); err != nil {
		return fmt.Errorf("open campaigns: %w", err)
	}
	if !others {
		return nil
	}
	const q = `SELECT DISTINCT mine.identity FROM campaign_devices mine
		JOIN campaign_devices other ON other.identity = mine.identity AND other.campaign_id <> mine.campaign_id
		JOIN campaigns oc ON oc.id = other.campaign_id AND oc.state IN (?, ?)
		WHERE mine.campaign_id = ? ORDER BY mine.identity`
	busy, err := queryAll(ctx, tx, q, []any{running, paused, c.ID}, func(row scanner) (identity.ID, error) {
		var d identity.ID
		var raw []byte
		if err := row.Scan(&raw); err != nil {
			return d, err
		}
		return d, fixed(d[:], raw, "identity")
	})
	if err != nil {
		return fmt.Errorf("busy devices: %w", err)
	}
	if len(busy) > 0 {
		return &store.BusyDevicesError{Devices: busy}
	}
	return nil
}
