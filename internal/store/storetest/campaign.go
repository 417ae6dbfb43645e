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
// device of an open wave of a running campaign only; a decision runs
// under the campaign's lock, so concurrent reports are counted exactly
// and a state change is decided once.

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
	_, _, err = f.s.DecideCampaign(f.ctx, c.ID, identity.ID{}, func(store.Campaign, store.CampaignDevice) (store.CampaignChange, error) {
		return store.CampaignChange{Campaign: &store.CampaignUpdate{State: store.CampaignPaused, CurrentWave: 1, Reason: "look", At: at(8 * time.Hour)}}, nil
	})
	must(t, err)
	d, err = f.s.OfferCampaignDevice(f.ctx, c.ID, second, at(9*time.Hour))
	must(t, err)
	equal(t, "offer in a paused campaign", d.State, "pending")
}

func testCampaignDecide(t *testing.T, f *fixture) {
	devices := f.campaignDevices(t, "decide", 3)
	c := sampleCampaign("cmp_00000000000000b1", f, 2)
	must(t, f.s.CreateCampaign(f.ctx, c, campaignRows(devices, 2)))
	id := devices[0].Identity
	refusal := errors.New("refused by the rules")
	_, _, err := f.s.DecideCampaign(f.ctx, c.ID, id, func(got store.Campaign, d store.CampaignDevice) (store.CampaignChange, error) {
		return store.CampaignChange{Device: &d, Finished: 1, Campaign: &store.CampaignUpdate{State: store.CampaignHalted}}, refusal
	})
	wantErr(t, "a refusing decider", err, refusal)
	after, err := f.s.GetCampaign(f.ctx, c.ID)
	must(t, err)
	equal(t, "nothing changed", after, c)
	_, _, err = f.s.DecideCampaign(f.ctx, c.ID, devices[2].Identity, func(store.Campaign, store.CampaignDevice) (store.CampaignChange, error) {
		t.Error("decider called for a device not targeted")
		return store.CampaignChange{}, nil
	})
	wantErr(t, "a device not targeted", err, store.ErrNotFound)

	got, row, err := f.s.DecideCampaign(f.ctx, c.ID, id, func(got store.Campaign, d store.CampaignDevice) (store.CampaignChange, error) {
		equal(t, "the decider's device", d.State, "pending")
		d.State, d.Reason, d.Detail, d.FirmwareVersion, d.UpdatedAt = "failed", "signature", "bad sig", "1.0.0", at(7*time.Hour)
		return store.CampaignChange{Device: &d, Finished: 1, Failed: 1,
			Campaign: &store.CampaignUpdate{State: store.CampaignHalted, CurrentWave: 0, Reason: "too many", At: at(7 * time.Hour)}}, nil
	})
	must(t, err)
	want := c
	want.State, want.Reason, want.UpdatedAt = store.CampaignHalted, "too many", at(7*time.Hour)
	want.Waves = []store.CampaignWave{{Size: 2, Finished: 1, Failed: 1}}
	equal(t, "the campaign after", got, want)
	equal(t, "the device after", row, store.CampaignDevice{CampaignID: c.ID, Identity: id, State: "failed", Reason: "signature",
		Detail: "bad sig", FirmwareVersion: "1.0.0", UpdatedAt: at(7 * time.Hour).UTC()})
	stored, err := f.s.GetCampaignDevice(f.ctx, c.ID, id)
	must(t, err)
	equal(t, "GetCampaignDevice", stored, row)
}

// testCampaignDecideConcurrently reports every device of a wave at once:
// each decider sees the counts of the ones before it, so the wave's
// counters are exact and the state change happens in exactly one.
func testCampaignDecideConcurrently(t *testing.T, f *fixture) {
	const n = 12
	devices := f.campaignDevices(t, "race", n+1)
	c := sampleCampaign("cmp_00000000000000c1", f, n)
	must(t, f.s.CreateCampaign(f.ctx, c, campaignRows(devices, n)))
	var mu sync.Mutex
	halts := 0
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, err := f.s.DecideCampaign(f.ctx, c.ID, devices[i].Identity, func(got store.Campaign, d store.CampaignDevice) (store.CampaignChange, error) {
				d.State, d.Reason, d.UpdatedAt = "failed", "no-boot", at(8*time.Hour)
				ch := store.CampaignChange{Device: &d, Finished: 1, Failed: 1}
				if got.State == store.CampaignRunning && got.Waves[0].Failed+1 == 5 {
					ch.Campaign = &store.CampaignUpdate{State: store.CampaignHalted, Reason: fmt.Sprint("halt at ", i), At: at(8 * time.Hour)}
					mu.Lock()
					halts++
					mu.Unlock()
				}
				return ch, nil
			})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		must(t, err)
	}
	got, err := f.s.GetCampaign(f.ctx, c.ID)
	must(t, err)
	equal(t, "counters after concurrent reports", got.Waves, []store.CampaignWave{{Size: n, Finished: n, Failed: n}})
	equal(t, "state", got.State, store.CampaignHalted)
	equal(t, "halts decided", halts, 1)
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
