package storetest

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// The campaigns' contract: a campaign round trips with its waves and
// devices, all or nothing; candidates are the onboarded devices of a
// product with their last reported firmware; an offer moves a pending
// device of an open wave of a running campaign only; a report's decision
// runs under its device's lock and, when it may change the campaign,
// under the campaign's lock on counts that include it, so concurrent
// reports are counted exactly and a state change is decided once.

// campaignDevices imports n devices and onboards all but the last.
func (f *fixture) campaignDevices(t *testing.T, seed string, n int) []store.Device {
	t.Helper()
	devices := makeDevices(seed, n)
	f.mustImport(t, f.batch(seed, "m-"+seed), devices)
	for i, d := range devices[:n-1] {
		must(t, f.s.RecordOnboarding(f.ctx, newCert(d.Identity, 1000+i, at(2*time.Hour)), at(2*time.Hour)))
	}
	return devices
}

func sampleCampaign(id string, f *fixture, sizes ...int) store.Campaign {
	c := store.Campaign{ID: id, ProductID: f.product.ID,
		Image:     store.CampaignImage{Digest: sha256.Sum256([]byte(id)), Version: "2.0.0", Size: 4096, SecurityCounter: 4294967295},
		MigrateTo: sigalg.MLDSA65, Target: "product=" + f.product.ID, WaveSpec: "1,100%", HaltThreshold: 0.25, HaltMinFinished: 2,
		State: store.CampaignRunning, Reason: "", CreatedBy: "token:abcdefgh", CreatedAt: at(5 * time.Hour), UpdatedAt: at(5 * time.Hour)}
	for _, s := range sizes {
		c.Waves = append(c.Waves, store.CampaignWave{Size: s})
		c.DeviceCount += s
	}
	return c
}

func campaignRows(devices []store.Device, sizes ...int) []store.CampaignDevice {
	var out []store.CampaignDevice
	i := 0
	for w, s := range sizes {
		for range s {
			out = append(out, store.CampaignDevice{Identity: devices[i].Identity, Wave: w, State: "pending"})
			i++
		}
	}
	return out
}

