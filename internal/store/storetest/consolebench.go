package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// ConsoleBenchDevices is how many devices BenchmarkConsole registers.
const ConsoleBenchDevices = 1_000_000

// ConsoleBenchNow is the clock of BenchmarkConsole's fleet: what a
// backend's onboard step spreads onboardings, reports and refusals
// before.
var ConsoleBenchNow = time.Date(2026, 12, 3, 12, 30, 0, 0, time.UTC)

// ConsoleFleet is what SeedConsoleFleet registered that the benchmarks
// of the console's pages name.
type ConsoleFleet struct {
	// Gateway is the second product, with every fourth batch.
	Gateway store.Product
	// Mid is the first device of the first batch: its identity is any
	// 64 hex digits, and so lies somewhere in the middle of the fleet.
	Mid identity.ID
}

// SeedConsoleFleet registers ConsoleBenchDevices devices in s through
// ImportBatch, 100,000 at a time (its time is logged), then calls onboard,
// the backend's bulk step (SQL: per-device calls would take most of an
// hour; see package fleetseed), which must onboard about a tenth of them
// with a certificate, a register job, a status report and an onboarding
// event over the week before ConsoleBenchNow, some jobs failed or
// pending, some devices silent, some certificates expiring, and append
// some refusals; and bring the planner's statistics up to date, as
// autovacuum or PRAGMA optimize would. s stays open: the caller owns it.
func SeedConsoleFleet(b *testing.B, s store.Store, onboard func(b *testing.B, s store.Store)) ConsoleFleet {
	b.Helper()
	f := newFixture(b, func(*testing.B) store.Store { return keepOpen{s} })
	gateway := store.Product{ID: "gateway", Name: "Gateway", CertValidity: time.Hour, CloudEndpoint: "mqtts://g.example.com", CreatedAt: at(0)}
	must(b, f.s.CreateProduct(f.ctx, gateway))
	// Every class, with small keys: the console reads indexes, and a
	// third of a million ML-DSA keys would only make the set-up longer.
	small := []deviceClass{{sigalg.ECDSAP256, 91, "puf", "none"}, {sigalg.Ed25519, 91, "keygen", "none"}, {sigalg.MLDSA65, 91, "inject", "encrypted"}}
	const perBatch = 100_000
	start := time.Now()
	var mid identity.ID
	for i := range ConsoleBenchDevices / perBatch {
		batch := f.batch(fmt.Sprintf("bench-%02d", i), fmt.Sprint("m-bench-", i))
		batch.ImportedAt = ConsoleBenchNow.Add(-time.Duration(30-i) * 24 * time.Hour)
		if i%4 == 3 {
			batch.ProductID = gateway.ID
		}
		devices := makeDevicesOf(batch.ID, perBatch, small)
		f.mustImport(b, batch, devices)
		if i == 0 {
			mid = devices[0].Identity
		}
	}
	b.Logf("imported %d devices in %v", ConsoleBenchDevices, time.Since(start).Round(time.Millisecond))
	start = time.Now()
	onboard(b, s)
	b.Logf("onboarded a tenth in %v", time.Since(start).Round(time.Millisecond))
	return ConsoleFleet{Gateway: gateway, Mid: mid}
}

// keepOpen is a store whose Close leaves it open, for a fixture on a
// store its caller owns.
type keepOpen struct{ store.Store }

func (keepOpen) Close() error { return nil }

// BenchmarkConsole measures the console's reads on a fleet of
// ConsoleBenchDevices devices (SeedConsoleFleet; onboard is the backend's
// bulk step): the device pages (first, deep in, each filter) and the
// fleet summary. It is its own benchmark, run only when -bench names it.
func BenchmarkConsole(b *testing.B, open func(b *testing.B) store.Store, onboard func(b *testing.B, s store.Store)) {
	s := open(b)
	b.Cleanup(func() { s.Close() })
	fleet := SeedConsoleFleet(b, s, onboard)
	f := &fixture{s: s, ctx: b.Context()}
	gateway, mid := fleet.Gateway, fleet.Mid

	prefix := mid.String()[:4]
	deep := mid
	deep[0] = 0xc0
	for _, c := range []struct {
		name   string
		filter store.DeviceFilter
	}{
		{"ListDevices/first", store.DeviceFilter{}},
		{"ListDevices/deep", store.DeviceFilter{After: deep}},
		{"ListDevices/state", store.DeviceFilter{State: store.StateOnboarded}},
		{"ListDevices/state-deep", store.DeviceFilter{State: store.StateOnboarded, After: deep}},
		{"ListDevices/product", store.DeviceFilter{ProductID: gateway.ID}},
		{"ListDevices/batch", store.DeviceFilter{BatchID: "bench-05", After: deep}},
		{"ListDevices/suite", store.DeviceFilter{Algorithm: sigalg.MLDSA65}},
		{"ListDevices/class", store.DeviceFilter{RootOfTrust: "keygen"}},
		{"ListDevices/class-deep", store.DeviceFilter{RootOfTrust: "keygen", After: deep}},
		{"ListDevices/prefix4", store.DeviceFilter{IdentityPrefix: prefix}},
		{"ListDevices/prefix1-deep", store.DeviceFilter{IdentityPrefix: "c", After: deep}},
		{"ListDevices/prefix-full", store.DeviceFilter{IdentityPrefix: mid.String()}},
		{"ListDevices/cloud-pending", store.DeviceFilter{CloudState: store.CloudPending}},
		{"ListDevices/cloud-failed", store.DeviceFilter{CloudState: store.CloudFailed}},
		{"ListDevices/cloud-failed-deep", store.DeviceFilter{CloudState: store.CloudFailed, After: deep}},
		{"ListDevices/cloud-failed-class", store.DeviceFilter{CloudState: store.CloudFailed, RootOfTrust: "puf"}},
		{"ListDevices/state-class-product", store.DeviceFilter{State: store.StateOnboarded, RootOfTrust: "inject", ProductID: gateway.ID}},
	} {
		b.Run(c.name, func(b *testing.B) {
			n := 0
			for b.Loop() {
				page, err := f.s.ListDevices(f.ctx, c.filter)
				must(b, err)
				n = len(page)
			}
			b.ReportMetric(float64(n), "devices/page")
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/op")
		})
	}
	b.Run("ListBatches", func(b *testing.B) {
		for b.Loop() {
			_, err := f.s.ListBatches(f.ctx, store.BatchFilter{ProductID: gateway.ID})
			must(b, err)
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/op")
	})
	b.Run("FleetSummary", func(b *testing.B) {
		var sum store.FleetSummary
		for b.Loop() {
			var err error
			sum, err = f.s.FleetSummary(f.ctx, ConsoleBenchNow, 30*24*time.Hour, 24*time.Hour)
			must(b, err)
		}
		if sum.Total != ConsoleBenchDevices {
			b.Fatalf("summary of %d devices", sum.Total)
		}
		week := 0
		for _, o := range sum.Onboardings {
			week += o.Count
		}
		b.Logf("summary: %d onboarded, %d onboardings in the week, jobs %v, %d expiring, %d silent, failures %v",
			sum.ByState[store.StateOnboarded], week, sum.Jobs, sum.ExpiringSoon, sum.Silent, sum.Failures)
		b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/op")
	})
}
