package firmwarerepo

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/admin"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
	"github.com/hallmark-iot/hallmark/internal/store/sqlite"
)

// TestUploadOneProductPerImage: the same bytes uploaded for a second
// product with the same policy are refused as a conflict (an image is one
// record, its first product's), the first product's record unchanged; an
// oversized body is refused before it is stored.
func TestUploadOneProductPerImage(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "hallmark.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ec := testKey(t, sigalg.ECDSAP256, 1)
	for _, id := range []string{"one", "two"} {
		if err := st.CreateProduct(ctx, store.Product{ID: id, Name: id, CertValidity: time.Hour, CloudEndpoint: "mqtts://x.example.com",
			CreatedAt: time.Now(), Firmware: store.FirmwarePolicy{Roots: [][32]byte{rootOf(t, ec)}}}); err != nil {
			t.Fatal(err)
		}
	}
	blobs, err := OpenBlobs(BlobDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	repo, err := New(Config{Store: st, Blobs: blobs, Audit: st})
	if err != nil {
		t.Fatal(err)
	}
	caller := admin.Caller{Token: store.Token{ID: "t1"}, Addr: "192.0.2.1"}
	data := buildImage(t, app, nil, ec)
	rec, created, err := repo.Upload(ctx, caller, "one", bytes.NewReader(data))
	if err != nil || !created || rec.UploadedBy != "token:t1" {
		t.Fatalf("first upload: %+v %v %v", rec, created, err)
	}
	if _, _, err := repo.Upload(ctx, caller, "two", bytes.NewReader(data)); !hasCode(err, admin.CodeConflict) {
		t.Fatalf("same bytes for another product: %v", err)
	}
	if got, err := st.GetFirmwareImage(ctx, rec.Digest); err != nil || got.ProductID != "one" {
		t.Fatalf("record after the conflict: %+v %v", got, err)
	}
	if _, _, err := repo.Upload(ctx, caller, "one", bytes.NewReader(make([]byte, 17<<20))); !hasCode(err, admin.CodeBodyTooLarge) {
		t.Fatalf("oversized body: %v", err)
	}
	events, err := st.ListAudit(ctx, store.AuditFilter{Action: ActionUpload})
	if err != nil || len(events) != 3 || events[0].Outcome != "ok" || events[1].Outcome != "error" || events[2].Detail != admin.CodeBodyTooLarge {
		t.Fatalf("audit: %+v %v", events, err)
	}
}