func testCampaigns(t *testing.T, f *fixture) {
	devices := f.campaignDevices(t, "cmp", 5)
	f.record(t, statusAt(devices[0].Identity, 3*time.Hour, "1.0.0", 1, time.Minute))
	c := sampleCampaign("cmp_0000000000000001", f, 1, 3)
	rows := campaignRows(devices, 1, 3)

	// Refusals change nothing.
	bad := c
	bad.ProductID = "no-such-product"
	wantErr(t, "CreateCampaign of an unknown product", f.s.CreateCampaign(f.ctx, bad, rows), store.ErrNotFound)
	stranger := append(campaignRows(devices, 1), store.CampaignDevice{Identity: identity.FromSPKI([]byte("stranger")), State: "pending"})
	wantErr(t, "CreateCampaign of an unknown device", f.s.CreateCampaign(f.ctx, sampleCampaign(c.ID, f, 2), stranger), store.ErrNotFound)
	_, err := f.s.GetCampaign(f.ctx, c.ID)
	wantErr(t, "GetCampaign after refusals", err, store.ErrNotFound)

	must(t, f.s.CreateCampaign(f.ctx, c, rows))
	wantErr(t, "CreateCampaign again", f.s.CreateCampaign(f.ctx, c, rows), store.ErrExists)
	got, err := f.s.GetCampaign(f.ctx, c.ID)
	must(t, err)
	equal(t, "GetCampaign", got, c)

	// A device takes part in one open campaign at a time: c ends before
	// plain targets one of its devices again.
	busy := sampleCampaign("cmp_0000000000000003", f, 1)
	var be *store.BusyDevicesError
	err = f.s.CreateCampaign(f.ctx, busy, campaignRows(devices[1:], 1))
	if !errors.As(err, &be) || !errors.Is(err, store.ErrConflict) {
		t.Fatalf("CreateCampaign of a busy device: %v, want a BusyDevicesError", err)
	}
	equal(t, "the busy devices", be.Devices, []identity.ID{devices[1].Identity})
	c, _, err = f.s.DecideCampaign(f.ctx, c.ID, identity.ID{},
		campaignOnly(store.CampaignUpdate{State: store.CampaignHalted, Reason: "halt", At: at(5*time.Hour + time.Minute)}))
	must(t, err)
	plain := sampleCampaign("cmp_0000000000000002", f, 1)
	plain.MigrateTo, plain.CreatedAt, plain.State = "", at(6*time.Hour), store.CampaignPaused
	must(t, f.s.CreateCampaign(f.ctx, plain, campaignRows(devices[1:], 1)))
	list, err := f.s.ListCampaigns(f.ctx, store.CampaignFilter{})
	must(t, err)
	equal(t, "ListCampaigns, newest first", list, []store.Campaign{plain, c})
	list, err = f.s.ListCampaigns(f.ctx, store.CampaignFilter{States: []store.CampaignState{store.CampaignRunning, store.CampaignHalted}})
	must(t, err)
	equal(t, "ListCampaigns of running or halted", list, []store.Campaign{c})
	list, err = f.s.ListCampaigns(f.ctx, store.CampaignFilter{ProductID: "other"})
	must(t, err)
	equal(t, "ListCampaigns of another product", len(list), 0)

	members, err := f.s.CampaignMembers(f.ctx, c.ID)
	must(t, err)
	equal(t, "CampaignMembers", members, sortedIDs(map[identity.ID]bool{devices[0].Identity: true,
		devices[1].Identity: true, devices[2].Identity: true, devices[3].Identity: true}))

	cands, err := f.s.CampaignCandidates(f.ctx, store.CandidateFilter{ProductID: f.product.ID})
	must(t, err)
	want := map[identity.ID]store.CampaignCandidate{}
	for _, d := range devices[:4] { // the fifth is not onboarded
		want[d.Identity] = store.CampaignCandidate{Identity: d.Identity, BatchID: "cmp", Algorithm: d.Algorithm}
	}
	first := want[devices[0].Identity]
	first.FirmwareVersion = "1.0.0"
	want[devices[0].Identity] = first
	var wantList []store.CampaignCandidate
	for _, id := range sortedIDs(want) {
		wantList = append(wantList, want[id])
	}
	equal(t, "CampaignCandidates", cands, wantList)
	cands, err = f.s.CampaignCandidates(f.ctx, store.CandidateFilter{ProductID: f.product.ID, Algorithm: devices[0].Algorithm, BatchID: "cmp"})
	must(t, err)
	for _, cd := range cands {
		if cd.Algorithm != devices[0].Algorithm {
			t.Errorf("CampaignCandidates by algorithm returned %+v", cd)
		}
	}
	cands, err = f.s.CampaignCandidates(f.ctx, store.CandidateFilter{ProductID: f.product.ID, BatchID: "other"})
	must(t, err)
	equal(t, "CampaignCandidates of another batch", len(cands), 0)

	page, err := f.s.ListCampaignDevices(f.ctx, c.ID, store.CampaignDeviceFilter{Limit: 3})
	must(t, err)
	equal(t, "first page", len(page), 3)
	rest, err := f.s.ListCampaignDevices(f.ctx, c.ID, store.CampaignDeviceFilter{After: page[2].Identity})
	must(t, err)
	equal(t, "second page", len(rest), 1)
	if string(page[2].Identity[:]) >= string(rest[0].Identity[:]) {
		t.Error("pages are not in identity order")
	}
	equal(t, "a row", rest[0], store.CampaignDevice{CampaignID: c.ID, Identity: rest[0].Identity, Wave: rest[0].Wave,
		State: "pending", UpdatedAt: c.CreatedAt.UTC()})
	counts, err := f.s.CountCampaignDevices(f.ctx, c.ID)
	must(t, err)
	equal(t, "CountCampaignDevices", counts, []store.CampaignCount{{Wave: 0, State: "pending", N: 1}, {Wave: 1, State: "pending", N: 3}})
	mine, err := f.s.DeviceCampaigns(f.ctx, devices[1].Identity)
	must(t, err)
	equal(t, "DeviceCampaigns, newest campaign first", []string{mine[0].CampaignID, mine[1].CampaignID}, []string{plain.ID, c.ID})
	_, err = f.s.GetCampaignDevice(f.ctx, plain.ID, devices[0].Identity)
	wantErr(t, "GetCampaignDevice of a device not targeted", err, store.ErrNotFound)
}

