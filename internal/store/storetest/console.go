package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/audit"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// Console sessions: kept whole (times in UTC to the microsecond), a taken
// hash and an unknown token refused without a change, deleted one at a
// time (an unknown one is no error) or by expiry, returned while expired.
func testConsoleSessions(t *testing.T, f *fixture) {
	tok := store.Token{ID: "tok-console", Name: "console", Hash: sha256.Sum256([]byte("s")), Scopes: []string{"devices:read"}, CreatedAt: at(0)}
	must(t, f.s.CreateToken(f.ctx, tok))
	session := func(n int, expires time.Time) store.ConsoleSession {
		return store.ConsoleSession{IDHash: sha256.Sum256(fmt.Appendf(nil, "session %d", n)), TokenID: tok.ID,
			CreatedAt: at(time.Minute), ExpiresAt: expires, RemoteAddr: "198.51.100.7"}
	}
	a, b, c := session(1, at(time.Hour)), session(2, at(2*time.Hour)), session(3, at(3*time.Hour))
	for _, s := range []store.ConsoleSession{a, b, c} {
		must(t, f.s.CreateConsoleSession(f.ctx, s))
	}
	got, err := f.s.GetConsoleSession(f.ctx, a.IDHash)
	must(t, err)
	equal(t, "GetConsoleSession", got, a)

	dup := a
	dup.TokenID, dup.RemoteAddr = "tok-other", "203.0.113.1"
	wantErr(t, "CreateConsoleSession with a kept hash", f.s.CreateConsoleSession(f.ctx, dup), store.ErrExists)
	orphan := session(4, at(time.Hour))
	orphan.TokenID = "tok-unknown"
	wantErr(t, "CreateConsoleSession of an unknown token", f.s.CreateConsoleSession(f.ctx, orphan), store.ErrNotFound)
	for name, bad := range map[string]store.ConsoleSession{
		"no expiry":          {IDHash: session(5, at(0)).IDHash, TokenID: tok.ID, CreatedAt: at(0)},
		"long remote addess": {IDHash: session(6, at(0)).IDHash, TokenID: tok.ID, CreatedAt: at(0), ExpiresAt: at(time.Hour), RemoteAddr: strings.Repeat("a", store.MaxSessionRemoteAddr+1)},
	} {
		if err := f.s.CreateConsoleSession(f.ctx, bad); err == nil {
			t.Errorf("CreateConsoleSession with %s succeeded", name)
		}
		_, err := f.s.GetConsoleSession(f.ctx, bad.IDHash)
		wantErr(t, "GetConsoleSession of a refused session ("+name+")", err, store.ErrNotFound)
	}
	got, err = f.s.GetConsoleSession(f.ctx, a.IDHash)
	must(t, err)
	equal(t, "a session after a refused duplicate", got, a)
	_, err = f.s.GetConsoleSession(f.ctx, orphan.IDHash)
	wantErr(t, "GetConsoleSession of the refused orphan", err, store.ErrNotFound)

	must(t, f.s.DeleteConsoleSession(f.ctx, b.IDHash))
	must(t, f.s.DeleteConsoleSession(f.ctx, b.IDHash)) // again: not an error
	_, err = f.s.GetConsoleSession(f.ctx, b.IDHash)
	wantErr(t, "GetConsoleSession after delete", err, store.ErrNotFound)

	// Expired sessions are returned until deleted; the caller checks.
	got, err = f.s.GetConsoleSession(f.ctx, a.IDHash)
	if err != nil || !got.ExpiresAt.Before(at(90*time.Minute)) {
		t.Fatalf("an expired session: %+v, %v", got, err)
	}
	// Strictly before: c expires at 3h and stays.
	n, err := f.s.DeleteExpiredConsoleSessions(f.ctx, at(3*time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("DeleteExpiredConsoleSessions(3h) = %d, %v; want 1 (a; b was deleted, c expires at 3h)", n, err)
	}
	_, err = f.s.GetConsoleSession(f.ctx, a.IDHash)
	wantErr(t, "GetConsoleSession of a deleted expired session", err, store.ErrNotFound)
	got, err = f.s.GetConsoleSession(f.ctx, c.IDHash)
	must(t, err)
	equal(t, "the session expiring at the cut-off", got, c)
	if n, err := f.s.DeleteExpiredConsoleSessions(f.ctx, at(3*time.Hour)); err != nil || n != 0 {
		t.Fatalf("DeleteExpiredConsoleSessions again = %d, %v; want 0", n, err)
	}
}

// ListBatches: newest first, then by ID descending; pages through After;
// filters by product and station, each page a range in that order; an
// unknown After is ErrNotFound.
func testListBatches(t *testing.T, f *fixture) {
	other := newStation("station-2")
	must(t, f.s.CreateStation(f.ctx, other))
	gateway := store.Product{ID: "gateway-v1", Name: "Gateway", CertValidity: time.Hour, CloudEndpoint: "mqtts://g.example.com", CreatedAt: at(0)}
	must(t, f.s.CreateProduct(f.ctx, gateway))
	var want []store.Batch // newest first
	for i := range 9 {
		b := f.batch(fmt.Sprintf("batch-%d", i), fmt.Sprint("m", i))
		// Three share one import time, so the ID decides among them.
		b.ImportedAt = at(time.Duration(min(i, 6)) * time.Hour)
		if i%2 == 1 {
			b.ProductID = gateway.ID
		}
		if i%3 == 2 {
			b.StationID = other.ID
		}
		devices := makeDevices(b.ID, 1+i%2)
		f.mustImport(t, b, devices)
		b.DeviceCount = len(devices)
		want = append([]store.Batch{b}, want...)
	}
	// batch-6, -7, -8 were imported at the same time: by ID descending.
	if want[0].ID != "batch-8" || want[2].ID != "batch-6" || want[3].ID != "batch-5" {
		t.Fatalf("test setup: %v", want)
	}
	walkBatches := func(filter store.BatchFilter) []store.Batch {
		t.Helper()
		var all []store.Batch
		for {
			page, err := f.s.ListBatches(f.ctx, filter)
			must(t, err)
			if len(page) > filter.Limit {
				t.Fatalf("ListBatches(%+v) = %d batches", filter, len(page))
			}
			all = append(all, page...)
			if len(page) < filter.Limit {
				return all
			}
			filter.After = page[len(page)-1].ID
		}
	}
	pick := func(keep func(store.Batch) bool) []store.Batch {
		var out []store.Batch
		for _, b := range want {
			if keep(b) {
				out = append(out, b)
			}
		}
		return out
	}
	all, err := f.s.ListBatches(f.ctx, store.BatchFilter{})
	must(t, err)
	equal(t, "ListBatches", all, want)
	for _, c := range []struct {
		name   string
		filter store.BatchFilter
		want   []store.Batch
	}{
		{"all", store.BatchFilter{}, want},
		{"product", store.BatchFilter{ProductID: gateway.ID}, pick(func(b store.Batch) bool { return b.ProductID == gateway.ID })},
		{"station", store.BatchFilter{StationID: other.ID}, pick(func(b store.Batch) bool { return b.StationID == other.ID })},
		{"both", store.BatchFilter{ProductID: f.product.ID, StationID: other.ID},
			pick(func(b store.Batch) bool { return b.StationID == other.ID && b.ProductID == f.product.ID })},
		{"unknown product", store.BatchFilter{ProductID: "no-such"}, nil},
	} {
		for _, limit := range []int{1, 2, 4} {
			c.filter.Limit = limit
			equal(t, fmt.Sprintf("ListBatches(%s) by %d", c.name, limit), walkBatches(c.filter), c.want)
		}
	}
	// After names the last batch of a page, whatever the filter: a page
	// of one product may start after a batch of another.
	page, err := f.s.ListBatches(f.ctx, store.BatchFilter{ProductID: gateway.ID, After: "batch-6", Limit: 2})
	must(t, err)
	equal(t, "ListBatches(product, after another product's batch)", page, []store.Batch{want[3], want[5]})
	page, err = f.s.ListBatches(f.ctx, store.BatchFilter{After: want[len(want)-1].ID})
	if err != nil || len(page) != 0 {
		t.Fatalf("ListBatches after the oldest = %v, %v; want none", page, err)
	}
	_, err = f.s.ListBatches(f.ctx, store.BatchFilter{After: "no-such-batch"})
	wantErr(t, "ListBatches(unknown After)", err, store.ErrNotFound)
	// Zero is the default page size, and the maximum caps it.
	many, err := f.s.ListBatches(f.ctx, store.BatchFilter{Limit: store.MaxPageSize + 1})
	if err != nil || len(many) != len(want) {
		t.Fatalf("ListBatches(limit past the maximum) = %d, %v", len(many), err)
	}
}

// cloudScenario is what happens to a device's jobs, one connector each
// ("a" and "b") unless said.
type cloudScenario struct {
	name string
	// a and b: done, fail, retry (pending again), keep (running), or ""
	// (no job of that connector).
	a, b string
	// renew enqueues a later job of connector a after the first round,
	// which then completes: the earlier job of a no longer counts.
	renew bool
	want  string
}

var cloudScenarios = []cloudScenario{
	{name: "both done", a: "done", b: "done", want: store.CloudActive},
	{name: "one retrying", a: "retry", b: "done", want: store.CloudPending},
	{name: "one running", a: "keep", b: "done", want: store.CloudPending},
	{name: "one failed", a: "fail", b: "done", want: store.CloudFailed},
	{name: "failed and retrying", a: "fail", b: "retry", want: store.CloudFailed},
	{name: "failed, then done", a: "fail", b: "done", renew: true, want: store.CloudActive},
	{name: "retrying, then done", a: "retry", renew: true, want: store.CloudActive},
	{name: "no jobs", want: store.CloudNone},
}

// cloudDevices onboards n devices cycling through cloudScenarios and
// drives their jobs there; it returns each device's scenario.
func (f *fixture) cloudDevices(t *testing.T, seed string, n int) map[identity.ID]cloudScenario {
	devices := makeDevices(seed, n)
	f.mustImport(t, f.batch(seed, "m-"+seed), devices)
	out := map[identity.ID]cloudScenario{}
	plan := map[identity.ID]map[string]string{}
	for i, d := range devices {
		sc := cloudScenarios[i%len(cloudScenarios)]
		out[d.Identity] = sc
		var conns []string
		plan[d.Identity] = map[string]string{}
		for conn, do := range map[string]string{"a": sc.a, "b": sc.b} {
			if do != "" {
				conns = append(conns, conn)
				plan[d.Identity][conn] = do
			}
		}
		must(t, f.s.RecordOnboarding(f.ctx, newCert(d.Identity, i, at(2*time.Hour)), at(2*time.Hour), registerJobs(conns...)...))
	}
	settleJobs := func(now time.Time, decide func(j store.Job) string) {
		jobs, err := f.s.ClaimJobs(f.ctx, "console-test", now, 1000*time.Hour, store.MaxPageSize)
		must(t, err)
		for _, j := range jobs {
			switch decide(j) {
			case "done":
				must(t, f.s.CompleteJob(f.ctx, j.ID, now))
			case "fail":
				must(t, f.s.FailJob(f.ctx, j.ID, "refused", now))
			case "retry":
				must(t, f.s.RetryJob(f.ctx, j.ID, at(1000*time.Hour), "unavailable", now))
			}
		}
	}
	settleJobs(at(3*time.Hour), func(j store.Job) string { return plan[j.Identity][j.Connector] })
	for i, d := range devices {
		if out[d.Identity].renew {
			must(t, f.s.RecordOnboarding(f.ctx, newCert(d.Identity, 1000+i, at(4*time.Hour)), at(4*time.Hour), registerJobs("a")...))
		}
	}
	settleJobs(at(5*time.Hour), func(store.Job) string { return "done" })
	return out
}

// The console's device filters: identity prefix, root of trust and cloud
// state, each alone and with the others, paged in every case; malformed
// values refused with ErrBadFilter.
func testConsoleDeviceFilters(t *testing.T, f *fixture) {
	_, gateway, _ := f.fillForListing(t)
	scenarios := f.cloudDevices(t, "cloud", 40)
	// A revoked device with pending deregistrations, and one of a cloud
	// scenario revoked without jobs (its state filter differs).
	var revokedCloud identity.ID
	for id, sc := range scenarios {
		if sc.want == store.CloudFailed && revokedCloud == (identity.ID{}) {
			revokedCloud = id
			must(t, f.s.RevokeDevice(f.ctx, id, "stolen", at(6*time.Hour)))
		}
	}
	all := f.allDevices(t)
	cloud := map[identity.ID]string{}
	for id, sc := range scenarios {
		jobs, err := f.s.ListJobs(f.ctx, store.JobFilter{Identity: id})
		must(t, err)
		state, _ := store.CloudStateOf(jobs)
		if state != sc.want {
			t.Fatalf("test setup: scenario %q gave cloud state %s, want %s", sc.name, state, sc.want)
		}
		cloud[id] = state
	}
	for _, want := range []string{store.CloudPending, store.CloudFailed} {
		n := 0
		for _, st := range cloud {
			if st == want {
				n++
			}
		}
		if n < 5 {
			t.Fatalf("test setup: %d devices %s", n, want)
		}
	}
	mid := all[len(all)/2].Identity
	prefixes := []string{mid.String()[:1], mid.String()[:2], mid.String()[:3], strings.ToUpper(mid.String()[:5]), mid.String()[:63], mid.String()}
	type filterCase struct {
		name   string
		filter store.DeviceFilter
		match  func(store.Device) bool
	}
	var cases []filterCase
	for _, p := range prefixes {
		cases = append(cases, filterCase{"prefix " + p, store.DeviceFilter{IdentityPrefix: p}, func(d store.Device) bool {
			return strings.HasPrefix(d.Identity.String(), strings.ToLower(p))
		}})
	}
	for _, class := range []string{"puf", "keygen", "inject", "tpm"} {
		cases = append(cases, filterCase{"class " + class, store.DeviceFilter{RootOfTrust: class}, func(d store.Device) bool { return d.RootOfTrust == class }})
	}
	cases = append(cases,
		filterCase{"class and product", store.DeviceFilter{RootOfTrust: "keygen", ProductID: gateway.ID}, func(d store.Device) bool {
			return d.RootOfTrust == "keygen" && d.ProductID == gateway.ID
		}},
		filterCase{"prefix and state", store.DeviceFilter{IdentityPrefix: prefixes[0], State: store.StateOnboarded}, func(d store.Device) bool {
			return strings.HasPrefix(d.Identity.String(), prefixes[0]) && d.State == store.StateOnboarded
		}},
		filterCase{"prefix and class", store.DeviceFilter{IdentityPrefix: prefixes[0], RootOfTrust: "inject"}, func(d store.Device) bool {
			return strings.HasPrefix(d.Identity.String(), prefixes[0]) && d.RootOfTrust == "inject"
		}},
	)
	for _, cs := range []string{store.CloudPending, store.CloudFailed} {
		is := func(d store.Device) bool { return cloud[d.Identity] == cs }
		cases = append(cases,
			filterCase{cs, store.DeviceFilter{CloudState: cs}, is},
			filterCase{cs + " and state", store.DeviceFilter{CloudState: cs, State: store.StateOnboarded}, func(d store.Device) bool {
				return is(d) && d.State == store.StateOnboarded
			}},
			filterCase{cs + " and class", store.DeviceFilter{CloudState: cs, RootOfTrust: "puf"}, func(d store.Device) bool {
				return is(d) && d.RootOfTrust == "puf"
			}},
			filterCase{cs + " and batch and suite", store.DeviceFilter{CloudState: cs, BatchID: "cloud", Algorithm: sigalg.Ed25519}, func(d store.Device) bool {
				return is(d) && d.Algorithm == sigalg.Ed25519
			}},
			filterCase{cs + " and prefix", store.DeviceFilter{CloudState: cs, IdentityPrefix: prefixes[0]}, func(d store.Device) bool {
				return is(d) && strings.HasPrefix(d.Identity.String(), prefixes[0])
			}},
			filterCase{cs + " and other product", store.DeviceFilter{CloudState: cs, ProductID: gateway.ID}, func(store.Device) bool { return false }},
		)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var want []store.Device
			for _, d := range all {
				if c.match(d) {
					want = append(want, d)
				}
			}
			limits := []int{7, 1000}
			if len(want) < 50 {
				limits = []int{1, 3, 1000}
			}
			for _, limit := range limits {
				fl := c.filter
				fl.Limit = limit
				equal(t, fmt.Sprintf("devices by %d", limit), f.walk(t, fl), want)
			}
			// A page deep in, after a device the filter does not select.
			fl := c.filter
			fl.After, fl.Limit = mid, 1000
			var after []store.Device
			for _, d := range want {
				if bytes.Compare(d.Identity[:], mid[:]) > 0 {
					after = append(after, d)
				}
			}
			equal(t, "devices after the middle", f.walk(t, fl), after)
		})
	}
	// The revoked device: its latest jobs are failed; revoking enqueued
	// none (no jobs given), so it is still failed, and its state filter
	// finds it.
	page, err := f.s.ListDevices(f.ctx, store.DeviceFilter{CloudState: store.CloudFailed, State: store.StateRevoked})
	must(t, err)
	if len(page) != 1 || page[0].Identity != revokedCloud {
		t.Errorf("failed and revoked = %d devices, want the one revoked", len(page))
	}

	for name, bad := range map[string]store.DeviceFilter{
		"prefix not hex":         {IdentityPrefix: "xyz"},
		"prefix with a g":        {IdentityPrefix: "0g"},
		"prefix with a space":    {IdentityPrefix: " ab"},
		"prefix with NUL":        {IdentityPrefix: "ab\x00"},
		"prefix with a sign":     {IdentityPrefix: "+1"},
		"prefix too long":        {IdentityPrefix: mid.String() + "0"},
		"prefix non-ASCII":       {IdentityPrefix: "é"},
		"cloud active":           {CloudState: store.CloudActive},
		"cloud none":             {CloudState: store.CloudNone},
		"cloud unknown":          {CloudState: "PENDING"},
		"root of trust too long": {RootOfTrust: strings.Repeat("a", 65)},
		"bad among good":         {IdentityPrefix: "zz", State: store.StateOnboarded, After: mid},
	} {
		if err := bad.Validate(); !errors.Is(err, store.ErrBadFilter) {
			t.Errorf("Validate(%s) = %v, want ErrBadFilter", name, err)
		}
		page, err := f.s.ListDevices(f.ctx, bad)
		if !errors.Is(err, store.ErrBadFilter) || page != nil {
			t.Errorf("ListDevices(%s) = %d devices, %v; want ErrBadFilter", name, len(page), err)
		}
	}
}

