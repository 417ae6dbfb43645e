package admin

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/store"
	"github.com/hallmark-iot/hallmark/internal/store/sqlite"
)

// TestProductIssuingCA: a product's issuing CA must be well formed and one
// the platform has (Config.IssuingCAs); a refused create or update
// changes nothing; an accepted update says so in its audit event.
func TestProductIssuingCA(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "hallmark.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rec, log := newRecorder()
	r := NewRegistry(st, rec, testNow).checkingCAs(func(name string) error {
		if name == "ecdsa-p256" || name == "ml-dsa-65" {
			return nil
		}
		return errors.New("no such CA")
	})
	caller := Caller{Token: store.Token{ID: "t"}}
	base := ProductRequest{ID: "lock", Name: "Lock", CertValidity: "720h", CloudEndpoint: "mqtts://b.example.com"}
	for _, bad := range []string{"ML-DSA-65", "ml dsa", "-x", strings.Repeat("a", 33), "ml-dsa-87"} {
		q := base
		q.IssuingCA = bad
		if _, err := r.CreateProduct(ctx, caller, q); !isCode(err, CodeMalformed) || !strings.Contains(err.Error(), "issuing_ca") {
			t.Errorf("CreateProduct with issuing CA %q = %v", bad, err)
		}
	}
	if _, err := st.GetProduct(ctx, "lock"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a refused product was stored: %v", err)
	}
	q := base
	q.IssuingCA = "ml-dsa-65"
	p, err := r.CreateProduct(ctx, caller, q)
	if err != nil || p.IssuingCA != "ml-dsa-65" {
		t.Fatalf("CreateProduct: %+v, %v", p, err)
	}
	missing := "ml-dsa-87"
	if _, err := r.UpdateProduct(ctx, caller, "lock", ProductUpdateRequest{IssuingCA: &missing}); !isCode(err, CodeMalformed) {
		t.Fatalf("UpdateProduct to a missing CA = %v", err)
	}
	if got, _ := st.GetProduct(ctx, "lock"); got.IssuingCA != "ml-dsa-65" {
		t.Fatalf("refused update changed the CA to %q", got.IssuingCA)
	}
	log.events = nil
	first := ""
	if p, err = r.UpdateProduct(ctx, caller, "lock", ProductUpdateRequest{IssuingCA: &first}); err != nil || p.IssuingCA != "" {
		t.Fatalf("UpdateProduct to the first CA: %+v, %v", p, err)
	}
	if len(log.events) != 1 || log.events[0].Action != ActionProductUpdate || log.events[0].Detail != "issuing_ca=" {
		t.Fatalf("audit events %+v", log.events)
	}
	// Without a check (no CA set known), any well-formed name is taken.
	open := NewRegistry(st, rec, testNow)
	q.ID, q.IssuingCA = "other", "ml-dsa-87"
	if _, err := open.CreateProduct(ctx, caller, q); err != nil {
		t.Fatalf("CreateProduct without a CA check: %v", err)
	}
}
