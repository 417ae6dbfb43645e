package storetest

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// A product's allocation policy: static by default, kept whole on create
// (the webhook secret included), replaced by SetAllocation, and a
// malformed one refused without a change.
func testAllocationPolicy(t *testing.T, f *fixture) {
	got, err := f.s.GetProduct(f.ctx, f.product.ID)
	must(t, err)
	if !got.Allocation.IsStatic() || len(got.Candidates()) != 1 || got.Candidates()[0].URL != f.product.CloudEndpoint {
		t.Fatalf("a product created without a policy: %+v, candidates %v", got.Allocation, got.Candidates())
	}
	hash := store.Allocation{Kind: store.AllocationHash, Endpoints: []store.WeightedEndpoint{
		{URL: "mqtts://a.example.com", Weight: 1}, {URL: "mqtts://b.example.com", Weight: 3}}}
	p := store.Product{ID: "spread", Name: "Spread", CertValidity: time.Hour, CloudEndpoint: "mqtts://a.example.com",
		CreatedAt: at(time.Minute), Allocation: hash}
	must(t, f.s.CreateProduct(f.ctx, p))
	got, err = f.s.GetProduct(f.ctx, p.ID)
	must(t, err)
	equal(t, "GetProduct of a hash policy", got, p)

	hook := store.Allocation{Kind: store.AllocationWebhook, Endpoints: hash.Endpoints[1:],
		WebhookURL: "https://decide.example.com/allocate", WebhookSecret: []byte("0123456789abcdef0123")}
	got, err = f.s.SetAllocation(f.ctx, p.ID, hook, "mqtts://b.example.com")
	must(t, err)
	want := p
	want.Allocation, want.CloudEndpoint = hook, "mqtts://b.example.com"
	equal(t, "SetAllocation to a webhook", got, want)
	list, err := f.s.ListProducts(f.ctx)
	must(t, err)
	for _, l := range list {
		if l.ID == p.ID {
			equal(t, "ListProducts", l, want)
		}
	}

	for name, bad := range map[string]store.Allocation{
		"unknown kind":   {Kind: "random", Endpoints: hash.Endpoints},
		"no endpoints":   {Kind: store.AllocationHash},
		"zero weight":    {Kind: store.AllocationHash, Endpoints: []store.WeightedEndpoint{{URL: "mqtts://a.example.com"}}},
		"listed twice":   {Kind: store.AllocationHash, Endpoints: []store.WeightedEndpoint{hash.Endpoints[0], hash.Endpoints[0]}},
		"short secret":   {Kind: store.AllocationWebhook, Endpoints: hash.Endpoints, WebhookURL: "https://x.example.com", WebhookSecret: []byte("short")},
		"hash with hook": {Kind: store.AllocationHash, Endpoints: hash.Endpoints, WebhookURL: "https://x.example.com"},
	} {
		if _, err := f.s.SetAllocation(f.ctx, p.ID, bad, "mqtts://a.example.com"); !errors.Is(err, store.ErrBadAllocation) {
			t.Fatalf("SetAllocation of a policy with %s: %v, want ErrBadAllocation", name, err)
		}
		bp := p
		bp.ID, bp.Allocation = "bad-policy", bad
		if err := f.s.CreateProduct(f.ctx, bp); !errors.Is(err, store.ErrBadAllocation) {
			t.Fatalf("CreateProduct with a policy with %s: %v, want ErrBadAllocation", name, err)
		}
	}
	got, err = f.s.GetProduct(f.ctx, p.ID)
	must(t, err)
	equal(t, "GetProduct after refused changes", got, want)
	if _, err := f.s.GetProduct(f.ctx, "bad-policy"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a refused product was created: %v", err)
	}

	got, err = f.s.SetAllocation(f.ctx, p.ID, store.Allocation{Kind: store.AllocationStatic}, "mqtts://c.example.com")
	must(t, err)
	want.Allocation, want.CloudEndpoint = store.Allocation{}, "mqtts://c.example.com"
	equal(t, "SetAllocation back to static", got, want)
	if _, err := f.s.SetAllocation(f.ctx, "no-such-product", hash, "mqtts://a.example.com"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("SetAllocation of an unknown product: %v", err)
	}
}

// A device's endpoint is recorded once: the first writer wins, later
// calls (concurrent ones included) get what is recorded, and every read
// of the device shows it.
func testAllocateEndpoint(t *testing.T, f *fixture) {
	devices := makeDevices("alloc", 2)
	b := f.batch("alloc", "m-alloc")
	f.mustImport(t, b, devices)
	d, err := f.s.GetDevice(f.ctx, devices[0].Identity)
	must(t, err)
	if d.CloudEndpoint != "" {
		t.Fatalf("an imported device has endpoint %q", d.CloudEndpoint)
	}
	const n = 8
	var wg sync.WaitGroup
	results := make([]string, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			results[i], errs[i] = f.s.AllocateEndpoint(f.ctx, devices[0].Identity, "mqtts://e"+string(rune('0'+i))+".example.com")
		})
	}
	wg.Wait()
	for i := range n {
		must(t, errs[i])
		if results[i] != results[0] {
			t.Fatalf("concurrent allocations returned %q and %q", results[0], results[i])
		}
	}
	again, err := f.s.AllocateEndpoint(f.ctx, devices[0].Identity, "mqtts://later.example.com")
	must(t, err)
	if again != results[0] {
		t.Fatalf("a later allocation changed the endpoint to %q from %q", again, results[0])
	}
	d, err = f.s.GetDevice(f.ctx, devices[0].Identity)
	must(t, err)
	if d.CloudEndpoint != results[0] {
		t.Fatalf("GetDevice: endpoint %q, allocated %q", d.CloudEndpoint, results[0])
	}
	list, err := f.s.ListDevices(f.ctx, store.DeviceFilter{BatchID: b.ID})
	must(t, err)
	for _, l := range list {
		if want := map[bool]string{true: results[0]}[l.Identity == devices[0].Identity]; l.CloudEndpoint != want {
			t.Fatalf("ListDevices: %s has endpoint %q, want %q", l.Identity, l.CloudEndpoint, want)
		}
	}
	if _, err := f.s.AllocateEndpoint(f.ctx, identity.ID{0xee}, "mqtts://a.example.com"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("AllocateEndpoint of an unknown device: %v", err)
	}
}
