package campaign

import (
	"errors"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/admin"
	"github.com/hallmark-iot/hallmark/internal/ota"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
)

func TestDeviceStep(t *testing.T) {
	plain := store.Campaign{ID: "cmp_0000000000000001"}
	migration := plain
	migration.MigrateTo = sigalg.MLDSA65
	at := time.Unix(1000, 0)
	for _, c := range []struct {
		c        store.Campaign
		from, to ota.DeviceState
		want     string // "" moves, "same" changes nothing, else the refusal's code
	}{
		{plain, ota.StateOffered, ota.StateDownloading, ""},
		{plain, ota.StateOffered, ota.StateBooted, ""}, // forward, skipping is fine
		{plain, ota.StateDownloading, ota.StateDownloading, "same"},
		{plain, ota.StateInstalled, ota.StateDownloading, admin.CodeConflict},
		{plain, ota.StatePending, ota.StateDownloading, admin.CodeConflict},
		{plain, ota.StatePending, ota.StateFailed, admin.CodeConflict},
		{plain, ota.StateBooted, ota.StateFailed, admin.CodeConflict},
		{plain, ota.StateBooted, ota.StateBooted, "same"},
		{plain, ota.StateFailed, ota.StateDownloading, admin.CodeConflict},
		{plain, ota.StateInstalled, ota.StateRolledBack, ""},
		{plain, ota.StateInstalled, ota.StateMigrated, admin.CodeConflict},
		{migration, ota.StateBooted, ota.StateMigrated, ""},
		{migration, ota.StateBooted, ota.StateFailed, ""}, // the migration failed
		{migration, ota.StateMigrated, ota.StateFailed, admin.CodeConflict},
	} {
		r := ota.Report{CampaignID: c.c.ID, State: c.to}
		row, err := deviceStep(c.c, store.CampaignDevice{State: string(c.from)}, r, at)
		var e *admin.Error
		switch {
		case c.want == "" && (err != nil || row == nil || row.State != string(c.to) || !row.UpdatedAt.Equal(at)):
			t.Errorf("%s -> %s (migrate %q): %+v, %v", c.from, c.to, c.c.MigrateTo, row, err)
		case c.want == "same" && (err != nil || row != nil):
			t.Errorf("%s -> %s: %+v, %v; want no change", c.from, c.to, row, err)
		case c.want != "" && c.want != "same" && (!errors.As(err, &e) || e.Code != c.want):
			t.Errorf("%s -> %s: %v; want %s", c.from, c.to, err, c.want)
		}
	}
}

func TestProgress(t *testing.T) {
	at := time.Unix(2000, 0)
	rule := HaltRule{Threshold: 0.5, MinFinished: 2}
	base := store.Campaign{State: store.CampaignRunning, Waves: []store.CampaignWave{{Size: 2}, {Size: 3}, {Size: 5}}}

	c := base
	c.Waves = []store.CampaignWave{{Size: 2, Finished: 1}, {Size: 3}, {Size: 5}}
	if u := progress(c, 0, 1, 0, rule, at); u == nil || u.State != store.CampaignRunning || u.CurrentWave != 1 {
		t.Errorf("the first wave finished: %+v", u)
	}
	if c.Waves[0].Finished != 1 {
		t.Error("progress changed the campaign it was given")
	}
	c.Waves = []store.CampaignWave{{Size: 2, Finished: 1, Failed: 1}, {Size: 3}, {Size: 5}}
	if u := progress(c, 0, 1, 1, rule, at); u == nil || u.State != store.CampaignHalted || u.Reason == "" {
		t.Errorf("two failures of two: %+v", u)
	}
	c.Waves = []store.CampaignWave{{Size: 2, Finished: 2}, {Size: 3, Finished: 2}, {Size: 5, Finished: 4}}
	c.CurrentWave = 2
	if u := progress(c, 2, 1, 0, rule, at); u == nil || u.State != store.CampaignCompleted || u.CurrentWave != 2 {
		t.Errorf("the last wave finished: %+v", u)
	}
	c.State = store.CampaignPaused
	c.CurrentWave = 1
	c.Waves = []store.CampaignWave{{Size: 2, Finished: 2}, {Size: 3, Finished: 2}, {Size: 5}}
	if u := progress(c, 1, 1, 0, rule, at); u == nil || u.State != store.CampaignPaused || u.CurrentWave != 2 {
		t.Errorf("a paused campaign's wave finished: %+v", u)
	}
	c.State = store.CampaignCancelled
	if u := progress(c, 1, 1, 1, rule, at); u != nil {
		t.Errorf("a cancelled campaign moved: %+v", u)
	}
	c = base
	if u := progress(c, 1, 1, 0, rule, at); u != nil {
		t.Errorf("a late wave's report moved the campaign: %+v", u)
	}
}

func TestStateDecider(t *testing.T) {
	at := time.Unix(3000, 0)
	for _, c := range []struct {
		verb string
		from store.CampaignState
		to   store.CampaignState // "" refused
	}{
		{"pause", store.CampaignRunning, store.CampaignPaused},
		{"pause", store.CampaignPaused, store.CampaignPaused},
		{"pause", store.CampaignHalted, ""},
		{"resume", store.CampaignPaused, store.CampaignRunning},
		{"resume", store.CampaignCancelled, ""},
		{"cancel", store.CampaignPaused, store.CampaignCancelled},
		{"cancel", store.CampaignCompleted, ""},
		{"cancel", store.CampaignCancelled, store.CampaignCancelled},
	} {
		ch, err := stateDecider(c.verb, "why", at, &decided{})(store.Campaign{State: c.from}, store.CampaignDevice{})
		switch {
		case c.to == "" && err == nil:
			t.Errorf("%s from %s: allowed", c.verb, c.from)
		case c.to == c.from && (err != nil || ch.Campaign != nil):
			t.Errorf("%s from %s: %+v, %v; want no change", c.verb, c.from, ch, err)
		case c.to != "" && c.to != c.from && (err != nil || ch.Campaign == nil || ch.Campaign.State != c.to || ch.Campaign.Reason != "why"):
			t.Errorf("%s from %s: %+v, %v", c.verb, c.from, ch, err)
		}
	}
}