// FleetSummary with a fixed clock: every field, with records inside and
// just outside each of its windows.
func testFleetSummary(t *testing.T, f *fixture) {
	const hour, day = time.Hour, 24 * time.Hour
	now := at(10 * day) // 10:30:00.123456 CET: not on an hour
	within, silence := 30*day, 2*hour
	empty, err := f.s.FleetSummary(f.ctx, now, within, silence)
	must(t, err)
	if empty.Total != 0 || len(empty.ByState) != 0 || len(empty.Onboardings) != 168 || len(empty.Failures) != 0 || len(empty.Jobs) != 0 ||
		empty.ExpiringSoon != 0 || empty.Silent != 0 || empty.CampaignsActive != 0 || !empty.At.Equal(now) || empty.At.Location() != time.UTC {
		t.Fatalf("FleetSummary of an empty store = %+v", empty)
	}

	gateway := store.Product{ID: "gateway", Name: "Gateway", CertValidity: time.Hour, CloudEndpoint: "mqtts://g.example.com", CreatedAt: at(0)}
	must(t, f.s.CreateProduct(f.ctx, gateway))
	sensors := makeDevices("sum-s", 12) // classes cycle: puf/P-256, keygen/Ed25519, inject/ML-DSA-65
	f.mustImport(t, f.batch("sum-s", "m-sum-s"), sensors)
	gw := f.batch("sum-g", "m-sum-g")
	gw.ProductID = gateway.ID
	gateways := makeDevicesOf("sum-g", 3, classes[1:2])
	f.mustImport(t, gw, gateways)

	// Onboardings: the start of the oldest bucket, inside the newest
	// bucket, at now, and outside on either side.
	first := now.Truncate(hour).Add(-167 * hour)
	onboard := func(i int, d store.Device, when time.Time, jobs ...store.Job) store.Certificate {
		c := newCert(d.Identity, i, when)
		must(t, f.s.RecordOnboarding(f.ctx, c, when, jobs...))
		return c
	}
	onboard(0, sensors[0], first.Add(-time.Microsecond)) // before the week
	onboard(1, sensors[1], first)
	onboard(2, sensors[2], first.Add(90*time.Minute), registerJobs("a", "b")...)
	onboard(3, sensors[3], now.Truncate(hour), registerJobs("a")...)
	onboard(4, sensors[4], now, registerJobs("a")...)
	onboard(5, sensors[5], now.Add(time.Microsecond)) // after now
	onboard(6, gateways[0], now.Add(-hour))
	// Renewals are no onboardings.
	onboard(7, sensors[1], now.Add(-2*hour))
	onboard(8, sensors[4], now)
	// sensors[6] and [7] are onboarded a day before now (below).
	wantOnboardings := map[int]int{0: 1, 1: 1, 143: 2, 166: 1, 167: 2}

	// Jobs: a (sensors[2]) and b (sensors[2]) and a (sensors[3], [4]):
	// one fails, one runs, two stay pending.
	claimed, err := f.s.ClaimJobs(f.ctx, "w", now, hour, 2)
	must(t, err)
	if len(claimed) != 2 {
		t.Fatalf("test setup: claimed %d jobs", len(claimed))
	}
	must(t, f.s.FailJob(f.ctx, claimed[0].ID, "refused", now))

	// Certificates: the current ones of sensors[2], [3] expire inside
	// the window (one exactly at its end), [6]'s at now (outside), and a
	// superseded one inside; sensors[7] is revoked with one inside.
	exp := func(i int, d store.Device, notAfter time.Time) store.Certificate {
		c := newCert(d.Identity, 100+i, now.Add(-day))
		c.NotAfter = notAfter
		must(t, f.s.RecordOnboarding(f.ctx, c, now.Add(-day)))
		return c
	}
	exp(0, sensors[2], now.Add(within))
	exp(1, sensors[3], now.Add(time.Hour))
	exp(2, gateways[0], now)
	exp(3, sensors[6], now.Add(hour)) // superseded below
	exp(4, sensors[6], now.Add(within+time.Microsecond))
	exp(5, sensors[7], now.Add(hour))
	must(t, f.s.RevokeDevice(f.ctx, sensors[7].Identity, "stolen", now.Add(-day)))
	// The other onboarded devices' certificates (newCert: a year) are
	// outside the window.

	// Status: silent for longer than silence, just not, and a silent
	// device that was revoked (not counted).
	report := func(d store.Device, when time.Time) {
		f.record(t, store.DeviceStatus{Identity: d.Identity, ReceivedAt: when, FirmwareVersion: "1.0.0", BootResult: "ok",
			EnrolmentAlgorithm: d.Algorithm, OperationalAlgorithm: d.Algorithm, RemoteAddr: "192.0.2.1"})
	}
	report(sensors[1], now.Add(-silence-time.Microsecond))
	report(gateways[0], now.Add(-3*day))
	report(sensors[2], now.Add(-silence)) // exactly silence ago: not silent
	report(sensors[3], now)
	report(sensors[7], now.Add(-3*day))

	// Campaigns: running and paused are active; halted, cancelled and
	// completed are not. Each takes devices of its own.
	cdevs := f.campaignDevices(t, "sum-c", 6)
	for i, st := range store.CampaignStates {
		c := sampleCampaign(fmt.Sprintf("cmp_%016d", i), f, 1)
		must(t, f.s.CreateCampaign(f.ctx, c, rowsOf(cdevs[i].Identity)))
		if st != store.CampaignRunning {
			f.setCampaignState(t, c.ID, st)
		}
	}

	// Refusals through the real aggregator: sensors' first attempt is
	// written on its own, the rest summarised; a rate-limited challenge
	// only summarised. Then events outside the window or not refusals.
	clock := now.Add(-hour)
	agg, err := audit.New(audit.Config{Store: f.s, Now: func() time.Time { return clock }})
	must(t, err)
	for range 5 {
		agg.Refuse(f.ctx, audit.Refusal{Interface: "onboarding", Action: "device.onboard", Reason: "proof-rejected", Source: "192.0.2.9"})
	}
	for range 7 {
		agg.Refuse(f.ctx, audit.Refusal{Interface: "onboarding", Action: "device.challenge", Reason: "rate-limited", Source: "192.0.2.9", SummaryOnly: true})
	}
	agg.Refuse(f.ctx, audit.Refusal{Interface: "onboarding", Action: "device.onboard", Reason: "bad-csr", Source: "192.0.2.10"})
	agg.Refuse(f.ctx, audit.Refusal{Interface: "onboarding", Action: "device.onboard", Reason: "challenge-used", Source: "192.0.2.11"})
	agg.Refuse(f.ctx, audit.Refusal{Interface: "onboarding", Action: "device.onboard", Reason: "proof-rejected", Source: "192.0.2.12"})
	agg.Flush(f.ctx)
	for _, e := range []store.AuditEvent{
		{Time: now.Add(-day), Actor: "anonymous", Action: "device.onboard", Outcome: "denied", Detail: "revoked"},                                                 // at the window's start: out
		{Time: now.Add(time.Microsecond), Actor: "anonymous", Action: "device.onboard", Outcome: "denied", Detail: "revoked"},                                     // after now
		{Time: now, Actor: "anonymous", Action: "device.onboard", Outcome: "denied", Detail: "suspended"},                                                         // at now: in
		{Time: now, Actor: "device:x", Action: "device.onboard", Outcome: "ok", Detail: "ok"},                                                                     // not refused
		{Time: now, Actor: "token:x", Action: "device.revoke", Outcome: "denied", Detail: "proof-rejected"},                                                       // not onboarding
		{Time: now, Actor: "anonymous", Action: "device.onboard", Outcome: "error", Detail: "internal"},                                                           // an error, not a refusal
		{Time: now, Actor: "anonymous", Action: "device.onboard", Outcome: "denied", Detail: "revoked: 3 refused from then to now (the first logged on its own)"}, // 2 more
	} {
		_, err := f.s.AppendAudit(context.WithoutCancel(f.ctx), e)
		must(t, err)
	}
	f.settle(t)

	got, err := f.s.FleetSummary(f.ctx, now, within, silence)
	must(t, err)
	onboardings := make([]store.TimeCount, 168)
	for i := range onboardings {
		onboardings[i] = store.TimeCount{Start: first.Add(time.Duration(i) * hour), Count: wantOnboardings[i]}
	}
	want := store.FleetSummary{
		At:    now,
		Total: 15 + 6,
		ByState: map[store.DeviceState]int{
			// sensors 0-6, gateways[0] and the six campaign devices but the
			// last onboarded; sensors[7] revoked.
			store.StateOnboarded: 7 + 1 + 5, store.StateRevoked: 1, store.StateRegistered: 4 + 2 + 1,
		},
		ByProduct:   map[string]int{f.product.ID: 12 + 6, gateway.ID: 3},
		ByClass:     map[string]int{"puf": 4 + 2, "keygen": 4 + 3 + 2, "inject": 4 + 2},
		BySuite:     map[sigalg.ID]int{sigalg.ECDSAP256: 4 + 2, sigalg.Ed25519: 4 + 3 + 2, sigalg.MLDSA65: 4 + 2},
		Onboardings: onboardings,
		Failures: []store.ReasonCount{
			{Reason: "rate-limited", Count: 7}, {Reason: "proof-rejected", Count: 6}, {Reason: "revoked", Count: 2},
			{Reason: "bad-csr", Count: 1}, {Reason: "challenge-used", Count: 1}, {Reason: "suspended", Count: 1},
		},
		Jobs:            map[store.JobState]int{store.JobFailed: 1, store.JobRunning: 1, store.JobPending: 2},
		ExpiringSoon:    2,
		Silent:          2,
		CampaignsActive: 2,
	}
	equal(t, "FleetSummary", got, want)
}
