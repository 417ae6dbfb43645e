package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/store"
)

// appendSampleEvents appends a few events of several actors, actions and
// subjects, checks their Seq increases, and returns them with Seq set.
func appendSampleEvents(t *testing.T, f *fixture) []store.AuditEvent {
	events := []store.AuditEvent{
		{Time: at(0), Actor: "token:adm", Action: "station.create", Subject: "station:s1", Outcome: "ok", RemoteAddr: "192.0.2.1:5000"},
		{Time: at(time.Second), Actor: "token:adm", Action: "manifest.import", Subject: "batch:b1", Outcome: "ok", Detail: "1000 devices"},
		{Time: at(2 * time.Second), Actor: "device:ab12", Action: "device.onboard", Subject: "device:ab12", Outcome: "denied", Detail: "bad proof"},
		{Time: at(3 * time.Second), Actor: "device:ab12", Action: "device.onboard", Subject: "device:ab12", Outcome: "ok"},
		{Time: at(4 * time.Second), Actor: "token:ops", Action: "device.revoke", Subject: "device:ab12", Outcome: "ok", Detail: "stolen"},
		{Time: at(5 * time.Second), Actor: "system", Action: "challenge.cleanup", Subject: "", Outcome: "error", Detail: "disk full"},
	}
	var last int64
	for i := range events {
		seq, err := f.s.AppendAudit(f.ctx, events[i])
		must(t, err)
		if seq <= last {
			t.Fatalf("AppendAudit returned seq %d after %d, want increasing", seq, last)
		}
		events[i].Seq, last = seq, seq
	}
	return events
}

func testAudit(t *testing.T, f *fixture) {
	events := appendSampleEvents(t, f)
	pick := func(idx ...int) []store.AuditEvent {
		var out []store.AuditEvent
		for _, i := range idx {
			out = append(out, events[i])
		}
		return out
	}
	for _, c := range []struct {
		name   string
		filter store.AuditFilter
		want   []store.AuditEvent
	}{
		{"all, oldest first", store.AuditFilter{}, events},
		{"actor", store.AuditFilter{Actor: "token:adm"}, pick(0, 1)},
		{"action", store.AuditFilter{Action: "device.onboard"}, pick(2, 3)},
		{"subject", store.AuditFilter{Subject: "device:ab12"}, pick(2, 3, 4)},
		{"actor and action", store.AuditFilter{Actor: "device:ab12", Action: "device.revoke"}, nil},
		{"after seq", store.AuditFilter{AfterSeq: events[3].Seq}, pick(4, 5)},
		{"subject after seq", store.AuditFilter{Subject: "device:ab12", AfterSeq: events[2].Seq}, pick(3, 4)},
		{"limit", store.AuditFilter{Limit: 2}, pick(0, 1)},
		{"limit after seq", store.AuditFilter{Limit: 2, AfterSeq: events[1].Seq}, pick(2, 3)},
		{"unknown actor", store.AuditFilter{Actor: "token:nobody"}, nil},
		{"newest first", store.AuditFilter{Newest: true}, pick(5, 4, 3, 2, 1, 0)},
		{"newest first, limit", store.AuditFilter{Newest: true, Limit: 2}, pick(5, 4)},
		{"newest first before seq", store.AuditFilter{Newest: true, BeforeSeq: events[4].Seq, Limit: 2}, pick(3, 2)},
		{"newest first ignores after seq", store.AuditFilter{Newest: true, AfterSeq: events[4].Seq, Limit: 1}, pick(5)},
		{"newest first, subject, before seq", store.AuditFilter{Newest: true, Subject: "device:ab12", BeforeSeq: events[4].Seq}, pick(3, 2)},
		{"newest first before the first", store.AuditFilter{Newest: true, BeforeSeq: events[0].Seq}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			f.settle(t)
			got, err := f.s.ListAudit(f.ctx, c.filter)
			must(t, err)
			equal(t, "ListAudit", got, c.want)
		})
	}
}

func testAuditTimeAndLimits(t *testing.T, f *fixture) {
	events := appendSampleEvents(t, f)
	t.Run("zero time is the time of the append", func(t *testing.T) {
		before := time.Now().Truncate(time.Microsecond)
		seq, err := f.s.AppendAudit(f.ctx, store.AuditEvent{Actor: "system", Action: "clock.check", Outcome: "ok"})
		must(t, err)
		after := time.Now()
		f.settle(t)
		got, err := f.s.ListAudit(f.ctx, store.AuditFilter{AfterSeq: seq - 1, Limit: 1})
		must(t, err)
		if len(got) != 1 || got[0].Time.Before(before) || got[0].Time.After(after) {
			t.Errorf("event appended between %v and %v reads back as %+v", before, after, got)
		}
	})
	t.Run("page limits", func(t *testing.T) {
		for i := range 1000 {
			_, err := f.s.AppendAudit(f.ctx, store.AuditEvent{Time: at(time.Minute), Actor: "system", Action: "tick", Subject: fmt.Sprint(i), Outcome: "ok"})
			must(t, err)
		}
		f.settle(t)
		for _, c := range []struct{ limit, want int }{{0, 100}, {-5, 100}, {1000, 1000}, {5000, 1000}} {
			got, err := f.s.ListAudit(f.ctx, store.AuditFilter{Limit: c.limit})
			must(t, err)
			if len(got) != c.want || got[0].Seq != events[0].Seq {
				t.Errorf("Limit %d: %d events, want %d from the first", c.limit, len(got), c.want)
			}
		}
	})
}

