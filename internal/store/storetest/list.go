package storetest

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// testListDevices fills the store with devices of two products, three
// algorithms and all three states, then pages through every filter and
// compares with the same selection made here.
func testListDevices(t *testing.T, f *fixture) {
	all, gateway, sensors := f.fillForListing(t)
	middle := all[len(all)/2].Identity

	for _, c := range []struct {
		name   string
		filter store.DeviceFilter
		match  func(store.Device) bool
	}{
		{"everything", store.DeviceFilter{Limit: 97}, func(store.Device) bool { return true }},
		{"after the middle", store.DeviceFilter{After: middle, Limit: 50}, func(d store.Device) bool {
			return bytes.Compare(d.Identity[:], middle[:]) > 0
		}},
		{"registered", store.DeviceFilter{State: store.StateRegistered, Limit: 300}, hasState(store.StateRegistered)},
		{"onboarded", store.DeviceFilter{State: store.StateOnboarded, Limit: 13}, hasState(store.StateOnboarded)},
		{"revoked", store.DeviceFilter{State: store.StateRevoked}, hasState(store.StateRevoked)},
		{"product", store.DeviceFilter{ProductID: gateway.ID, Limit: 7}, func(d store.Device) bool { return d.ProductID == gateway.ID }},
		{"batch", store.DeviceFilter{BatchID: sensors.ID, Limit: 1000}, func(d store.Device) bool { return d.BatchID == sensors.ID }},
		{"algorithm", store.DeviceFilter{Algorithm: sigalg.MLDSA65, Limit: 40}, func(d store.Device) bool { return d.Algorithm == sigalg.MLDSA65 }},
		{
			"all filters and after",
			store.DeviceFilter{State: store.StateRegistered, ProductID: f.product.ID, BatchID: sensors.ID, Algorithm: sigalg.Ed25519, After: middle, Limit: 9},
			func(d store.Device) bool {
				return d.State == store.StateRegistered && d.BatchID == sensors.ID && d.Algorithm == sigalg.Ed25519 &&
					bytes.Compare(d.Identity[:], middle[:]) > 0
			},
		},
		{"no match", store.DeviceFilter{ProductID: "no-such-product"}, func(store.Device) bool { return false }},
		{"unknown state", store.DeviceFilter{State: "lost"}, func(store.Device) bool { return false }},
	} {
		t.Run(c.name, func(t *testing.T) {
			var wantDevices []store.Device
			for _, d := range all {
				if c.match(d) {
					wantDevices = append(wantDevices, d)
				}
			}
			equal(t, "devices", f.walk(t, c.filter), wantDevices)
		})
	}
	t.Run("page limits", func(t *testing.T) {
		for _, c := range []struct{ limit, want int }{{0, 100}, {-1, 100}, {1, 1}, {1000, 1000}, {1001, 1000}, {1 << 30, 1000}} {
			page, err := f.s.ListDevices(f.ctx, store.DeviceFilter{Limit: c.limit})
			must(t, err)
			if len(page) != c.want {
				t.Errorf("Limit %d: %d devices, want %d", c.limit, len(page), c.want)
			}
			equal(t, "first page", page, all[:len(page)])
		}
	})
}

func hasState(s store.DeviceState) func(store.Device) bool {
	return func(d store.Device) bool { return d.State == s }
}

// sortedIDs returns the keys of m in byte order, the order pages use.
func sortedIDs[V any](m map[identity.ID]V) []identity.ID {
	ids := make([]identity.ID, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b identity.ID) int { return bytes.Compare(a[:], b[:]) })
	return ids
}

// fillForListing registers 1,070 devices in two batches of two products,
// onboards every 7th and revokes every 11th (both: every 77th), and
// returns what the store must hold, in page order.
func (f *fixture) fillForListing(t *testing.T) (all []store.Device, gateway store.Product, sensors store.Batch) {
	gateway = store.Product{ID: "gateway", Name: "Gateway", CertValidity: time.Hour, CreatedAt: at(0)}
	must(t, f.s.CreateProduct(f.ctx, gateway))
	sensors, gateways := f.batch("sensors", "m-sensors"), f.batch("gateways", "m-gateways")
	gateways.ProductID = gateway.ID
	want := map[identity.ID]store.Device{}
	for _, c := range []struct {
		b store.Batch
		n int
	}{{sensors, 1010}, {gateways, 60}} {
		devices := makeDevices(c.b.ID, c.n)
		f.mustImport(t, c.b, devices)
		for _, d := range devices {
			want[d.Identity] = imported(d, c.b)
		}
	}
	// Every 7th device onboarded, every 11th revoked (77th: both).
	i := 0
	for _, id := range sortedIDs(want) {
		d := want[id]
		if i%7 == 0 {
			must(t, f.s.RecordOnboarding(f.ctx, newCert(id, i, at(2*time.Hour)), at(2*time.Hour)))
			d.State, d.OnboardedAt = store.StateOnboarded, at(2*time.Hour)
		}
		if i%11 == 0 {
			must(t, f.s.RevokeDevice(f.ctx, id, "test", at(3*time.Hour)))
			d = revokedAs(d, at(3*time.Hour), "test")
		}
		want[id] = d
		i++
	}
	all = make([]store.Device, 0, len(want))
	for _, id := range sortedIDs(want) {
		all = append(all, want[id])
	}
	return all, gateway, sensors
}
