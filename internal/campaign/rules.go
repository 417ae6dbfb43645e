package campaign

import (
	"fmt"
	"time"

	"github.com/hallmark-iot/hallmark/internal/admin"
	"github.com/hallmark-iot/hallmark/internal/ota"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// The rules a report is held to, run by the store (store.CampaignDecider)
// in two steps: the device's under its row lock, so that reports of
// different devices are recorded at once, and the campaign's under the
// campaign's row lock, taken only by a report that may move the campaign
// (mayProgress), so that two replicas receiving such reports at once
// still decide one after the other on exact counts.

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

// progress decides what a device's change does to the campaign, given
// the campaign with its waves' counters after the change: the halt rule
// on the device's wave when the change is a failure, then the next wave
// when the current one has finished, or completion after the last. Only
// a running or paused campaign moves; the reports of devices finishing
// after a halt or a cancel are recorded and change nothing else.
func progress(c store.Campaign, wave int, ch store.DeviceChange, rule HaltRule, at time.Time) *store.CampaignUpdate {
	if c.State != store.CampaignRunning && c.State != store.CampaignPaused {
		return nil
	}
	if wave < 0 || wave >= len(c.Waves) {
		return nil
	}
	if w := c.Waves[wave]; ch.Failed > 0 && rule.Trips(w.Size, w.Finished, w.Failed) {
		return &store.CampaignUpdate{State: store.CampaignHalted, CurrentWave: c.CurrentWave, At: at,
			Reason: fmt.Sprintf("wave %d: %d of %d finished devices failed, more than %g", wave+1, w.Failed, w.Finished, rule.Threshold)}
	}
	cur := c.CurrentWave
	for cur < len(c.Waves) && c.Waves[cur].Finished >= c.Waves[cur].Size {
		cur++
	}
	switch {
	case cur == c.CurrentWave:
		return nil
	case cur == len(c.Waves):
		return &store.CampaignUpdate{State: store.CampaignCompleted, CurrentWave: len(c.Waves) - 1, At: at,
			Reason: fmt.Sprintf("all %d waves finished", len(c.Waves))}
	}
	return &store.CampaignUpdate{State: c.State, CurrentWave: cur, At: at, Reason: c.Reason}
}

// mayProgress reports whether a device's change may move the campaign,
// given the campaign as read without its lock and the device's wave's
// counters after the change (exact). It is exact, so that progress need
// run under the campaign's lock only when it says so:
//   - a final state is final, so a campaign read as final is final now;
//   - a halt is decided on the device's wave's counters alone, and only
//     on a failure: the same test as progress's;
//   - waves open in order and a device is offered only in an open wave,
//     so finishing devices belong to the current wave (earlier ones have
//     finished all their devices): the current wave finishes, and the
//     campaign advances, exactly with the report that brings its wave's
//     finished count to its size. A concurrent report that also
//     finishes the wave cannot exist (the counters are exact), and one
//     that advanced the campaign since is seen by progress under the
//     lock, which then changes nothing.
func mayProgress(c store.Campaign, wave int, ch store.DeviceChange, rule HaltRule) bool {
	if c.State.Final() || ch.Finished == 0 || wave < 0 || wave >= len(c.Waves) {
		return false
	}
	w := c.Waves[wave]
	return w.Finished >= w.Size || ch.Failed > 0 && rule.Trips(w.Size, w.Finished, w.Failed)
}

// decided is what a decision saw: whether it changed the device (a
// repeated report does not), and the campaign's state and current wave
// before it, as read under the campaign's lock when the decision took
// it (so that a change is noted by the one decision that made it).
type decided struct {
	changed bool
	before  store.CampaignState
	wave    int // the campaign's current wave before
}

// reportDecider is the decision of one report: the device's step under
// its row lock, then progress under the campaign's lock when
// mayProgress says the campaign may move.
func reportDecider(r ota.Report, at time.Time, out *decided) store.CampaignDecider {
	ruleOf := func(c store.Campaign) HaltRule {
		return HaltRule{Threshold: c.HaltThreshold, MinFinished: c.HaltMinFinished}
	}
	return store.CampaignDecider{
		Device: func(c store.Campaign, d store.CampaignDevice) (store.DeviceChange, error) {
			row, err := deviceStep(c, d, r, at)
			out.changed, out.before, out.wave = row != nil, c.State, c.CurrentWave
			if err != nil || row == nil {
				return store.DeviceChange{}, err
			}
			ch := store.DeviceChange{Device: row}
			if finished(c, r.State) {
				ch.Finished = 1
				if failedState(r.State) {
					ch.Failed = 1
				}
			}
			return ch, nil
		},
		NeedsCampaign: func(c store.Campaign, d store.CampaignDevice, ch store.DeviceChange) bool {
			return mayProgress(c, d.Wave, ch, ruleOf(c))
		},
		Campaign: func(c store.Campaign, d store.CampaignDevice, ch store.DeviceChange) (*store.CampaignUpdate, error) {
			out.before, out.wave = c.State, c.CurrentWave
			return progress(c, d.Wave, ch, ruleOf(c), at), nil
		},
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
	return store.CampaignDecider{Campaign: func(c store.Campaign, _ store.CampaignDevice, _ store.DeviceChange) (*store.CampaignUpdate, error) {
		out.before, out.wave = c.State, c.CurrentWave
		t := adminTransitions[verb]
		if c.State == t.to {
			return nil, nil
		}
		for _, from := range t.from {
			if c.State == from {
				return &store.CampaignUpdate{State: t.to, CurrentWave: c.CurrentWave, Reason: reason, At: at}, nil
			}
		}
		return nil, admin.Errorf(admin.CodeConflict, "cannot %s a campaign that is %s", verb, c.State)
	}}
}
