package storetest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// A device takes part in one open campaign at a time, and the store, not
// the caller's view, enforces it: CreateCampaign refuses an open
// campaign with a device another open campaign targets, writes nothing
// and names the busy devices, whoever created the other campaign and
// however close together the two creations ran.

// wantBusy asserts err is a BusyDevicesError naming exactly want.
func wantBusy(t *testing.T, what string, err error, want ...identity.ID) {
	t.Helper()
	var be *store.BusyDevicesError
	if !errors.As(err, &be) || !errors.Is(err, store.ErrConflict) {
		t.Fatalf("%s: %v, want a BusyDevicesError (ErrConflict)", what, err)
	}
	slices.SortFunc(want, func(a, b identity.ID) int { return compareIDs(a, b) })
	equal(t, what+": busy devices", be.Devices, want)
}

func compareIDs(a, b identity.ID) int {
	return slices.Compare(a[:], b[:])
}

func rowsOf(ids ...identity.ID) []store.CampaignDevice {
	out := make([]store.CampaignDevice, len(ids))
	for i, id := range ids {
		out[i] = store.CampaignDevice{Identity: id, State: "pending"}
	}
	return out
}

func (f *fixture) setCampaignState(t *testing.T, id string, st store.CampaignState) {
	t.Helper()
	_, _, err := f.s.DecideCampaign(f.ctx, id, identity.ID{}, campaignOnly(store.CampaignUpdate{State: st, Reason: "test", At: at(6 * time.Hour)}))
	must(t, err)
}

func testCampaignOpenDevicesUnique(t *testing.T, f *fixture) {
	devices := f.campaignDevices(t, "uniq", 4)
	d0, d1, d2 := devices[0].Identity, devices[1].Identity, devices[2].Identity
	a := sampleCampaign("cmp_00000000000000d1", f, 2)
	must(t, f.s.CreateCampaign(f.ctx, a, rowsOf(d0, d1)))

	b := sampleCampaign("cmp_00000000000000d2", f, 2)
	b.State = store.CampaignPaused
	wantBusy(t, "a paused campaign over a running one's device", f.s.CreateCampaign(f.ctx, b, rowsOf(d1, d2)), d1)
	_, err := f.s.GetCampaign(f.ctx, b.ID)
	wantErr(t, "the refused campaign", err, store.ErrNotFound)
	mine, err := f.s.DeviceCampaigns(f.ctx, d2)
	must(t, err)
	equal(t, "the refused campaign's free device", len(mine), 0)

	f.setCampaignState(t, a.ID, store.CampaignPaused)
	b.State = store.CampaignRunning
	wantBusy(t, "a campaign over a paused one's devices", f.s.CreateCampaign(f.ctx, b, rowsOf(d2, d1, d0)), d0, d1)

	f.setCampaignState(t, a.ID, store.CampaignCancelled)
	must(t, f.s.CreateCampaign(f.ctx, b, rowsOf(d1, d2)))
	got, err := f.s.CampaignMembers(f.ctx, b.ID)
	must(t, err)
	equal(t, "the campaign after its predecessor closed", got, sortedIDs(map[identity.ID]bool{d1: true, d2: true}))
}

// testCampaignCreateConcurrently has several creators target overlapping
// sets of devices at once, each leaving out the devices the store names
// busy and trying again, as the campaign service does: every device ends
// in exactly one open campaign.
func testCampaignCreateConcurrently(t *testing.T, f *fixture) {
	const creators, window = 8, 4
	devices := f.campaignDevices(t, "create-race", creators+window)
	var wg sync.WaitGroup
	errs := make(chan error, creators)
	var mu sync.Mutex
	refusals := 0
	for i := range creators {
		wg.Go(func() {
			var ids []identity.ID
			for _, d := range devices[i : i+window] {
				ids = append(ids, d.Identity)
			}
			for attempt := 0; len(ids) > 0; attempt++ {
				c := sampleCampaign(fmt.Sprintf("cmp_%014x%02x", i, attempt), f, len(ids))
				err := f.s.CreateCampaign(f.ctx, c, rowsOf(ids...))
				var be *store.BusyDevicesError
				if !errors.As(err, &be) {
					errs <- err
					return
				}
				mu.Lock()
				refusals++
				mu.Unlock()
				ids = slices.DeleteFunc(ids, func(id identity.ID) bool { return slices.Contains(be.Devices, id) })
			}
			errs <- nil
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		must(t, err)
	}
	if refusals == 0 {
		t.Error("no creation was refused: the windows overlap, so at least one must be")
	}
	for _, d := range devices[:creators+window-1] {
		rows, err := f.s.DeviceCampaigns(f.ctx, d.Identity)
		must(t, err)
		open := 0
		for _, r := range rows {
			c, err := f.s.GetCampaign(f.ctx, r.CampaignID)
			must(t, err)
			if !c.State.Final() {
				open++
			}
		}
		if open != 1 {
			t.Errorf("device %s is in %d open campaigns, want exactly 1", d.Identity, open)
		}
	}
}
