package campaign

import (
	"fmt"
	"slices"
	"time"

	"github.com/hallmark-iot/hallmark/internal/admin"
	"github.com/hallmark-iot/hallmark/internal/ota"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// The rules a report is held to, run by the store under the campaign's
// row lock (store.CampaignDecider), so that two replicas receiving
// reports at once still decide one after the other.

// rank orders the states a device passes forward; failed and rolled back
// end its part from any state but pending.
var rank = map[ota.DeviceState]int{
	ota.StatePending: 0, ota.StateOffered: 1, ota.StateDownloading: 2, ota.StateInstalled: 3,
	ota.StateBooted: 4, ota.StateMigrated: 5,
}

// finished reports whether s ends a device's part in c. A migration
// campaign's device goes on from booted (its image runs) to migrated, so
// booted ends only a plain update.
func finished(c store.Campaign, s ota.DeviceState) bool {
	if c.MigrateTo != "" && s == ota.StateBooted {
		return false
	}
	return s.Terminal()
}

// failedState reports whether s counts against the halt rule.
func failedState(s ota.DeviceState) bool { return s == ota.StateFailed || s == ota.StateRolledBack }

// open reports whether s is a device's part under way: it was offered
// and has not finished.
func open(c store.Campaign, s ota.DeviceState) bool {
	return s != ota.StatePending && !finished(c, s)
}

// deviceStep decides what a report (or the platform's own "migrated")
// does to a device's row: nil when it repeats the device's state (a
// retry), an *admin.Error when it would move the device back, skip the
// offer or go on after the device's part ended.
func deviceStep(c store.Campaign, d store.CampaignDevice, r ota.Report, at time.Time) (*store.CampaignDevice, error) {
	cur, next := ota.DeviceState(d.State), r.State
	switch {
	case cur == next:
		return nil, nil
	case finished(c, cur):
		return nil, admin.Errorf(admin.CodeConflict, "the device's part in campaign %s ended as %s", c.ID, cur)
	case cur == ota.StatePending:
		return nil, admin.Errorf(admin.CodeConflict, "campaign %s has not offered the device its update", c.ID)
	case next == ota.StateMigrated && c.MigrateTo == "":
		return nil, admin.Errorf(admin.CodeConflict, "campaign %s is not a migration campaign", c.ID)
	case !failedState(next) && rank[next] < rank[cur]:
		return nil, admin.Errorf(admin.CodeConflict, "the device is %s in campaign %s; a report moves it forward only", cur, c.ID)
	}
	out := d
	out.State, out.Reason, out.Detail, out.UpdatedAt = string(next), r.Reason, r.Detail, at
	if r.FirmwareVersion != "" {
		out.FirmwareVersion = r.FirmwareVersion
	}
	return &out, nil
}

// progress decides what a device's change does to the campaign: the halt
// rule on the device's wave, then the next wave when the current one has
// finished, or completion after the last. Only a running or paused
// campaign moves; the reports of devices finishing after a halt or a
// cancel are recorded and change nothing else.
func progress(c store.Campaign, wave, fin, fail int, rule HaltRule, at time.Time) *store.CampaignUpdate {
	if c.State != store.CampaignRunning && c.State != store.CampaignPaused {
		return nil
	}
	waves := slices.Clone(c.Waves)
	if wave < 0 || wave >= len(waves) {
		return nil
	}
	w := waves[wave]
	w.Finished += fin
	w.Failed += fail
	waves[wave] = w
	if fail > 0 && rule.Trips(w.Size, w.Finished, w.Failed) {
		return &store.CampaignUpdate{State: store.CampaignHalted, CurrentWave: c.CurrentWave, At: at,
			Reason: fmt.Sprintf("wave %d: %d of %d finished devices failed, more than %g", wave+1, w.Failed, w.Finished, rule.Threshold)}
	}
	cur := c.CurrentWave
	for cur < len(waves) && waves[cur].Finished == waves[cur].Size {
		cur++
	}
	switch {
	case cur == c.CurrentWave:
		return nil
	case cur == len(waves):
		return &store.CampaignUpdate{State: store.CampaignCompleted, CurrentWave: len(waves) - 1, At: at,
			Reason: fmt.Sprintf("all %d waves finished", len(waves))}
	}
	return &store.CampaignUpdate{State: c.State, CurrentWave: cur, At: at, Reason: c.Reason}
}

// decided is what a decision saw: whether it changed the device (a
// repeated report does not) and the campaign's state before it.
type decided struct {
	changed bool
	before  store.CampaignState
}

// reportDecider is the decision of one report.
func reportDecider(r ota.Report, at time.Time, out *decided) store.CampaignDecider {
	return func(c store.Campaign, d store.CampaignDevice) (store.CampaignChange, error) {
		row, err := deviceStep(c, d, r, at)
		out.changed, out.before = row != nil, c.State
		if err != nil || row == nil {
			return store.CampaignChange{}, err
		}
		ch := store.CampaignChange{Device: row}
		if finished(c, r.State) {
			ch.Finished = 1
			if failedState(r.State) {
				ch.Failed = 1
			}
		}
		rule := HaltRule{Threshold: c.HaltThreshold, MinFinished: c.HaltMinFinished}
		ch.Campaign = progress(c, d.Wave, ch.Finished, ch.Failed, rule, at)
		return ch, nil
	}
}

// adminTransitions are what an administrator may do to a campaign, from
// which states.
var adminTransitions = map[string]struct {
	from []store.CampaignState
	to   store.CampaignState
}{
	"pause":  {[]store.CampaignState{store.CampaignRunning}, store.CampaignPaused},
	"resume": {[]store.CampaignState{store.CampaignPaused}, store.CampaignRunning},
	"cancel": {[]store.CampaignState{store.CampaignRunning, store.CampaignPaused}, store.CampaignCancelled},
}

// stateDecider is the decision of an administrative transition. Asking
// for the state the campaign is in already changes nothing (a retry).
func stateDecider(verb, reason string, at time.Time, out *decided) store.CampaignDecider {
	return func(c store.Campaign, _ store.CampaignDevice) (store.CampaignChange, error) {
		out.before = c.State
		t := adminTransitions[verb]
		if c.State == t.to {
			return store.CampaignChange{}, nil
		}
		for _, from := range t.from {
			if c.State == from {
				return store.CampaignChange{Campaign: &store.CampaignUpdate{State: t.to, CurrentWave: c.CurrentWave,
					Reason: reason, At: at}}, nil
			}
		}
		return store.CampaignChange{}, admin.Errorf(admin.CodeConflict, "cannot %s a campaign that is %s", verb, c.State)
	}
}
