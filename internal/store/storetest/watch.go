package storetest

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// The watch contract: product policy, what a status report replaced, and
// the notes behind the clone and outdated-firmware events, each appended
// once however many callers race for it.

// record keeps s and returns what it replaced.
func (f *fixture) record(t *testing.T, s store.DeviceStatus) store.StatusRecorded {
	t.Helper()
	rec, err := f.s.RecordStatus(f.ctx, s)
	must(t, err)
	return rec
}

func statusAt(id identity.ID, d time.Duration, version string, counter uint32, uptime time.Duration) store.DeviceStatus {
	return store.DeviceStatus{Identity: id, ReceivedAt: at(d), FirmwareVersion: version, SecurityCounter: counter,
		BootResult: "ok", EnrolmentAlgorithm: sigalg.ECDSAP256, OperationalAlgorithm: sigalg.Ed25519, Uptime: uptime,
		RemoteAddr: "192.0.2.9"}
}

func testProductPolicy(t *testing.T, f *fixture) {
	hb := store.Product{ID: "beacon", Name: "Beacon", CertValidity: 48 * time.Hour, CloudEndpoint: "mqtts://b.example.com",
		CreatedAt: at(time.Minute), RenewalWindow: time.Hour, HeartbeatInterval: 15 * time.Minute, MinFirmwareVersion: "1.4.0"}
	must(t, f.s.CreateProduct(f.ctx, hb))
	got, err := f.s.GetProduct(f.ctx, hb.ID)
	must(t, err)
	equal(t, "GetProduct with a policy", got, hb)

	window, heartbeat, minimum := 2*time.Hour, time.Duration(0), "2.0.0-rc.1"
	updated, err := f.s.UpdateProduct(f.ctx, hb.ID, store.ProductUpdate{MinFirmwareVersion: &minimum})
	must(t, err)
	want := hb
	want.MinFirmwareVersion = minimum
	equal(t, "UpdateProduct of the minimum only", updated, want)
	updated, err = f.s.UpdateProduct(f.ctx, hb.ID, store.ProductUpdate{RenewalWindow: &window, HeartbeatInterval: &heartbeat})
	must(t, err)
	want.RenewalWindow, want.HeartbeatInterval = window, heartbeat
	equal(t, "UpdateProduct of the durations", updated, want)
	list, err := f.s.ListProducts(f.ctx)
	must(t, err)
	equal(t, "ListProducts after the update", list, []store.Product{want, f.product})
	_, err = f.s.UpdateProduct(f.ctx, "no-such-product", store.ProductUpdate{MinFirmwareVersion: &minimum})
	wantErr(t, "UpdateProduct(unknown)", err, store.ErrNotFound)
}

func testStatusRecorded(t *testing.T, f *fixture) {
	d := f.deviceIn(t, "recorded", store.StateOnboarded)
	first := statusAt(d.id, 5*time.Hour, "1.2.0", 4, time.Hour)
	rec := f.record(t, first)
	equal(t, "first report", rec, store.StatusRecorded{ProductID: f.product.ID})
	second := statusAt(d.id, 6*time.Hour, "1.2.0", 5, 2*time.Hour)
	rec = f.record(t, second)
	equal(t, "second report", rec, store.StatusRecorded{ProductID: f.product.ID, Previous: first})
}

