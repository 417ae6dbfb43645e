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
	done := store.DeviceChange{Finished: 1}
	failed := store.DeviceChange{Finished: 1, Failed: 1}

	// The counters given are after the change.
	c := base
	c.Waves = []store.CampaignWave{{Size: 2, Finished: 2}, {Size: 3}, {Size: 5}}
	if u := progress(c, 0, done, rule, at); u == nil || u.State != store.CampaignRunning || u.CurrentWave != 1 {
		t.Errorf("the first wave finished: %+v", u)
	}
	c.Waves = []store.CampaignWave{{Size: 2, Finished: 1}, {Size: 3}, {Size: 5}}
	if u := progress(c, 0, done, rule, at); u != nil {
		t.Errorf("the first wave half finished: %+v", u)
	}
	c.Waves = []store.CampaignWave{{Size: 2, Finished: 2, Failed: 2}, {Size: 3}, {Size: 5}}
	if u := progress(c, 0, failed, rule, at); u == nil || u.State != store.CampaignHalted || u.Reason == "" {
		t.Errorf("two failures of two: %+v", u)
	}
	if u := progress(c, 0, done, rule, at); u == nil || u.State != store.CampaignRunning {
		t.Errorf("a success finishing a failing wave halts (only a failure checks the rule): %+v", u)
	}
	c.Waves = []store.CampaignWave{{Size: 2, Finished: 2}, {Size: 3, Finished: 3}, {Size: 5, Finished: 5}}
	c.CurrentWave = 2
	if u := progress(c, 2, done, rule, at); u == nil || u.State != store.CampaignCompleted || u.CurrentWave != 2 {
		t.Errorf("the last wave finished: %+v", u)
	}
	c.State = store.CampaignPaused
	c.CurrentWave = 1
	c.Waves = []store.CampaignWave{{Size: 2, Finished: 2}, {Size: 3, Finished: 3}, {Size: 5}}
	if u := progress(c, 1, done, rule, at); u == nil || u.State != store.CampaignPaused || u.CurrentWave != 2 {
		t.Errorf("a paused campaign's wave finished: %+v", u)
	}
	c.State = store.CampaignCancelled
	if u := progress(c, 1, failed, rule, at); u != nil {
		t.Errorf("a cancelled campaign moved: %+v", u)
	}
	c = base
	if u := progress(c, 1, done, rule, at); u != nil {
		t.Errorf("a late wave's report moved the campaign: %+v", u)
	}
}

// TestMayProgress checks that the store is asked for the campaign's lock
// whenever progress would move the campaign: over every small campaign
// in which waves before the current one have finished, the current one
// had not before the report and the report is of the current wave (the
// states the rules allow), mayProgress is true
// wherever progress decides a change, and false for a change of no count.
func TestMayProgress(t *testing.T) {
	at := time.Unix(4000, 0)
	rules := []HaltRule{{Threshold: 0, MinFinished: 1}, {Threshold: 0.5, MinFinished: 2}, {Threshold: 1, MinFinished: 1}}
	changes := []store.DeviceChange{{}, {Finished: 1}, {Finished: 1, Failed: 1}}
	sizes := [][]int{{1}, {2, 3}, {3, 0, 2}, {0, 2}}
	checked := 0
	for _, rule := range rules {
		for _, sz := range sizes {
			for cur := range sz {
				for fin := 0; fin <= sz[cur]; fin++ {
					for fail := 0; fail <= fin; fail++ {
						for _, ch := range changes {
							if fin < ch.Finished || fail < ch.Failed || fin-ch.Finished < fail-ch.Failed {
								continue // counters after the change include it
							}
							if fin-ch.Finished >= sz[cur] {
								continue // the wave was full before: the report that filled it decided
							}
							for _, st := range store.CampaignStates {
								c := store.Campaign{State: st, CurrentWave: cur}
								for w, n := range sz {
									switch {
									case w < cur:
										c.Waves = append(c.Waves, store.CampaignWave{Size: n, Finished: n})
									case w == cur:
										c.Waves = append(c.Waves, store.CampaignWave{Size: n, Finished: fin, Failed: fail})
									default:
										c.Waves = append(c.Waves, store.CampaignWave{Size: n})
									}
								}
								u := progress(c, cur, ch, rule, at)
								may := mayProgress(c, cur, ch, rule)
								if u != nil && !may {
									t.Errorf("%+v, report %+v, rule %+v: progress %+v without the lock", c, ch, rule, u)
								}
								if ch.Finished == 0 && may {
									t.Errorf("%+v: a change of no count asks for the lock", c)
								}
								checked++
							}
						}
					}
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("nothing checked")
	}
}

// TestReportDeciderSteps runs a report's steps as the store does: the
// device's on the campaign read without its lock, then the campaign's on
// the campaign as it is now; a halt committed in between is seen, the
// device's change is still recorded, and the halt is not noted again.
func TestReportDeciderSteps(t *testing.T) {
	at := time.Unix(5000, 0)
	c := store.Campaign{ID: "cmp_0000000000000001", State: store.CampaignRunning, HaltThreshold: 1, HaltMinFinished: 1,
		Waves: []store.CampaignWave{{Size: 2, Finished: 1}, {Size: 1}}}
	var seen decided
	dec := reportDecider(ota.Report{CampaignID: c.ID, State: ota.StateBooted}, at, &seen)
	d := store.CampaignDevice{CampaignID: c.ID, State: string(ota.StateInstalled)}
	ch, err := dec.Device(c, d)
	if err != nil || ch.Device == nil || ch.Finished != 1 || ch.Failed != 0 || !seen.changed {
		t.Fatalf("device step: %+v, %v", ch, err)
	}
	after := c
	after.Waves = []store.CampaignWave{{Size: 2, Finished: 2}, {Size: 1}}
	if !dec.NeedsCampaign(after, *ch.Device, ch) {
		t.Fatal("the wave's last report does not ask for the campaign's lock")
	}
	now := after
	now.State, now.Reason = store.CampaignHalted, "operator"
	u, err := dec.Campaign(now, *ch.Device, ch)
	if err != nil || u != nil {
		t.Errorf("campaign step on a campaign halted since: %+v, %v", u, err)
	}
	if seen.before != store.CampaignHalted {
		t.Errorf("the decision notes the campaign as %s before it, want halted (the halt is not its own)", seen.before)
	}
	u, err = dec.Campaign(after, *ch.Device, ch)
	if err != nil || u == nil || u.CurrentWave != 1 || u.State != store.CampaignRunning {
		t.Errorf("campaign step on the running campaign: %+v, %v", u, err)
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
		dec := stateDecider(c.verb, "why", at, &decided{})
		if dec.Device != nil {
			t.Fatalf("%s: an administrative decision has a device step", c.verb)
		}
		u, err := dec.Campaign(store.Campaign{State: c.from}, store.CampaignDevice{}, store.DeviceChange{})
		switch {
		case c.to == "" && err == nil:
			t.Errorf("%s from %s: allowed", c.verb, c.from)
		case c.to == c.from && (err != nil || u != nil):
			t.Errorf("%s from %s: %+v, %v; want no change", c.verb, c.from, u, err)
		case c.to != "" && c.to != c.from && (err != nil || u == nil || u.State != c.to || u.Reason != "why"):
			t.Errorf("%s from %s: %+v, %v", c.verb, c.from, u, err)
		}
	}
}
