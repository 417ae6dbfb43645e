package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// campaignCreateLock is the pg_advisory_xact_lock key every campaign
// creation takes ("hmcampgn"), so that creations on all replicas run one
// at a time: the check that no device of a new campaign is in another
// open campaign then sees every creation committed before it (under READ
// COMMITTED each statement after the lock takes a fresh snapshot). A
// creation is rare and short next to polls and reports, which take no
// such lock; a campaign closing concurrently only frees devices, so at
// worst a device is counted busy that is freed a moment later.
const campaignCreateLock int64 = 0x686d63616d70676e

// lockCampaignCreation takes the creation lock for the rest of tx.
func lockCampaignCreation(ctx context.Context, tx pgx.Tx) error {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, campaignCreateLock); err != nil {
		return fmt.Errorf("lock campaign creation: %w", err)
	}
	return nil
}

// busyCampaignDevices returns the devices of campaign id, inserted in tx,
// that another open campaign targets. It reads nothing per device when
// no other campaign is open, the common case.
func busyCampaignDevices(ctx context.Context, tx pgx.Tx, id string) ([]identity.ID, error) {
	open := openStates()
	var others bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM campaigns WHERE state = ANY($1) AND id <> $2)`,
		open, id).Scan(&others); err != nil {
		return nil, fmt.Errorf("open campaigns: %w", err)
	}
	if !others {
		return nil, nil
	}
	const q = `SELECT DISTINCT mine.identity FROM campaign_devices mine
		JOIN campaign_devices other ON other.identity = mine.identity AND other.campaign_id <> mine.campaign_id
		JOIN campaigns c ON c.id = other.campaign_id AND c.state = ANY($2)
		WHERE mine.campaign_id = $1 ORDER BY mine.identity`
	busy, err := queryAll(ctx, tx, q, []any{id, open}, func(row pgx.Row) (identity.ID, error) {
		var raw []byte
		var d identity.ID
		if err := row.Scan(&raw); err != nil {
			return d, err
		}
		return d, fixed(d[:], raw, "identity")
	})
	if err != nil {
		return nil, fmt.Errorf("busy devices: %w", err)
	}
	return busy, nil
}

func openStates() []string {
	out := make([]string, len(store.OpenCampaignStates))
	for i, st := range store.OpenCampaignStates {
		out[i] = string(st)
	}
	return out
}

// checkOpenCampaignDevices refuses, inside tx, a new open campaign c some
// of whose devices another open campaign targets.
func checkOpenCampaignDevices(ctx context.Context, tx pgx.Tx, c store.Campaign) error {
	if c.State.Final() {
		return nil
	}
	busy, err := busyCampaignDevices(ctx, tx, c.ID)
	if err != nil {
		return err
	}
	if len(busy) > 0 {
		return &store.BusyDevicesError{Devices: busy}
	}
	return nil
}
