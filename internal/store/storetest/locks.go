package storetest

import (
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/store"
)

// closedLocks is the manifest's spelling of a device with every lock
// closed; the store keeps the string as given.
const closedLocks = "debug,key-store-window,bootloader"

// A product's lock requirement: off by default, kept on create, changed
// alone by an update and left alone by updates of other fields.
func testProductRequireLocked(t *testing.T, f *fixture) {
	got, err := f.s.GetProduct(f.ctx, f.product.ID)
	must(t, err)
	if got.RequireLocked {
		t.Fatal("a product created without the lock requirement requires locked devices")
	}
	p := store.Product{ID: "locked-only", Name: "Locked only", CertValidity: time.Hour, CloudEndpoint: "mqtts://l.example.com",
		CreatedAt: at(time.Minute), RequireLocked: true}
	must(t, f.s.CreateProduct(f.ctx, p))
	got, err = f.s.GetProduct(f.ctx, p.ID)
	must(t, err)
	equal(t, "GetProduct requiring locked devices", got, p)

	minimum := "2.0.0"
	got, err = f.s.UpdateProduct(f.ctx, p.ID, store.ProductUpdate{MinFirmwareVersion: &minimum})
	must(t, err)
	want := p
	want.MinFirmwareVersion = minimum
	equal(t, "UpdateProduct of another field", got, want)

	off := false
	got, err = f.s.UpdateProduct(f.ctx, p.ID, store.ProductUpdate{RequireLocked: &off})
	must(t, err)
	want.RequireLocked = false
	equal(t, "UpdateProduct turning the requirement off", got, want)
	on := true
	got, err = f.s.UpdateProduct(f.ctx, f.product.ID, store.ProductUpdate{RequireLocked: &on})
	must(t, err)
	if !got.RequireLocked {
		t.Fatal("UpdateProduct did not turn the requirement on")
	}
	list, err := f.s.ListProducts(f.ctx)
	must(t, err)
	for _, l := range list {
		if l.RequireLocked != (l.ID == f.product.ID) {
			t.Fatalf("ListProducts: %s requires locked devices: %v", l.ID, l.RequireLocked)
		}
	}
}

// A device keeps the lock state of its manifest record, whatever it is,
// through every read, and its successor after a migration keeps it too:
// the chip is the same.
func testDeviceLocks(t *testing.T, f *fixture) {
	devices := makeDevices("locks", 3)
	devices[0].Locks, devices[1].Locks = closedLocks, "open" // devices[2]: a record without the field
	b := f.batch("locks", "m-locks")
	f.mustImport(t, b, devices)
	for _, d := range devices {
		got, err := f.s.GetDevice(f.ctx, d.Identity)
		must(t, err)
		equal(t, "GetDevice", got, imported(d, b))
		got, err = f.s.GetDeviceOfSuite(f.ctx, d.Identity, d.Algorithm)
		must(t, err)
		equal(t, "GetDeviceOfSuite", got, imported(d, b))
	}
	list, err := f.s.ListDevices(f.ctx, store.DeviceFilter{BatchID: b.ID})
	must(t, err)
	for _, got := range list {
		for _, d := range devices {
			if d.Identity == got.Identity && got.Locks != d.Locks {
				t.Fatalf("ListDevices: locks %q, imported %q", got.Locks, d.Locks)
			}
		}
	}

	locked := makeDevices("locked-migrates", 1)
	locked[0].Locks = closedLocks
	f.mustImport(t, f.batch("locked-migrates", "m-lm"), locked)
	old := lifecycleDevice{id: locked[0].Identity}
	c := newCert(old.id, 1, at(2*time.Hour))
	must(t, f.s.RecordOnboarding(f.ctx, c, at(2*time.Hour)))
	old.certs = append(old.certs, c)
	m := f.migration(t, old, "locked-migrates", at(3*time.Hour))
	_, err = f.s.CompleteMigration(f.ctx, m)
	must(t, err)
	successor, err := f.s.GetDevice(f.ctx, m.New)
	must(t, err)
	if successor.Locks != closedLocks {
		t.Fatalf("the successor of a locked device has locks %q", successor.Locks)
	}
}
