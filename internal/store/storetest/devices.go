package storetest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/store"
)

func testImportBatch(t *testing.T, f *fixture) {
	first := makeDevices("batch-1", 30)
	b1 := f.batch("batch-1", "manifest-1")
	input := slices.Clone(first)
	// Fields a manifest does not supply are the store's to set.
	input[0].BatchID, input[0].ProductID, input[0].State = "bogus", "bogus", store.StateRevoked
	input[0].CreatedAt, input[0].OnboardedAt = at(-time.Hour), at(-time.Hour)
	f.mustImport(t, b1, input)
	got, err := f.s.GetBatch(f.ctx, b1.ID)
	must(t, err)
	want := b1
	want.DeviceCount = len(first)
	equal(t, "GetBatch", got, want)
	for _, d := range first {
		got, err := f.s.GetDevice(f.ctx, d.Identity)
		must(t, err)
		equal(t, "GetDevice", got, imported(d, b1))
	}
	_, err = f.s.GetBatch(f.ctx, "no-such-batch")
	wantErr(t, "GetBatch(unknown)", err, store.ErrNotFound)
	_, err = f.s.GetDevice(f.ctx, identity.ID{7})
	wantErr(t, "GetDevice(unknown)", err, store.ErrNotFound)

	t.Run("empty batch", func(t *testing.T) {
		empty := f.batch("empty", "m-empty")
		f.mustImport(t, empty, nil)
		got, err := f.s.GetBatch(f.ctx, empty.ID)
		must(t, err)
		equal(t, "GetBatch", got, empty)
	})
}

// testImportRefusals tries every import that must change nothing, after
// a first batch, then imports the refused devices properly.
func testImportRefusals(t *testing.T, f *fixture) {
	first := makeDevices("batch-1", 30)
	b1 := f.batch("batch-1", "manifest-1")
	f.mustImport(t, b1, first)
	before := f.allDevices(t)
	fresh := makeDevices("batch-2", 20)
	cancelled, cancel := context.WithCancel(f.ctx)
	cancel()
	unknownStation, unknownProduct := f.batch("batch-2", "m2"), f.batch("batch-2", "m2")
	unknownStation.StationID = identity.ID{9}
	unknownProduct.ProductID = "no-such-product"
	for _, c := range []struct {
		name     string
		ctx      context.Context
		b        store.Batch
		devices  []store.Device
		want     store.ImportResult
		wantErr  error // nil: any error will do when anyError is set
		anyError bool
	}{
		{name: "same batch and digest", b: b1, devices: first[:3], want: store.ImportResult{AlreadyImported: true}},
		{name: "same batch, other digest", b: f.batch("batch-1", "manifest-other"), devices: first, wantErr: store.ErrConflict},
		{
			// The duplicates come last, so rows before them were written
			// before the import failed: all must be gone.
			name: "duplicates from another batch", b: f.batch("batch-2", "m2"),
			devices: append(slices.Clone(fresh), first[7], first[3], first[7]),
			want:    store.ImportResult{Duplicates: []identity.ID{first[7].Identity, first[3].Identity}},
		},
		{
			name: "duplicate within the import", b: f.batch("batch-2", "m2"),
			devices: append(slices.Clone(fresh), fresh[4]),
			want:    store.ImportResult{Duplicates: []identity.ID{fresh[4].Identity}},
		},
		{name: "unknown station", b: unknownStation, devices: fresh, wantErr: store.ErrNotFound},
		{name: "unknown product", b: unknownProduct, devices: fresh, wantErr: store.ErrNotFound},
		{name: "cancelled context", ctx: cancelled, b: f.batch("batch-2", "m2"), devices: fresh, anyError: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx := f.ctx
			if c.ctx != nil {
				ctx = c.ctx
			}
			res, err := f.s.ImportBatch(ctx, c.b, c.devices)
			switch {
			case c.wantErr != nil:
				wantErr(t, "ImportBatch", err, c.wantErr)
			case c.anyError && err == nil:
				t.Fatalf("ImportBatch = %+v, want an error", res)
			case !c.anyError && err != nil:
				t.Fatalf("ImportBatch: %v", err)
			case !c.anyError:
				equal(t, "ImportResult", res, c.want)
			}
			f.checkUnchanged(t, before, b1, fresh)
		})
	}
	t.Run("refusals left nothing behind", func(t *testing.T) {
		b2 := f.batch("batch-2", "m2")
		f.mustImport(t, b2, fresh)
		got, err := f.s.GetDevice(f.ctx, fresh[4].Identity)
		must(t, err)
		equal(t, "GetDevice", got, imported(fresh[4], b2))
	})
}

