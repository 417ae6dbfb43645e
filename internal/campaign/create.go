package campaign

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/hallmark-iot/hallmark/internal/admin"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// maxCreateAttempts bounds how often Create leaves out devices that
// another replica's campaign took meanwhile and tries again. Each retry
// follows a creation that committed, so more than a few means creations
// keep racing for the same devices: the caller is told to try again.
const maxCreateAttempts = 4

// store deals ids into waves and stores the campaign. The view said
// which devices were busy, but another replica may have created a
// campaign since; the store checks it again inside its transaction
// (store.BusyDevicesError), and then the busy devices are left out and
// counted, the waves resolved anew and the creation tried again, so the
// outcome is the same whether the other campaign was created here or on
// another replica. It returns the campaign, its wave sizes and how many
// devices the store found busy.
func (s *Service) store(ctx context.Context, template store.Campaign, steps []WaveStep, ids []identity.ID) (store.Campaign, []int, int, error) {
	busy := 0
	for range maxCreateAttempts {
		sizes, err := Resolve(steps, len(ids))
		if err != nil {
			return store.Campaign{}, nil, busy, err
		}
		c := template
		c.ID, c.DeviceCount = newID(), len(ids)
		c.CreatedAt = s.now()
		c.UpdatedAt = c.CreatedAt
		for _, sz := range sizes {
			c.Waves = append(c.Waves, store.CampaignWave{Size: sz})
		}
		err = s.cfg.Store.CreateCampaign(ctx, c, assign(ids, sizes))
		var be *store.BusyDevicesError
		if !errors.As(err, &be) {
			return c, sizes, busy, err
		}
		taken := make(map[identity.ID]struct{}, len(be.Devices))
		for _, id := range be.Devices {
			taken[id] = struct{}{}
		}
		n := len(ids)
		ids = slices.DeleteFunc(ids, func(id identity.ID) bool { _, t := taken[id]; return t })
		busy += n - len(ids)
		if n == len(ids) {
			// The store named no device of ours: retrying cannot help.
			return store.Campaign{}, nil, busy, fmt.Errorf("campaign: create: %w", err)
		}
		s.cfg.Log.Info("campaign devices taken by a concurrent creation", "busy", n-len(ids), "left", len(ids))
	}
	return store.Campaign{}, nil, busy, admin.Errorf(admin.CodeConflict,
		"other campaigns kept taking this target's devices while it was created; try again")
}
