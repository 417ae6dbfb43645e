package storetest

import (
	"crypto/sha256"
	"sync"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// The firmware repository's contract: a product's firmware policy round
// trips and updates field by field; an image is recorded once per digest,
// whoever races; listing pages by digest within a product.

func testFirmwarePolicy(t *testing.T, f *fixture) {
	root := func(s string) [32]byte { return sha256.Sum256([]byte(s)) }
	p := store.Product{ID: "lock", Name: "Lock", CertValidity: time.Hour, CloudEndpoint: "mqtts://l.example.com",
		CreatedAt: at(time.Minute), Firmware: store.FirmwarePolicy{Roots: [][32]byte{root("ecdsa"), root("ml-dsa")}, Retired: 1,
			ClassKey: root("class")}}
	must(t, f.s.CreateProduct(f.ctx, p))
	got, err := f.s.GetProduct(f.ctx, p.ID)
	must(t, err)
	equal(t, "GetProduct with a firmware policy", got, p)

	// Retired alone leaves roots and class key.
	retired := uint8(0)
	got, err = f.s.UpdateProduct(f.ctx, p.ID, store.ProductUpdate{FirmwareRetired: &retired})
	must(t, err)
	want := p
	want.Firmware.Retired = 0
	equal(t, "UpdateProduct of retired slots", got, want)

	// A zero class key clears it; roots replace the list, in order.
	roots, none := [][32]byte{root("ml-dsa"), root("ecdsa"), root("slh")}, [32]byte{}
	got, err = f.s.UpdateProduct(f.ctx, p.ID, store.ProductUpdate{FirmwareRoots: &roots, FirmwareClassKey: &none})
	must(t, err)
	want.Firmware.Roots, want.Firmware.ClassKey = roots, none
	equal(t, "UpdateProduct of roots and class key", got, want)

	// Another field's update keeps the policy; empty roots are stored empty.
	minimum := "1.0.0"
	got, err = f.s.UpdateProduct(f.ctx, p.ID, store.ProductUpdate{MinFirmwareVersion: &minimum})
	must(t, err)
	want.MinFirmwareVersion = minimum
	equal(t, "UpdateProduct of another field", got, want)
	empty := [][32]byte{}
	got, err = f.s.UpdateProduct(f.ctx, p.ID, store.ProductUpdate{FirmwareRoots: &empty})
	must(t, err)
	want.Firmware.Roots = nil
	equal(t, "UpdateProduct to no roots", got, want)
	got, err = f.s.GetProduct(f.ctx, f.product.ID)
	must(t, err)
	equal(t, "a product without a policy", got.Firmware, store.FirmwarePolicy{})
}

func firmwareImage(seed, product string, d time.Duration) store.FirmwareImage {
	return store.FirmwareImage{
		Digest: sha256.Sum256([]byte("image:" + seed)), ProductID: product, Type: "app", Version: "1.2.3",
		SecurityCounter: 4294967295, Size: 16<<20 + 9000, Encrypted: true,
		Signers:    []identity.ID{identity.FromSPKI([]byte(seed + "a")), identity.FromSPKI([]byte(seed + "b"))},
		UploadedAt: at(d), UploadedBy: "token:" + seed,
	}
}

func testFirmwareImages(t *testing.T, f *fixture) {
	img := firmwareImage("one", f.product.ID, time.Hour)
	rec, created, err := f.s.PutFirmwareImage(f.ctx, img)
	must(t, err)
	if !created {
		t.Fatal("first PutFirmwareImage: created = false")
	}
	equal(t, "PutFirmwareImage", rec, img)
	got, err := f.s.GetFirmwareImage(f.ctx, img.Digest)
	must(t, err)
	equal(t, "GetFirmwareImage", got, img)

	// The same digest again keeps the first record, whatever it says.
	again := img
	again.UploadedBy, again.UploadedAt, again.Version = "token:other", at(2*time.Hour), "9.9.9"
	rec, created, err = f.s.PutFirmwareImage(f.ctx, again)
	must(t, err)
	if created {
		t.Fatal("PutFirmwareImage of a recorded digest: created = true")
	}
	equal(t, "PutFirmwareImage again", rec, img)

	_, _, err = f.s.PutFirmwareImage(f.ctx, firmwareImage("orphan", "no-such-product", 0))
	wantErr(t, "PutFirmwareImage(unknown product)", err, store.ErrNotFound)
	_, err = f.s.GetFirmwareImage(f.ctx, sha256.Sum256([]byte("image:orphan")))
	wantErr(t, "GetFirmwareImage(unknown)", err, store.ErrNotFound)

	unsigned := firmwareImage("plain", f.product.ID, 0)
	unsigned.Signers, unsigned.Encrypted, unsigned.SecurityCounter = nil, false, 0
	rec, _, err = f.s.PutFirmwareImage(f.ctx, unsigned)
	must(t, err)
	equal(t, "an image with no signer listed, not encrypted, counter 0", rec, unsigned)
}

func testListFirmwareImages(t *testing.T, f *fixture) {
	other := store.Product{ID: "other", Name: "Other", CertValidity: time.Hour, CloudEndpoint: "mqtts://o.example.com", CreatedAt: at(0)}
	must(t, f.s.CreateProduct(f.ctx, other))
	var mine []store.FirmwareImage
	for i := range 7 {
		img := firmwareImage("list"+string(rune('a'+i)), f.product.ID, time.Duration(i)*time.Minute)
		mine = append(mine, img)
		_, _, err := f.s.PutFirmwareImage(f.ctx, img)
		must(t, err)
		_, _, err = f.s.PutFirmwareImage(f.ctx, firmwareImage("else"+string(rune('a'+i)), other.ID, 0))
		must(t, err)
	}
	var paged []store.FirmwareImage
	var after [32]byte
	for {
		page, err := f.s.ListFirmwareImages(f.ctx, store.FirmwareFilter{ProductID: f.product.ID, After: after, Limit: 3})
		must(t, err)
		if len(page) > 3 {
			t.Fatalf("page of %d with limit 3", len(page))
		}
		if len(page) == 0 {
			break
		}
		paged = append(paged, page...)
		after = page[len(page)-1].Digest
	}
	if len(paged) != len(mine) {
		t.Fatalf("paging by product found %d images, want %d", len(paged), len(mine))
	}
	for i := range paged {
		if paged[i].ProductID != f.product.ID {
			t.Errorf("image of product %q listed under %q", paged[i].ProductID, f.product.ID)
		}
		if i > 0 && string(paged[i-1].Digest[:]) >= string(paged[i].Digest[:]) {
			t.Errorf("images not in digest order at %d", i)
		}
	}
	all, err := f.s.ListFirmwareImages(f.ctx, store.FirmwareFilter{})
	must(t, err)
	if len(all) != 14 {
		t.Errorf("unfiltered list has %d images, want 14", len(all))
	}
	none, err := f.s.ListFirmwareImages(f.ctx, store.FirmwareFilter{ProductID: "no-such-product"})
	must(t, err)
	if len(none) != 0 {
		t.Errorf("unknown product lists %d images", len(none))
	}
}

func testPutFirmwareConcurrently(t *testing.T, f *fixture) {
	const n = 8
	var wg sync.WaitGroup
	results := make([]store.FirmwareImage, n)
	createdBy := make([]bool, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			img := firmwareImage("race", f.product.ID, time.Duration(i)*time.Second)
			img.UploadedBy = "token:" + string(rune('a'+i))
			results[i], createdBy[i], errs[i] = f.s.PutFirmwareImage(f.ctx, img)
		})
	}
	wg.Wait()
	creators := 0
	for i := range n {
		must(t, errs[i])
		if createdBy[i] {
			creators++
		}
		equal(t, "concurrent PutFirmwareImage", results[i], results[0])
	}
	if creators != 1 {
		t.Fatalf("%d concurrent PutFirmwareImage calls created the record, want exactly 1", creators)
	}
}
