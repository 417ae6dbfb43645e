package campaign

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// view is the open (running or paused) campaigns and the devices each
// targets, in memory: a poll from a device that no open campaign targets
// is answered from here alone. A campaign's targets never change after
// its creation, so they are read once per campaign; a refresh reads only
// the list of open campaigns.
type view struct {
	mu sync.RWMutex
	// campaigns are the open campaigns by ID.
	campaigns map[string]store.Campaign
	// members maps a device to the open campaigns that target it, oldest
	// first.
	members map[identity.ID][]string
	// targets are the identities of each campaign loaded.
	targets map[string][]identity.ID
	// refreshMu makes refreshes take turns; refreshed is the time of the
	// last one (Unix nanoseconds).
	refreshMu sync.Mutex
	refreshed atomic.Int64
}

func (v *view) init() {
	v.campaigns = map[string]store.Campaign{}
	v.members = map[identity.ID][]string{}
	v.targets = map[string][]identity.ID{}
}

// refresh reads the open campaigns, loading the targets of any it did
// not know, and rebuilds the device index when the set changed.
func (v *view) refresh(ctx context.Context, st Store, now time.Time) error {
	v.refreshMu.Lock()
	defer v.refreshMu.Unlock()
	return v.refreshLocked(ctx, st, now)
}

// refreshIfStale refreshes a stale view unless another call is doing so
// (that call's result serves this one).
func (v *view) refreshIfStale(ctx context.Context, st Store, now time.Time, every time.Duration) error {
	if !v.stale(now, every) || !v.refreshMu.TryLock() {
		return nil
	}
	defer v.refreshMu.Unlock()
	if !v.stale(now, every) {
		return nil
	}
	return v.refreshLocked(ctx, st, now)
}

func (v *view) refreshLocked(ctx context.Context, st Store, now time.Time) error {
	list, err := st.ListCampaigns(ctx, store.CampaignFilter{States: []store.CampaignState{store.CampaignRunning, store.CampaignPaused},
		Limit: store.MaxPageSize})
	if err != nil {
		return fmt.Errorf("campaign view: %w", err)
	}
	v.mu.RLock()
	known := v.targets
	v.mu.RUnlock()
	targets := make(map[string][]identity.ID, len(list))
	for _, c := range list {
		ids, ok := known[c.ID]
		if !ok {
			if ids, err = st.CampaignMembers(ctx, c.ID); err != nil {
				return fmt.Errorf("campaign view: %w", err)
			}
		}
		targets[c.ID] = ids
	}
	campaigns := make(map[string]store.Campaign, len(list))
	for _, c := range list {
		campaigns[c.ID] = c
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if !sameKeys(targets, v.targets) {
		v.members = index(list, targets)
	}
	v.campaigns, v.targets = campaigns, targets
	v.refreshed.Store(now.UnixNano())
	return nil
}

// stale reports whether the view is older than every at now.
func (v *view) stale(now time.Time, every time.Duration) bool {
	return now.UnixNano()-v.refreshed.Load() >= int64(every)
}

func sameKeys(a, b map[string][]identity.ID) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if _, ok := b[k]; !ok {
			return false
		}
	}
	return true
}

// index maps every targeted device to its campaigns, oldest first.
func index(list []store.Campaign, targets map[string][]identity.ID) map[identity.ID][]string {
	ordered := slices.Clone(list)
	slices.SortFunc(ordered, func(a, b store.Campaign) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	n := 0
	for _, ids := range targets {
		n += len(ids)
	}
	m := make(map[identity.ID][]string, n)
	for _, c := range ordered {
		for _, id := range targets[c.ID] {
			m[id] = append(m[id], c.ID)
		}
	}
	return m
}

// lookup returns the open campaigns targeting id, oldest first.
func (v *view) lookup(id identity.ID) []store.Campaign {
	v.mu.RLock()
	defer v.mu.RUnlock()
	ids := v.members[id]
	if len(ids) == 0 {
		return nil
	}
	out := make([]store.Campaign, 0, len(ids))
	for _, cid := range ids {
		if c, ok := v.campaigns[cid]; ok {
			out = append(out, c)
		}
	}
	return out
}

// update records a campaign's new state at once: a closed campaign
// leaves the index (its devices are answered from memory again), a
// state change of an open one is seen by the next poll.
func (v *view) update(c store.Campaign) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if _, ok := v.campaigns[c.ID]; !ok {
		return // not loaded yet: the next refresh reads it
	}
	if !c.State.Final() {
		v.campaigns[c.ID] = c
		return
	}
	delete(v.campaigns, c.ID)
	targets := make(map[string][]identity.ID, len(v.targets))
	list := make([]store.Campaign, 0, len(v.campaigns))
	for id, ids := range v.targets {
		if id != c.ID {
			targets[id] = ids
			list = append(list, v.campaigns[id])
		}
	}
	v.targets = targets
	v.members = index(list, targets)
}

// busy returns the set of devices open campaigns target.
func (v *view) busy() map[identity.ID]struct{} {
	v.mu.RLock()
	defer v.mu.RUnlock()
	out := make(map[identity.ID]struct{}, len(v.members))
	for id := range v.members {
		out[id] = struct{}{}
	}
	return out
}
