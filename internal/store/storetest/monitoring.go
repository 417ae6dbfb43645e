package storetest

import (
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// The monitoring contract: status reports, the device event log written
// with every state change, and the sweeps that report each expiring
// certificate once per threshold and each silence once.

func testStatusReports(t *testing.T, f *fixture) {
	d := f.deviceIn(t, "status", store.StateOnboarded)
	report := store.DeviceStatus{Identity: d.id, ReceivedAt: at(5 * time.Hour), FirmwareVersion: "1.2.3",
		SecurityCounter: 7, BootResult: "ok", EnrolmentAlgorithm: sigalg.ECDSAP256, OperationalAlgorithm: sigalg.Ed25519,
		Uptime: 3600 * time.Second, RemoteAddr: "192.0.2.1"}
	_, err := f.s.GetStatus(f.ctx, d.id)
	wantErr(t, "GetStatus before any report", err, store.ErrNotFound)
	unknown := report
	unknown.Identity = identity.FromSPKI([]byte("never imported"))
	_, err = f.s.RecordStatus(f.ctx, unknown)
	wantErr(t, "RecordStatus of an unknown device", err, store.ErrNotFound)
	_, err = f.s.GetStatus(f.ctx, unknown.Identity)
	wantErr(t, "GetStatus of the refused report", err, store.ErrNotFound)

	f.record(t, report)
	got, err := f.s.GetStatus(f.ctx, d.id)
	must(t, err)
	equal(t, "first report", got, report)

	later := report
	later.ReceivedAt, later.FirmwareVersion, later.SecurityCounter, later.BootResult = at(6*time.Hour), "1.3.0", 4294967295, "fallback"
	f.record(t, later)
	got, err = f.s.GetStatus(f.ctx, d.id)
	must(t, err)
	equal(t, "a later report replaces the first", got, later)
}

// kinds is the kinds of events, in order.
func kinds(events []store.DeviceEvent) []store.EventKind {
	out := make([]store.EventKind, len(events))
	for i, e := range events {
		out[i] = e.Kind
	}
	return out
}

func testDeviceEvents(t *testing.T, f *fixture) {
	// deviceIn onboards (two certificates: an onboarding and a renewal),
	// then suspends at at(4h).
	d := f.deviceIn(t, "events", store.StateSuspended)
	other := f.deviceIn(t, "events-other", store.StateRegistered)
	steps := []struct {
		tr     store.Transition
		id     identity.ID
		reason string
	}{
		{store.TransitionResume, d.id, "understood"},
		{store.TransitionSuspend, d.id, "again"},
		{store.TransitionSuspend, d.id, "again, retried: no change, no event"},
		{store.TransitionDecommission, d.id, "end of life"},
		{store.TransitionReprovision, d.id, "refurbished"},
		{store.TransitionRevoke, other.id, "key leaked"},
	}
	for i, s := range steps {
		_, err := f.s.TransitionDevice(f.ctx, s.id, store.TransitionRequest{Transition: s.tr, Reason: s.reason, At: at(time.Duration(5+i) * time.Hour)})
		must(t, err)
	}
	// A transition refused changes nothing, and writes no event.
	_, err := f.s.TransitionDevice(f.ctx, other.id, store.TransitionRequest{Transition: store.TransitionResume, Reason: "no", At: at(20 * time.Hour)})
	wantErr(t, "resume a revoked device", err, store.ErrTransitionNotAllowed)

	f.settle(t)
	all, err := f.s.ListEvents(f.ctx, store.EventFilter{})
	must(t, err)
	want := []store.DeviceEvent{
		{Kind: store.EventOnboarded, Identity: d.id, Time: at(2 * time.Hour).UTC()},
		{Kind: store.EventRenewed, Identity: d.id, Time: at(3 * time.Hour).UTC(), Serial: d.certs[1].Serial},
		{Kind: store.EventSuspended, Identity: d.id, Time: at(4 * time.Hour).UTC(), Detail: "setup"},
		{Kind: store.EventResumed, Identity: d.id, Time: at(5 * time.Hour).UTC(), Detail: "understood"},
		{Kind: store.EventSuspended, Identity: d.id, Time: at(6 * time.Hour).UTC(), Detail: "again"},
		{Kind: store.EventDecommissioned, Identity: d.id, Time: at(8 * time.Hour).UTC(), Detail: "end of life"},
		{Kind: store.EventReprovisioned, Identity: d.id, Time: at(9 * time.Hour).UTC(), Detail: "refurbished"},
		{Kind: store.EventRevoked, Identity: other.id, Time: at(10 * time.Hour).UTC(), Detail: "key leaked"},
	}
	if len(all) != len(want) {
		t.Fatalf("events = %v, want %d: %v", kinds(all), len(want), kinds(want))
	}
	for i := range all {
		if i > 0 && all[i].Seq <= all[i-1].Seq {
			t.Errorf("event %d: seq %d after %d, want increasing", i, all[i].Seq, all[i-1].Seq)
		}
		want[i].Seq = all[i].Seq
		equal(t, "event "+string(want[i].Kind), all[i], want[i])
	}
	// Newest first, page by page before a seq: the same events reversed.
	var newest []store.DeviceEvent
	for before := int64(0); ; {
		page, err := f.s.ListEvents(f.ctx, store.EventFilter{Newest: true, BeforeSeq: before, Limit: 3})
		must(t, err)
		if len(page) == 0 {
			break
		}
		newest = append(newest, page...)
		before = page[len(page)-1].Seq
	}
	if len(newest) != len(all) {
		t.Fatalf("newest first: %d events, want %d", len(newest), len(all))
	}
	for i := range newest {
		equal(t, "newest first", newest[i], all[len(all)-1-i])
	}
	byKind, err := f.s.ListEvents(f.ctx, store.EventFilter{Newest: true, Kind: store.EventSuspended})
	must(t, err)
	if len(byKind) != 2 || byKind[0].Detail != "again" || byKind[1].Detail != "setup" {
		t.Errorf("newest suspensions: %+v, want again then setup", byKind)
	}
	// After a reprovision the device onboards afresh: an onboarding, not
	// a renewal.
	c := newCert(d.id, 9, at(12*time.Hour))
	must(t, f.s.RecordOnboarding(f.ctx, c, at(12*time.Hour)))
	f.settle(t)
	page, err := f.s.ListEvents(f.ctx, store.EventFilter{AfterSeq: all[len(all)-1].Seq})
	must(t, err)
	if len(page) != 1 || page[0].Kind != store.EventOnboarded || !page[0].Time.Equal(at(12*time.Hour)) {
		t.Errorf("after reprovision and onboarding: %+v, want one device.onboarded at 12h", page)
	}

	// Filters and pages.
	f.settle(t)
	suspended, err := f.s.ListEvents(f.ctx, store.EventFilter{Kind: store.EventSuspended})
	must(t, err)
	if len(suspended) != 2 || suspended[0].Detail != "setup" || suspended[1].Detail != "again" {
		t.Errorf("kind filter: %+v", suspended)
	}
	f.settle(t)
	mine, err := f.s.ListEvents(f.ctx, store.EventFilter{Identity: other.id})
	must(t, err)
	if len(mine) != 1 || mine[0].Kind != store.EventRevoked {
		t.Errorf("identity filter: %+v", mine)
	}
	var paged []store.DeviceEvent
	for after := int64(0); ; {
		f.settle(t)
		p, err := f.s.ListEvents(f.ctx, store.EventFilter{AfterSeq: after, Limit: 3})
		must(t, err)
		if len(p) > 3 {
			t.Fatalf("page of %d with limit 3", len(p))
		}
		if len(p) == 0 {
			break
		}
		paged = append(paged, p...)
		after = p[len(p)-1].Seq
	}
	if len(paged) != len(all)+1 {
		t.Errorf("paging read %d events, want %d", len(paged), len(all)+1)
	}
}

// expiringCert is a certificate of id, issued at at(0), that expires
// after d.
func expiringCert(id identity.ID, n int, d time.Duration) store.Certificate {
	c := newCert(id, n, at(0))
	c.NotAfter = at(d)
	return c
}

func testExpirySweep(t *testing.T, f *fixture) {
	const day = 24 * time.Hour
	devices := makeDevices("expiry", 5)
	f.mustImport(t, f.batch("expiry", "m-expiry"), devices)
	now := at(0)
	// Expires in 5 days, in 20, in 60, already expired; and one renewed
	// (its old certificate, expiring in 3 days, is superseded).
	for i, d := range []time.Duration{5 * day, 20 * day, 60 * day, -day} {
		must(t, f.s.RecordOnboarding(f.ctx, expiringCert(devices[i].Identity, 1, d), now))
	}
	must(t, f.s.RecordOnboarding(f.ctx, expiringCert(devices[4].Identity, 1, 3*day), now))
	must(t, f.s.RecordOnboarding(f.ctx, expiringCert(devices[4].Identity, 2, 300*day), now))
	// A suspended device's certificate is on hold: not reported.
	held := f.deviceIn(t, "expiry-held", store.StateRegistered)
	must(t, f.s.RecordOnboarding(f.ctx, expiringCert(held.id, 1, 2*day), now))
	_, err := f.s.TransitionDevice(f.ctx, held.id, store.TransitionRequest{Transition: store.TransitionSuspend, Reason: "q", At: now})
	must(t, err)

	note := func(within time.Duration, when time.Time, want int) {
		t.Helper()
		n, err := f.s.NoteExpiringCertificates(f.ctx, when, within, 0)
		must(t, err)
		if n != want {
			t.Errorf("NoteExpiringCertificates(within %v) = %d, want %d", within, n, want)
		}
	}
	note(30*day, now, 2)
	note(30*day, now, 0) // each certificate once per threshold
	note(7*day, now, 1)
	note(7*day, now.Add(time.Hour), 0)
	note(30*day, now.Add(31*day), 1) // the 60-day one, a month on
	f.settle(t)
	events, err := f.s.ListEvents(f.ctx, store.EventFilter{Kind: store.EventCertificateExpiring})
	must(t, err)
	want := []struct {
		id     identity.ID
		detail string
	}{{devices[0].Identity, store.ExpiringDetail(30 * day)}, {devices[1].Identity, store.ExpiringDetail(30 * day)},
		{devices[0].Identity, store.ExpiringDetail(7 * day)}, {devices[2].Identity, store.ExpiringDetail(30 * day)}}
	if len(events) != len(want) {
		t.Fatalf("expiring events: %+v, want %d", events, len(want))
	}
	for i, w := range want {
		e := events[i]
		if e.Identity != w.id || e.Detail != w.detail || e.Serial == ([16]byte{}) {
			t.Errorf("event %d: %+v, want identity %s, detail %q and a serial", i, e, w.id, w.detail)
		}
	}
	// The batch limit: a sweep notes at most limit, the next the rest.
	more := makeDevices("expiry-more", 3)
	f.mustImport(t, f.batch("expiry-more", "m-expiry-more"), more)
	for _, d := range more {
		must(t, f.s.RecordOnboarding(f.ctx, expiringCert(d.Identity, 1, 10*day), now))
	}
	n1, err := f.s.NoteExpiringCertificates(f.ctx, now, 14*day, 2)
	must(t, err)
	n2, err := f.s.NoteExpiringCertificates(f.ctx, now, 14*day, 2)
	must(t, err)
	if n1 != 2 || n2 != 2 { // 3 new, and devices[0]'s (5 days)
		t.Errorf("limited sweeps noted %d then %d, want 2 and 2", n1, n2)
	}
}

func testSilenceSweep(t *testing.T, f *fixture) {
	a := f.deviceIn(t, "silent-a", store.StateOnboarded)
	b := f.deviceIn(t, "silent-b", store.StateOnboarded)
	gone := f.deviceIn(t, "silent-gone", store.StateOnboarded)
	for _, id := range []identity.ID{a.id, b.id, gone.id} {
		f.record(t, store.DeviceStatus{Identity: id, ReceivedAt: at(5 * time.Hour), FirmwareVersion: "1",
			BootResult: "ok", EnrolmentAlgorithm: sigalg.ECDSAP256, OperationalAlgorithm: sigalg.ECDSAP256})
	}
	// A device revoked is expected to go quiet: not reported.
	_, err := f.s.TransitionDevice(f.ctx, gone.id, store.TransitionRequest{Transition: store.TransitionRevoke, Reason: "r", At: at(5 * time.Hour)})
	must(t, err)
	note := func(now time.Time, want int) {
		t.Helper()
		n, err := f.s.NoteSilentDevices(f.ctx, now, f.product.ID, now.Add(-time.Hour), 0)
		must(t, err)
		if n != want {
			t.Errorf("NoteSilentDevices at %v = %d, want %d", now.Sub(base), n, want)
		}
	}
	note(at(5*time.Hour+30*time.Minute), 0) // not an hour yet
	note(at(7*time.Hour), 2)
	note(at(8*time.Hour), 0) // once per silence
	f.record(t, store.DeviceStatus{Identity: a.id, ReceivedAt: at(9 * time.Hour), FirmwareVersion: "1",
		BootResult: "ok", EnrolmentAlgorithm: sigalg.ECDSAP256, OperationalAlgorithm: sigalg.ECDSAP256})
	note(at(9*time.Hour+30*time.Minute), 0)
	note(at(11*time.Hour), 1) // a's new silence
	f.settle(t)
	events, err := f.s.ListEvents(f.ctx, store.EventFilter{Kind: store.EventDeviceSilent})
	must(t, err)
	if len(events) != 3 || events[2].Identity != a.id || events[2].Detail != store.SilentDetail(at(9*time.Hour)) ||
		!events[2].Time.Equal(at(11*time.Hour)) {
		t.Errorf("silent events: %+v", events)
	}
}

func testCountMonitoring(t *testing.T, f *fixture) {
	const day = 24 * time.Hour
	f.deviceIn(t, "count-registered", store.StateRegistered)
	on := f.deviceIn(t, "count-onboarded", store.StateOnboarded)
	f.deviceIn(t, "count-suspended", store.StateSuspended)
	soon := f.deviceIn(t, "count-soon", store.StateRegistered)
	must(t, f.s.RecordOnboarding(f.ctx, expiringCert(soon.id, 1, 5*day), at(0)))
	f.record(t, store.DeviceStatus{Identity: on.id, ReceivedAt: at(5 * time.Hour), FirmwareVersion: "1",
		BootResult: "ok", EnrolmentAlgorithm: sigalg.ECDSAP256, OperationalAlgorithm: sigalg.ECDSAP256})
	c, err := f.s.CountMonitoring(f.ctx, at(0), []time.Duration{7 * day, 30 * day}, map[string]time.Time{f.product.ID: at(6 * time.Hour), "other": at(9 * time.Hour)})
	must(t, err)
	wantDevices := map[store.DeviceState]int{store.StateRegistered: 1, store.StateOnboarded: 2, store.StateSuspended: 1}
	equal(t, "devices by state", c.Devices[f.product.ID], wantDevices)
	// on's current certificate (from deviceIn) expires in a year.
	if c.Expiring[7*day] != 1 || c.Expiring[30*day] != 1 {
		t.Errorf("expiring = %v, want 1 within 7 and 30 days", c.Expiring)
	}
	if c.Silent != 1 {
		t.Errorf("silent = %d, want 1", c.Silent)
	}
	wantEvents := map[store.EventKind]int{store.EventOnboarded: 3, store.EventRenewed: 2, store.EventSuspended: 1}
	equal(t, "events by kind", c.Events, wantEvents)
}
