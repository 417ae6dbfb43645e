package admin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/store"
	"github.com/hallmark-iot/hallmark/internal/store/sqlite"
)

func fp(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }

// TestFirmwarePolicyRequests: a product's firmware policy is checked as a
// device's OTP would hold it (at most four distinct roots, retired slots
// that exist, one root left live), and an update is checked against what
// it leaves, with its change in the audit event.
func TestFirmwarePolicyRequests(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "hallmark.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rec, log := newRecorder()
	r := NewRegistry(st, rec, testNow)
	caller := Caller{Token: store.Token{ID: "t"}}
	base := ProductRequest{ID: "lock", Name: "Lock", CertValidity: "720h", CloudEndpoint: "mqtts://b.example.com"}
	bad := map[string]func(*ProductRequest){
		"five roots":      func(q *ProductRequest) { q.FirmwareRoots = []string{fp("a"), fp("b"), fp("c"), fp("d"), fp("e")} },
		"a repeated root": func(q *ProductRequest) { q.FirmwareRoots = []string{fp("a"), fp("a")} },
		"upper-case hex":  func(q *ProductRequest) { q.FirmwareRoots = []string{strings.ToUpper(fp("a"))} },
		"short root":      func(q *ProductRequest) { q.FirmwareRoots = []string{fp("a")[:62]} },
		"slot 4": func(q *ProductRequest) {
			q.FirmwareRoots, q.FirmwareRetiredSlots = []string{fp("a"), fp("b")}, []int{4}
		},
		"slot without a root": func(q *ProductRequest) { q.FirmwareRoots, q.FirmwareRetiredSlots = []string{fp("a")}, []int{1} },
		"every root retired":  func(q *ProductRequest) { q.FirmwareRoots, q.FirmwareRetiredSlots = []string{fp("a")}, []int{0} },
		"bad class key":       func(q *ProductRequest) { q.FirmwareClassKey = "class.pub" },
	}
	for name, mutate := range bad {
		q := base
		mutate(&q)
		if err := q.Validate(); !isCode(err, CodeMalformed) {
			t.Errorf("%s: Validate = %v", name, err)
		}
		if _, err := r.CreateProduct(ctx, caller, q); !isCode(err, CodeMalformed) {
			t.Errorf("%s: CreateProduct = %v", name, err)
		}
	}
	log.events = nil
	q := base
	q.FirmwareRoots, q.FirmwareRetiredSlots, q.FirmwareClassKey = []string{fp("ec"), fp("pq")}, []int{0}, fp("class")
	p, err := r.CreateProduct(ctx, caller, q)
	if err != nil || len(p.Firmware.Roots) != 2 || p.Firmware.Retired != 1 || hex.EncodeToString(p.Firmware.ClassKey[:]) != fp("class") {
		t.Fatalf("CreateProduct: %+v %v", p.Firmware, err)
	}
	log.only(t)
	// Replacing the roots by one would leave slot 0, the only root, retired.
	one := []string{fp("pq")}
	if _, err := r.UpdateProduct(ctx, caller, "lock", ProductUpdateRequest{FirmwareRoots: &one}); !isCode(err, CodeMalformed) {
		t.Fatalf("update leaving every root retired: %v", err)
	}
	log.events = nil
	none, empty := []int{}, ""
	p, err = r.UpdateProduct(ctx, caller, "lock", ProductUpdateRequest{FirmwareRoots: &one, FirmwareRetiredSlots: &none, FirmwareClassKey: &empty})
	if err != nil || len(p.Firmware.Roots) != 1 || p.Firmware.Retired != 0 || p.Firmware.ClassKey != ([32]byte{}) {
		t.Fatalf("UpdateProduct: %+v %v", p.Firmware, err)
	}
	if ev := log.only(t); ev.Detail != "firmware_roots="+fp("pq")+" firmware_retired_slots=none firmware_class_key=" {
		t.Fatalf("audit detail %q", ev.Detail)
	}
}

func isCode(err error, code string) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}