func testCampaignOffer(t *testing.T, f *fixture) {
	devices := f.campaignDevices(t, "offer", 4)
	c := sampleCampaign("cmp_00000000000000a1", f, 1, 2)
	must(t, f.s.CreateCampaign(f.ctx, c, campaignRows(devices, 1, 2)))
	first, second := devices[0].Identity, devices[1].Identity
	d, err := f.s.OfferCampaignDevice(f.ctx, c.ID, second, at(6*time.Hour))
	must(t, err)
	equal(t, "offer to a device of a wave not open", d.State, "pending")
	d, err = f.s.OfferCampaignDevice(f.ctx, c.ID, first, at(6*time.Hour))
	must(t, err)
	equal(t, "offer to the first wave", d, store.CampaignDevice{CampaignID: c.ID, Identity: first, Wave: 0, State: "offered", UpdatedAt: at(6 * time.Hour).UTC()})
	d, err = f.s.OfferCampaignDevice(f.ctx, c.ID, first, at(7*time.Hour))
	must(t, err)
	equal(t, "offer again changes nothing", d.UpdatedAt, at(6*time.Hour).UTC())
	_, err = f.s.OfferCampaignDevice(f.ctx, c.ID, devices[3].Identity, at(6*time.Hour))
	wantErr(t, "offer to a device not targeted", err, store.ErrNotFound)

	// Open the second wave but pause: still no offer.
	_, _, err = f.s.DecideCampaign(f.ctx, c.ID, identity.ID{},
		campaignOnly(store.CampaignUpdate{State: store.CampaignPaused, CurrentWave: 1, Reason: "look", At: at(8 * time.Hour)}))
	must(t, err)
	d, err = f.s.OfferCampaignDevice(f.ctx, c.ID, second, at(9*time.Hour))
	must(t, err)
	equal(t, "offer in a paused campaign", d.State, "pending")
}

// campaignOnly is a decision about the campaign alone that writes u.
func campaignOnly(u store.CampaignUpdate) store.CampaignDecider {
	return store.CampaignDecider{Campaign: func(store.Campaign, store.CampaignDevice, store.DeviceChange) (*store.CampaignUpdate, error) {
		return &u, nil
	}}
}