// checkUnchanged fails unless the store holds exactly the devices before
// and batch b1, and none of fresh.
func (f *fixture) checkUnchanged(t *testing.T, before []store.Device, b1 store.Batch, fresh []store.Device) {
	t.Helper()
	equal(t, "devices after a refused import", f.allDevices(t), before)
	got, err := f.s.GetBatch(f.ctx, b1.ID)
	must(t, err)
	if got.ManifestDigest != b1.ManifestDigest || got.DeviceCount != len(before) {
		t.Errorf("batch %q changed: %+v", b1.ID, got)
	}
	_, err = f.s.GetBatch(f.ctx, "batch-2")
	wantErr(t, "GetBatch of a refused batch", err, store.ErrNotFound)
	for _, d := range fresh {
		_, err := f.s.GetDevice(f.ctx, d.Identity)
		wantErr(t, "GetDevice of a refused device", err, store.ErrNotFound)
	}
}

// allDevices pages through every device, 1000 at a time.
func (f *fixture) allDevices(t *testing.T) []store.Device {
	t.Helper()
	return f.walk(t, store.DeviceFilter{Limit: 1000})
}

// walk pages through the devices filter selects, checking each page's
// size against the limit.
func (f *fixture) walk(t *testing.T, filter store.DeviceFilter) []store.Device {
	t.Helper()
	limit := filter.Limit
	switch {
	case limit <= 0:
		limit = 100
	case limit > 1000:
		limit = 1000
	}
	var all []store.Device
	for {
		page, err := f.s.ListDevices(f.ctx, filter)
		must(t, err)
		if len(page) > limit {
			t.Fatalf("ListDevices returned %d devices, limit %d", len(page), limit)
		}
		all = append(all, page...)
		if len(page) < limit {
			return all
		}
		filter.After = page[len(page)-1].Identity
	}
}

func testImportBatchLarge(t *testing.T, f *fixture) {
	devices := makeDevices("large", largeImport)
	b := f.batch("large", "m-large")
	start := time.Now()
	f.mustImport(t, b, devices)
	elapsed := time.Since(start)
	t.Logf("imported %d devices in %v (%.0f devices/s)", len(devices), elapsed, float64(len(devices))/elapsed.Seconds())
	got, err := f.s.GetBatch(f.ctx, b.ID)
	must(t, err)
	if got.DeviceCount != len(devices) {
		t.Errorf("DeviceCount = %d, want %d", got.DeviceCount, len(devices))
	}
	for _, i := range []int{0, len(devices) / 2, len(devices) - 1} {
		d, err := f.s.GetDevice(f.ctx, devices[i].Identity)
		must(t, err)
		equal(t, "GetDevice", d, imported(devices[i], b))
	}
	// Re-importing the whole batch under another name reports every
	// device as a duplicate and changes nothing.
	res, err := f.s.ImportBatch(f.ctx, f.batch("large-again", "m-large-2"), devices)
	must(t, err)
	if res.Imported != 0 || len(res.Duplicates) != len(devices) {
		t.Errorf("re-import under another name: imported %d, %d duplicates; want 0 and %d",
			res.Imported, len(res.Duplicates), len(devices))
	}
	_, err = f.s.GetBatch(f.ctx, "large-again")
	wantErr(t, "GetBatch of the refused re-import", err, store.ErrNotFound)
}

func testRevokeDevice(t *testing.T, f *fixture) {
	devices := makeDevices("revoke", 3)
	b := f.batch("revoke", "m-revoke")
	f.mustImport(t, b, devices)
	onboarded, registered, bystander := devices[0], devices[1], devices[2]
	certs := []store.Certificate{newCert(onboarded.Identity, 1, at(2*time.Hour)), newCert(onboarded.Identity, 2, at(3*time.Hour))}
	for _, c := range certs {
		must(t, f.s.RecordOnboarding(f.ctx, c, c.IssuedAt))
	}
	certs[0].SupersededAt = certs[1].IssuedAt // by the second
	for _, c := range []struct {
		name  string
		d     store.Device
		certs []store.Certificate
	}{
		{"onboarded, with certificates", onboarded, certs},
		{"registered", registered, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			revokedAt := at(5 * time.Hour)
			must(t, f.s.RevokeDevice(f.ctx, c.d.Identity, "stolen from the warehouse", revokedAt))
			// A second revocation succeeds and changes nothing.
			must(t, f.s.RevokeDevice(f.ctx, c.d.Identity, "again", at(6*time.Hour)))
			got, err := f.s.GetDevice(f.ctx, c.d.Identity)
			must(t, err)
			want := imported(c.d, b)
			want = revokedAs(want, revokedAt, "stolen from the warehouse")
			if c.certs != nil {
				want.OnboardedAt = c.certs[0].IssuedAt
			}
			equal(t, "revoked device", got, want)
			for _, cert := range c.certs {
				got, err := f.s.GetCertificate(f.ctx, cert.Serial)
				must(t, err)
				cert.RevokedAt, cert.RevocationReason = revokedAt, store.ReasonKeyCompromise
				equal(t, "certificate of a revoked device", got, cert)
			}
		})
	}
	got, err := f.s.GetDevice(f.ctx, bystander.Identity)
	must(t, err)
	equal(t, "device not revoked", got, imported(bystander, b))
	wantErr(t, "RevokeDevice(unknown)", f.s.RevokeDevice(f.ctx, identity.ID{3}, "", at(0)), store.ErrNotFound)
}
