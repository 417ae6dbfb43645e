package storetest

import (
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/store"
)

// A product's issuing CA (docs/pki.md, "Several CAs"): empty by default
// (the first CA), kept on create, changed alone by an update, left alone
// by updates of other fields, and set back to empty.
func testProductIssuingCA(t *testing.T, f *fixture) {
	got, err := f.s.GetProduct(f.ctx, f.product.ID)
	must(t, err)
	if got.IssuingCA != "" {
		t.Fatalf("a product created without an issuing CA has %q", got.IssuingCA)
	}
	p := store.Product{ID: "pq-lock", Name: "PQ lock", CertValidity: time.Hour, CloudEndpoint: "mqtts://l.example.com",
		CreatedAt: at(time.Minute), IssuingCA: "ml-dsa-65"}
	must(t, f.s.CreateProduct(f.ctx, p))
	got, err = f.s.GetProduct(f.ctx, p.ID)
	must(t, err)
	equal(t, "GetProduct with an issuing CA", got, p)

	minimum := "2.0.0"
	got, err = f.s.UpdateProduct(f.ctx, p.ID, store.ProductUpdate{MinFirmwareVersion: &minimum})
	must(t, err)
	want := p
	want.MinFirmwareVersion = minimum
	equal(t, "UpdateProduct of another field", got, want)

	ecdsa := "ecdsa-p256"
	got, err = f.s.UpdateProduct(f.ctx, p.ID, store.ProductUpdate{IssuingCA: &ecdsa})
	must(t, err)
	want.IssuingCA = ecdsa
	equal(t, "UpdateProduct of the issuing CA", got, want)
	list, err := f.s.ListProducts(f.ctx)
	must(t, err)
	found := false
	for _, l := range list {
		if l.ID == p.ID {
			found = true
			equal(t, "ListProducts", l, want)
		}
	}
	if !found {
		t.Fatalf("ListProducts misses %s", p.ID)
	}

	first := ""
	got, err = f.s.UpdateProduct(f.ctx, p.ID, store.ProductUpdate{IssuingCA: &first})
	must(t, err)
	want.IssuingCA = ""
	equal(t, "UpdateProduct back to the first CA", got, want)
	other, err := f.s.GetProduct(f.ctx, f.product.ID)
	must(t, err)
	if other.IssuingCA != "" {
		t.Fatalf("updating one product moved another to %q", other.IssuingCA)
	}
}