func testCampaignDecide(t *testing.T, f *fixture) {
	devices := f.campaignDevices(t, "decide", 4)
	c := sampleCampaign("cmp_00000000000000b1", f, 3)
	must(t, f.s.CreateCampaign(f.ctx, c, campaignRows(devices, 3)))
	id := devices[0].Identity
	refusal := errors.New("refused by the rules")
	_, _, err := f.s.DecideCampaign(f.ctx, c.ID, id, store.CampaignDecider{
		Device: func(got store.Campaign, d store.CampaignDevice) (store.DeviceChange, error) {
			return store.DeviceChange{Device: &d, Finished: 1}, refusal
		},
		Campaign: func(store.Campaign, store.CampaignDevice, store.DeviceChange) (*store.CampaignUpdate, error) {
			t.Error("campaign step after a refused device step")
			return nil, nil
		}})
	wantErr(t, "a refusing device step", err, refusal)
	// A refusal of the campaign's step undoes the device's.
	_, _, err = f.s.DecideCampaign(f.ctx, c.ID, id, store.CampaignDecider{
		Device: func(got store.Campaign, d store.CampaignDevice) (store.DeviceChange, error) {
			d.State = "failed"
			return store.DeviceChange{Device: &d, Finished: 1, Failed: 1}, nil
		},
		Campaign: func(store.Campaign, store.CampaignDevice, store.DeviceChange) (*store.CampaignUpdate, error) {
			return &store.CampaignUpdate{State: store.CampaignHalted}, refusal
		}})
	wantErr(t, "a refusing campaign step", err, refusal)
	after, err := f.s.GetCampaign(f.ctx, c.ID)
	must(t, err)
	equal(t, "nothing changed", after, c)
	row, err := f.s.GetCampaignDevice(f.ctx, c.ID, id)
	must(t, err)
	equal(t, "the device unchanged", row.State, "pending")
	_, _, err = f.s.DecideCampaign(f.ctx, c.ID, devices[3].Identity, store.CampaignDecider{
		Device: func(store.Campaign, store.CampaignDevice) (store.DeviceChange, error) {
			t.Error("decider called for a device not targeted")
			return store.DeviceChange{}, nil
		}})
	wantErr(t, "a device not targeted", err, store.ErrNotFound)
	_, _, err = f.s.DecideCampaign(f.ctx, "cmp_00000000000000bf", id, store.CampaignDecider{
		Device: func(store.Campaign, store.CampaignDevice) (store.DeviceChange, error) {
			t.Error("decider called for a campaign that does not exist")
			return store.DeviceChange{}, nil
		}})
	wantErr(t, "a campaign that does not exist", err, store.ErrNotFound)
	_, _, err = f.s.DecideCampaign(f.ctx, "cmp_00000000000000bf", identity.ID{}, campaignOnly(store.CampaignUpdate{State: store.CampaignHalted}))
	wantErr(t, "a decision about a campaign that does not exist", err, store.ErrNotFound)

	// A change that cannot move the campaign: no campaign step; the
	// campaign comes back with the wave's counters after the change.
	got, row, err := f.s.DecideCampaign(f.ctx, c.ID, id, store.CampaignDecider{
		Device: func(got store.Campaign, d store.CampaignDevice) (store.DeviceChange, error) {
			equal(t, "the device step's campaign", got, c)
			equal(t, "the device step's device", d.State, "pending")
			d.State, d.Reason, d.Detail, d.FirmwareVersion, d.UpdatedAt = "failed", "signature", "bad sig", "1.0.0", at(7*time.Hour)
			return store.DeviceChange{Device: &d, Finished: 1, Failed: 1}, nil
		},
		NeedsCampaign: func(got store.Campaign, d store.CampaignDevice, ch store.DeviceChange) bool {
			equal(t, "the counters NeedsCampaign sees", got.Waves, []store.CampaignWave{{Size: 3, Finished: 1, Failed: 1}})
			equal(t, "the row NeedsCampaign sees", d.State, "failed")
			return false
		},
		Campaign: func(store.Campaign, store.CampaignDevice, store.DeviceChange) (*store.CampaignUpdate, error) {
			t.Error("campaign step though NeedsCampaign said no")
			return nil, nil
		}})
	must(t, err)
	want := c
	want.Waves = []store.CampaignWave{{Size: 3, Finished: 1, Failed: 1}}
	equal(t, "the campaign after a device's change", got, want)
	equal(t, "the device after", row, store.CampaignDevice{CampaignID: c.ID, Identity: id, State: "failed", Reason: "signature",
		Detail: "bad sig", FirmwareVersion: "1.0.0", UpdatedAt: at(7 * time.Hour).UTC()})
	stored, err := f.s.GetCampaignDevice(f.ctx, c.ID, id)
	must(t, err)
	equal(t, "GetCampaignDevice", stored, row)

	// A repeated report changes nothing and goes no further.
	_, _, err = f.s.DecideCampaign(f.ctx, c.ID, id, store.CampaignDecider{
		Device: func(store.Campaign, store.CampaignDevice) (store.DeviceChange, error) {
			return store.DeviceChange{}, nil
		},
		Campaign: func(store.Campaign, store.CampaignDevice, store.DeviceChange) (*store.CampaignUpdate, error) {
			t.Error("campaign step after no change")
			return nil, nil
		}})
	must(t, err)

	// A change that may: the campaign step sees the counters after it.
	second := devices[1].Identity
	got, row, err = f.s.DecideCampaign(f.ctx, c.ID, second, store.CampaignDecider{
		Device: func(got store.Campaign, d store.CampaignDevice) (store.DeviceChange, error) {
			d.State, d.UpdatedAt = "rolled-back", at(8*time.Hour)
			return store.DeviceChange{Device: &d, Finished: 1, Failed: 1}, nil
		},
		NeedsCampaign: func(store.Campaign, store.CampaignDevice, store.DeviceChange) bool { return true },
		Campaign: func(got store.Campaign, d store.CampaignDevice, ch store.DeviceChange) (*store.CampaignUpdate, error) {
			equal(t, "the counters the campaign step sees", got.Waves, []store.CampaignWave{{Size: 3, Finished: 2, Failed: 2}})
			equal(t, "the row the campaign step sees", d.State, "rolled-back")
			equal(t, "the change the campaign step sees", ch.Failed, 1)
			return &store.CampaignUpdate{State: store.CampaignHalted, CurrentWave: 0, Reason: "too many", At: at(8 * time.Hour)}, nil
		}})
	must(t, err)
	want.State, want.Reason, want.UpdatedAt = store.CampaignHalted, "too many", at(8*time.Hour)
	want.Waves = []store.CampaignWave{{Size: 3, Finished: 2, Failed: 2}}
	equal(t, "the campaign after", got, want)
	equal(t, "the second device after", row.State, "rolled-back")
	stored2, err := f.s.GetCampaign(f.ctx, c.ID)
	must(t, err)
	equal(t, "GetCampaign after", stored2, got)
}