// testTimePrecision stores times through a product and an audit event:
// microseconds survive in every zone, before 1970 and far ahead, and come
// back in UTC; finer precision is cut to within a microsecond.
func testTimePrecision(t *testing.T, f *fixture) {
	for i, c := range []struct {
		name string
		in   time.Time
	}{
		{"microseconds, not UTC", base},
		{"last microsecond of a second", time.Date(2026, 1, 2, 3, 4, 5, 999999000, time.FixedZone("", -7*3600))},
		{"before 1970", time.Date(1969, 7, 20, 20, 17, 40, 1000, time.UTC)},
		{"far ahead", time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC)},
		{"nanoseconds", time.Date(2026, 11, 25, 10, 30, 0, 123456789, time.UTC)},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := store.Product{ID: fmt.Sprintf("time-%d", i), Name: c.name, CertValidity: time.Nanosecond, CreatedAt: c.in}
			must(t, f.s.CreateProduct(f.ctx, p))
			got, err := f.s.GetProduct(f.ctx, p.ID)
			must(t, err)
			seq, err := f.s.AppendAudit(f.ctx, store.AuditEvent{Time: c.in, Actor: "system", Action: "time"})
			must(t, err)
			f.settle(t)
			events, err := f.s.ListAudit(f.ctx, store.AuditFilter{AfterSeq: seq - 1, Limit: 1})
			must(t, err)
			for what, out := range map[string]time.Time{"product": got.CreatedAt, "audit": events[0].Time} {
				if out.Location() != time.UTC {
					t.Errorf("%s: time in %v, want UTC", what, out.Location())
				}
				exact := c.in.Nanosecond()%1000 == 0
				if exact && !out.Equal(c.in) || out.Sub(c.in).Abs() >= time.Microsecond {
					t.Errorf("%s: %v read back as %v", what, c.in, out)
				}
			}
			if got.CertValidity != time.Nanosecond {
				t.Errorf("CertValidity %v read back as %v", time.Nanosecond, got.CertValidity)
			}
		})
	}
}

// testConcurrentWrites runs the server's write paths from many goroutines
// at once, with readers beside them: none may fail for being concurrent
// (no "database is locked" or serialization error reaches the caller).
func testConcurrentWrites(t *testing.T, f *fixture) {
	const workers, each = 8, 12
	devices := makeDevices("concurrent", workers*each)
	f.mustImport(t, f.batch("concurrent", "m-concurrent"), devices)
	start := make(chan struct{})
	errs := make(chan error, 4*workers*each+1)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			<-start
			for i := range each {
				n := w*each + i
				errs <- onboardOne(f, n, devices[n])
			}
		})
	}
	wg.Go(func() {
		<-start
		_, err := f.s.ImportBatch(f.ctx, f.batch("concurrent-2", "m-concurrent-2"), makeDevices("concurrent-2", 500))
		errs <- err
	})
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	onboarded, err := f.s.ListDevices(f.ctx, store.DeviceFilter{State: store.StateOnboarded, Limit: 1000})
	must(t, err)
	f.settle(t)
	events, err := f.s.ListAudit(f.ctx, store.AuditFilter{Action: "device.onboard", Limit: 1000})
	must(t, err)
	if len(onboarded) != len(devices) || len(events) != len(devices) {
		t.Errorf("%d devices onboarded, %d audit events; want %d each", len(onboarded), len(events), len(devices))
	}
}

// onboardOne does what the server does for one device: challenge, consume,
// record, audit, and a read in between.
func onboardOne(f *fixture, n int, d store.Device) error {
	c := newChallenge(1000+n, d.Identity, at(0), at(time.Minute))
	if err := f.s.CreateChallenge(f.ctx, c); err != nil {
		return err
	}
	if _, err := f.s.ListDevices(f.ctx, store.DeviceFilter{Limit: 10}); err != nil {
		return err
	}
	if _, err := f.s.ConsumeChallenge(f.ctx, c.ID, at(time.Second)); err != nil {
		return err
	}
	if err := f.s.RecordOnboarding(f.ctx, newCert(d.Identity, n, at(time.Second)), at(time.Second)); err != nil {
		return err
	}
	_, err := f.s.AppendAudit(f.ctx, store.AuditEvent{Time: at(time.Second), Actor: "device:" + d.Identity.String(),
		Action: "device.onboard", Subject: d.Identity.String(), Outcome: "ok"})
	return err
}

func testPingClose(t *testing.T, f *fixture) {
	must(t, f.s.Ping(f.ctx))
	must(t, f.s.Close())
	if err := f.s.Ping(f.ctx); err == nil {
		t.Error("Ping after Close succeeded")
	}
	if _, err := f.s.GetDevice(f.ctx, [32]byte{1}); err == nil {
		t.Error("GetDevice after Close succeeded")
	}
}