func testFirmwareOutdated(t *testing.T, f *fixture) {
	d := f.deviceIn(t, "firmware", store.StateOnboarded)
	note := func(version, minimum string, want bool) {
		t.Helper()
		ok, err := f.s.NoteFirmwareOutdated(f.ctx, d.id, version, minimum, at(7*time.Hour), version+"<"+minimum)
		must(t, err)
		if ok != want {
			t.Errorf("NoteFirmwareOutdated(%s, %s) = %v, want %v", version, minimum, ok, want)
		}
	}
	note("1.2.0", "1.4.0", false) // no report yet
	f.record(t, statusAt(d.id, 5*time.Hour, "1.2.0", 1, time.Hour))
	note("1.2.0", "1.4.0", true)
	note("1.2.0", "1.4.0", false) // once per version and minimum
	if rec := f.record(t, statusAt(d.id, 6*time.Hour, "1.2.0", 1, 2*time.Hour)); rec.FirmwareNoted != "1.4.0" {
		t.Errorf("same version again: FirmwareNoted %q, want 1.4.0", rec.FirmwareNoted)
	}
	note("1.2.0", "1.6.0", true)  // the minimum rose
	note("1.1.0", "1.6.0", false) // not the version the device reports
	if rec := f.record(t, statusAt(d.id, 7*time.Hour, "1.3.0", 1, 3*time.Hour)); rec.FirmwareNoted != "" {
		t.Errorf("another version: FirmwareNoted %q, want none", rec.FirmwareNoted)
	}
	// Concurrent callers (two replicas, two reports): one event.
	var wg sync.WaitGroup
	var mu sync.Mutex
	won := 0
	for range 8 {
		wg.Go(func() {
			ok, err := f.s.NoteFirmwareOutdated(f.ctx, d.id, "1.3.0", "1.6.0", at(7*time.Hour), "1.3.0<1.6.0")
			if err != nil {
				t.Error(err)
			}
			if ok {
				mu.Lock()
				won++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if won != 1 {
		t.Errorf("%d concurrent notes appended, want 1", won)
	}
	f.settle(t)
	events, err := f.s.ListEvents(f.ctx, store.EventFilter{Kind: store.EventFirmwareOutdated})
	must(t, err)
	var details []string
	for _, e := range events {
		details = append(details, e.Detail)
	}
	equal(t, "firmware.outdated events", details, []string{"1.2.0<1.4.0", "1.2.0<1.6.0", "1.3.0<1.6.0"})
}

func testCloneNotices(t *testing.T, f *fixture) {
	d := f.deviceIn(t, "clone", store.StateOnboarded)
	unknown := identity.FromSPKI([]byte("never imported"))
	_, err := f.s.NoteCloneSuspected(f.ctx, unknown, at(5*time.Hour), time.Hour, "x")
	wantErr(t, "NoteCloneSuspected(unknown)", err, store.ErrNotFound)
	note := func(when time.Duration, want bool) {
		t.Helper()
		ok, err := f.s.NoteCloneSuspected(f.ctx, d.id, at(when), time.Hour, "at "+when.String())
		must(t, err)
		if ok != want {
			t.Errorf("NoteCloneSuspected at %v = %v, want %v", when, ok, want)
		}
	}
	note(5*time.Hour, true)
	note(5*time.Hour+30*time.Minute, false) // within the hour
	note(6*time.Hour, true)
	var wg sync.WaitGroup
	var mu sync.Mutex
	won := 0
	for range 8 {
		wg.Go(func() {
			ok, err := f.s.NoteCloneSuspected(f.ctx, d.id, at(8*time.Hour), time.Hour, "race")
			if err != nil {
				t.Error(err)
			}
			if ok {
				mu.Lock()
				won++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if won != 1 {
		t.Errorf("%d concurrent clone notes appended, want 1", won)
	}
	f.settle(t)
	events, err := f.s.ListEvents(f.ctx, store.EventFilter{Kind: store.EventCloneSuspected, Identity: d.id})
	must(t, err)
	if len(events) != 3 || events[0].Detail != "at 5h0m0s" || !events[2].Time.Equal(at(8*time.Hour)) {
		t.Errorf("clone events: %+v", events)
	}
}

func testOnboardingSource(t *testing.T, f *fixture) {
	d := f.deviceIn(t, "source", store.StateOnboarded)
	_, err := f.s.NoteOnboardingSource(f.ctx, identity.FromSPKI([]byte("never imported")), "192.0.2.1", at(0))
	wantErr(t, "NoteOnboardingSource(unknown)", err, store.ErrNotFound)
	for _, c := range []struct{ source, before string }{{"192.0.2.1", ""}, {"198.51.100.2", "192.0.2.1"}, {"198.51.100.2", "198.51.100.2"}} {
		before, err := f.s.NoteOnboardingSource(f.ctx, d.id, c.source, at(time.Hour))
		must(t, err)
		if before != c.before {
			t.Errorf("NoteOnboardingSource(%s) = %q, want %q", c.source, before, c.before)
		}
	}
}

func testFailedProofs(t *testing.T, f *fixture) {
	d := f.deviceIn(t, "proofs", store.StateRegistered)
	unknown := identity.FromSPKI([]byte("never imported"))
	note := func(id identity.ID, when time.Duration, want int) {
		t.Helper()
		n, err := f.s.NoteFailedProof(f.ctx, id, at(when), 10*time.Minute, 3)
		must(t, err)
		if n != want {
			t.Errorf("NoteFailedProof at %v = %d, want %d", when, n, want)
		}
	}
	for i := range 5 {
		note(unknown, time.Duration(i)*time.Second, 0) // an unknown identity keeps nothing
	}
	note(d.id, 0, 1)
	note(d.id, time.Minute, 2)
	note(d.id, 2*time.Minute, 3)
	note(d.id, 3*time.Minute, 3)  // at most keep
	note(d.id, 11*time.Minute, 2) // the first two left the window
	note(d.id, 30*time.Minute, 1) // all of them did
}

func testSilencePerProduct(t *testing.T, f *fixture) {
	other := store.Product{ID: "other", Name: "Other", CertValidity: time.Hour, CloudEndpoint: "mqtts://o.example.com", CreatedAt: at(0)}
	must(t, f.s.CreateProduct(f.ctx, other))
	mine := f.deviceIn(t, "per-product-mine", store.StateOnboarded)
	devices := makeDevices("per-product-other", 1)
	b := f.batch("per-product-other", "m-per-product-other")
	b.ProductID = other.ID
	f.mustImport(t, b, devices)
	theirs := devices[0].Identity
	must(t, f.s.RecordOnboarding(f.ctx, newCert(theirs, 1, at(2*time.Hour)), at(2*time.Hour)))
	for _, id := range []identity.ID{mine.id, theirs} {
		if rec := f.record(t, statusAt(id, 5*time.Hour, "1", 0, 0)); rec.ProductID == "" {
			t.Errorf("no product recorded for %s", id)
		}
	}
	// Only the product asked for is swept.
	n, err := f.s.NoteSilentDevices(f.ctx, at(8*time.Hour), other.ID, at(7*time.Hour), 0)
	must(t, err)
	f.settle(t)
	events, err := f.s.ListEvents(f.ctx, store.EventFilter{Kind: store.EventDeviceSilent})
	must(t, err)
	if n != 1 || len(events) != 1 || events[0].Identity != theirs {
		t.Errorf("sweep of %q noted %d: %+v, want the other product's device", other.ID, n, events)
	}
	c, err := f.s.CountMonitoring(f.ctx, at(8*time.Hour), nil, map[string]time.Time{f.product.ID: at(4 * time.Hour), other.ID: at(7 * time.Hour)})
	must(t, err)
	if c.Silent != 1 {
		t.Errorf("silent = %d, want 1 (the other product's device only)", c.Silent)
	}
}

// benchRecordStatus is a fleet of 1,000 onboarded devices reporting in
// turn, each report as monitoring sends it (the report it replaces read
// in the same transaction), from parallel callers as the HTTPS server's.
func benchRecordStatus(b *testing.B, f *fixture) {
	devices := makeDevices("bench-status", 1000)
	f.mustImport(b, f.batch("bench-status", "m-bench-status"), devices)
	for i, d := range devices {
		must(b, f.s.RecordOnboarding(f.ctx, newCert(d.Identity, i, at(time.Hour)), at(time.Hour)))
	}
	var n atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			s := statusAt(devices[i%int64(len(devices))].Identity, 2*time.Hour+time.Duration(i)*time.Microsecond, "1.4.2", 3, time.Hour)
			if _, err := f.s.RecordStatus(f.ctx, s); err != nil {
				b.Fatal(err)
			}
		}
	})
}