// testRules is internal/campaign's rules in small: a report moves its
// device to a final state once; the wave's halt-th failure halts the
// campaign, and the current wave's last report opens the next. Each
// campaign change it decides is noted with the counts it saw.
type testRules struct {
	halt int
	mu   sync.Mutex
	// changes are the campaign changes decided, calls the campaign steps
	// run.
	changes []string
	calls   int
}

func (r *testRules) report(state string, failed bool, when time.Time) store.CampaignDecider {
	return store.CampaignDecider{
		Device: func(c store.Campaign, d store.CampaignDevice) (store.DeviceChange, error) {
			if d.State != "pending" {
				return store.DeviceChange{}, nil
			}
			d.State, d.UpdatedAt = state, when
			ch := store.DeviceChange{Device: &d, Finished: 1}
			if failed {
				ch.Failed = 1
			}
			return ch, nil
		},
		NeedsCampaign: func(c store.Campaign, d store.CampaignDevice, ch store.DeviceChange) bool {
			w := c.Waves[d.Wave]
			return w.Finished == w.Size || ch.Failed > 0 && w.Failed >= r.halt
		},
		Campaign: func(c store.Campaign, d store.CampaignDevice, ch store.DeviceChange) (*store.CampaignUpdate, error) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.calls++
			if c.State != store.CampaignRunning {
				return nil, nil
			}
			w := c.Waves[d.Wave]
			switch {
			case ch.Failed > 0 && w.Failed >= r.halt:
				why := fmt.Sprintf("halt: %d failed of %d finished", w.Failed, w.Finished)
				r.changes = append(r.changes, why)
				return &store.CampaignUpdate{State: store.CampaignHalted, CurrentWave: c.CurrentWave, Reason: why, At: when}, nil
			case d.Wave == c.CurrentWave && w.Finished == w.Size:
				why := fmt.Sprintf("open wave %d: %d of %d finished", c.CurrentWave+1, w.Finished, w.Size)
				r.changes = append(r.changes, why)
				return &store.CampaignUpdate{State: c.State, CurrentWave: c.CurrentWave + 1, Reason: why, At: when}, nil
			}
			return nil, nil
		},
	}
}

// reportAll reports every device of devices at once.
func reportAll(t *testing.T, f *fixture, campaignID string, devices []store.Device, decide func(i int) store.CampaignDecider) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, len(devices))
	for i, d := range devices {
		wg.Go(func() {
			_, _, err := f.s.DecideCampaign(f.ctx, campaignID, d.Identity, decide(i))
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		must(t, err)
	}
}

// testCampaignDecideConcurrently reports every device of a wave at once,
// first all succeeding, then all failing: the wave's counters are exact,
// and the campaign change is decided once, by the report whose counts
// first call for it (the wave's last; the halt-th failure).
func testCampaignDecideConcurrently(t *testing.T, f *fixture) {
	const n = 12
	devices := f.campaignDevices(t, "race", 2*n+2)

	open := sampleCampaign("cmp_00000000000000c1", f, n, 1)
	must(t, f.s.CreateCampaign(f.ctx, open, campaignRows(devices, n, 1)))
	rules := &testRules{halt: 1000}
	reportAll(t, f, open.ID, devices[:n], func(int) store.CampaignDecider { return rules.report("booted", false, at(8*time.Hour)) })
	got, err := f.s.GetCampaign(f.ctx, open.ID)
	must(t, err)
	equal(t, "counters after concurrent successes", got.Waves, []store.CampaignWave{{Size: n, Finished: n}, {Size: 1}})
	equal(t, "state and wave", []any{got.State, got.CurrentWave}, []any{store.CampaignRunning, 1})
	equal(t, "changes decided", rules.changes, []string{fmt.Sprintf("open wave 1: %d of %d finished", n, n)})
	equal(t, "campaign steps run", rules.calls, 1)

	halt := sampleCampaign("cmp_00000000000000c2", f, n)
	must(t, f.s.CreateCampaign(f.ctx, halt, campaignRows(devices[n+1:], n)))
	rules = &testRules{halt: 5}
	reportAll(t, f, halt.ID, devices[n+1:2*n+1], func(int) store.CampaignDecider { return rules.report("failed", true, at(8*time.Hour)) })
	got, err = f.s.GetCampaign(f.ctx, halt.ID)
	must(t, err)
	equal(t, "counters after concurrent failures", got.Waves, []store.CampaignWave{{Size: n, Finished: n, Failed: n}})
	equal(t, "state", got.State, store.CampaignHalted)
	equal(t, "changes decided", rules.changes, []string{"halt: 5 failed of 5 finished"})
	equal(t, "reason", got.Reason, "halt: 5 failed of 5 finished")
	counts, err := f.s.CountCampaignDevices(f.ctx, halt.ID)
	must(t, err)
	equal(t, "rows after concurrent failures", counts, []store.CampaignCount{{Wave: 0, State: "failed", N: n}})
}

// CampaignReportsOverlap is the contract of a store whose reports take
// row locks rather than one writer (PostgreSQL): while one report's
// transaction is open, holding its device's row, reports of the
// campaign's other devices and an administrative halt complete; the
// open report, which read the campaign as running, then finishes the
// wave and its campaign step sees the halt (fresh counts, fresh state)
// and changes nothing. A store that held the campaign's row from the
// start of a report would deadlock here.
func CampaignReportsOverlap(t *testing.T, open func(t *testing.T) store.Store) {
	f := newFixture(t, open)
	devices := f.campaignDevices(t, "overlap", 4)
	c := sampleCampaign("cmp_00000000000000e1", f, 3)
	must(t, f.s.CreateCampaign(f.ctx, c, campaignRows(devices, 3)))
	rules := &testRules{halt: 1000}
	var once sync.Once
	first := rules.report("booted", false, at(9*time.Hour))
	device := first.Device
	first.Device = func(got store.Campaign, d store.CampaignDevice) (store.DeviceChange, error) {
		equal(t, "the first report's campaign", got.State, store.CampaignRunning)
		once.Do(func() {
			_, _, err := f.s.DecideCampaign(f.ctx, c.ID, devices[1].Identity, rules.report("booted", false, at(9*time.Hour)))
			must(t, err)
			_, _, err = f.s.DecideCampaign(f.ctx, c.ID, devices[2].Identity, rules.report("failed", true, at(9*time.Hour)))
			must(t, err)
			_, _, err = f.s.DecideCampaign(f.ctx, c.ID, identity.ID{},
				campaignOnly(store.CampaignUpdate{State: store.CampaignHalted, Reason: "operator", At: at(9 * time.Hour)}))
			must(t, err)
		})
		return device(got, d)
	}
	var seen store.Campaign
	campaignStep := first.Campaign
	first.Campaign = func(got store.Campaign, d store.CampaignDevice, ch store.DeviceChange) (*store.CampaignUpdate, error) {
		seen = got
		return campaignStep(got, d, ch)
	}
	after, row, err := f.s.DecideCampaign(f.ctx, c.ID, devices[0].Identity, first)
	must(t, err)
	equal(t, "the campaign step's campaign", []any{seen.State, seen.Reason, seen.Waves},
		[]any{store.CampaignHalted, "operator", []store.CampaignWave{{Size: 3, Finished: 3, Failed: 1}}})
	equal(t, "changes decided", len(rules.changes), 0)
	equal(t, "the campaign after", []any{after.State, after.Reason, after.CurrentWave, after.Waves},
		[]any{store.CampaignHalted, "operator", 0, []store.CampaignWave{{Size: 3, Finished: 3, Failed: 1}}})
	equal(t, "the late report's row", row.State, "booted")
}

// BenchmarkCreateCampaign creates a campaign of 100,000 devices (three
// waves) in a fresh store per iteration, the largest target a campaign
// takes: the bulk insert that resolving a target ends with.
func BenchmarkCreateCampaign(b *testing.B, open func(b *testing.B) store.Store) {
	const n = 100_000
	devices := makeDevicesOf("bench", n, classes[:1])
	sizes := []int{1000, 24_000, 75_000}
	rows := campaignRows(devices, sizes...)
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		f := newFixture(b, open)
		f.mustImport(b, f.batch("bench", "m-bench"), devices)
		c := sampleCampaign(fmt.Sprintf("cmp_%016x", i), f, sizes...)
		b.StartTimer()
		must(b, f.s.CreateCampaign(f.ctx, c, rows))
		b.StopTimer()
		f.s.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "devices/s")
}
