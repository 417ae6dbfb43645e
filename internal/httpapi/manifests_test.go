package httpapi

import (
	"bytes"
	"context"
	"crypto"
	"strings"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/manifest"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// importedBatch imports batch-1, 20 Ed25519 and 5 ECDSA devices, and
// checks the import.
func importedBatch(t *testing.T) (e *env, station crypto.Signer, recs []manifest.Record, data []byte, res ImportResult) {
	t.Helper()
	e = newEnv(t)
	station = e.registry(t)
	recs = append(devices(t, sigalg.Ed25519, "batch-1", 20), devices(t, sigalg.ECDSAP256, "batch-1", 5)...)
	data = writeManifest(t, station, "batch-1", recs)
	e.importManifest(t, "sensor", data).decode(t, 201, &res)
	if res.Batch != "batch-1" || res.Product != "sensor" || res.Devices != 25 || res.Imported != 25 || res.AlreadyImported {
		t.Fatalf("import %+v", res)
	}
	if n := e.deviceCount(t); n != 25 {
		t.Fatalf("%d devices registered", n)
	}
	d, err := e.store.GetDevice(context.Background(), recs[3].Identity)
	if err != nil || d.State != store.StateRegistered || d.ProductID != "sensor" || d.BatchID != "batch-1" ||
		d.RootOfTrust != "puf" || d.Injection != "none" || !bytes.Equal(d.PublicKey, mustSPKI(t, recs[3])) {
		t.Fatalf("device %+v, %v", d, err)
	}
	if ev := e.lastAudit(t); ev.Action != "manifest.import" || ev.Outcome != "ok" || ev.Subject != "batch:batch-1" {
		t.Fatalf("audit %+v", ev)
	}
	return e, station, recs, data, res
}

func TestManifestImport(t *testing.T) {
	e, station, recs, data, res := importedBatch(t)
	t.Run("idempotent", func(t *testing.T) {
		var again ImportResult
		e.importManifest(t, "sensor", data).decode(t, 200, &again)
		if !again.AlreadyImported || again.Imported != 0 || again.Digest != res.Digest {
			t.Fatalf("re-import %+v", again)
		}
		if n := e.deviceCount(t); n != 25 {
			t.Fatalf("%d devices", n)
		}
	})
	t.Run("same manifest, other product", func(t *testing.T) {
		e.call(t, "POST", "/v1/admin/products", e.admin, ProductRequest{
			ID: "gauge", Name: "Gauge", CertValidity: "720h", CloudEndpoint: "https://gauge.example.com",
		}).decode(t, 201, &Product{})
		e.importManifest(t, "gauge", data).wantProblem(t, 409, "conflict")
		list, _ := e.store.ListDevices(context.Background(), store.DeviceFilter{ProductID: "gauge"})
		if len(list) != 0 {
			t.Fatalf("%d devices moved to gauge", len(list))
		}
	})
	t.Run("ndjson content type", func(t *testing.T) {
		e.call(t, "POST", "/v1/admin/manifests?product=sensor", e.admin, data, "application/x-ndjson").decode(t, 200, &ImportResult{})
	})
	t.Run("same batch name, other manifest", func(t *testing.T) {
		other := writeManifest(t, station, "batch-1", devices(t, sigalg.Ed25519, "other", 2))
		e.importManifest(t, "sensor", other).wantProblem(t, 409, "conflict")
		e.wantDevices(t, 25)
	})
	t.Run("duplicates across batches", func(t *testing.T) {
		fresh := devices(t, sigalg.Ed25519, "batch-2", 3)
		dup := writeManifest(t, station, "batch-2", append(fresh, recs[0], recs[7]))
		p := e.importManifest(t, "sensor", dup).wantProblem(t, 409, "duplicate-devices")
		ids, _ := p.Extensions["duplicates"].([]any)
		if len(ids) != 2 || ids[0] != recs[0].Identity.String() || ids[1] != recs[7].Identity.String() || p.Extensions["duplicate_count"] != float64(2) {
			t.Fatalf("problem %+v", p)
		}
		e.wantDevices(t, 25)
		if _, err := e.store.GetBatch(context.Background(), "batch-2"); err == nil {
			t.Fatal("batch-2 recorded")
		}
	})
}

// TestManifestImportRefusals sends manifests the import must refuse, each
// leaving the 25 devices of the first import as they were.
func TestManifestImportRefusals(t *testing.T) {
	e, station, _, data, _ := importedBatch(t)
	t.Run("tampered", func(t *testing.T) {
		fresh := writeManifest(t, station, "batch-3", devices(t, sigalg.Ed25519, "batch-3", 4))
		lines := bytes.SplitAfter(fresh, []byte("\n"))
		for name, bad := range map[string][]byte{
			"record removed": bytes.Join(append(lines[:2:2], lines[3:]...), nil),
			"bit flipped":    flipIn(fresh, len(lines[0])+len(lines[1])+30),
			"truncated":      fresh[:len(fresh)-10],
			"no trailer":     bytes.Join(lines[:len(lines)-2], nil),
			"data after":     append(bytes.Clone(fresh), lines[1]...),
			"signature":      flipIn(fresh, len(fresh)-12),
		} {
			t.Run(name, func(t *testing.T) {
				e.importManifest(t, "sensor", bad).wantProblem(t, 422, "manifest-invalid")
				e.wantDevices(t, 25)
			})
		}
	})
	t.Run("header claims the registered station, signed by another", func(t *testing.T) {
		rogue := deriveKey(t, sigalg.Ed25519, "rogue", 0)
		forged := writeManifest(t, rogue, "batch-4", devices(t, sigalg.Ed25519, "batch-4", 2))
		// Swap the header's station for the registered one: the header no
		// longer matches its own key, and the trailer's signature is the
		// rogue's.
		forged = bytes.Replace(forged, []byte(mustID(t, rogue)), []byte(mustID(t, station)), -1)
		e.importManifest(t, "sensor", forged).wantProblem(t, 422, "manifest-invalid")
		e.wantDevices(t, 25)
	})
	t.Run("unknown station", func(t *testing.T) {
		rogue := deriveKey(t, sigalg.Ed25519, "rogue", 0)
		e.importManifest(t, "sensor", writeManifest(t, rogue, "batch-5", devices(t, sigalg.Ed25519, "batch-5", 2))).
			wantProblem(t, 422, "unknown-station")
		e.wantDevices(t, 25)
	})
	t.Run("unknown product", func(t *testing.T) {
		fresh := writeManifest(t, station, "batch-6", devices(t, sigalg.Ed25519, "batch-6", 2))
		e.importManifest(t, "gadget", fresh).wantProblem(t, 422, "unknown-product")
		e.call(t, "POST", "/v1/admin/manifests", e.admin, fresh, "application/jsonl").wantProblem(t, 400, "malformed-request")
		e.call(t, "POST", "/v1/admin/manifests?product=sensor&product=gadget", e.admin, fresh, "application/jsonl").
			wantProblem(t, 400, "malformed-request")
		e.wantDevices(t, 25)
	})
	t.Run("wrong content type", func(t *testing.T) {
		e.call(t, "POST", "/v1/admin/manifests?product=sensor", e.admin, data, "application/json").wantProblem(t, 415, "unsupported-media-type")
	})
	t.Run("not a manifest", func(t *testing.T) {
		for _, body := range []string{"", "{}", "hello\n", `{"station":"zz"}` + "\n", strings.Repeat("x", 20000)} {
			e.importManifest(t, "sensor", []byte(body)).wantProblem(t, 422, "manifest-invalid")
		}
	})
	t.Run("scope", func(t *testing.T) {
		reader := e.token(t, "reader", ScopeDevicesRead)
		e.call(t, "POST", "/v1/admin/manifests?product=sensor", reader, data, "application/jsonl").wantProblem(t, 403, "forbidden")
	})
}

func TestManifestTooLarge(t *testing.T) {
	e := newEnvConfig(t, Config{MaxManifestBytes: 4096})
	station := e.registry(t)
	data := writeManifest(t, station, "big", devices(t, sigalg.Ed25519, "big", 40))
	if len(data) <= 4096 {
		t.Fatalf("manifest of %d bytes is not over the limit", len(data))
	}
	e.importManifest(t, "sensor", data).wantProblem(t, 413, "body-too-large")
	e.wantDevices(t, 0)
	small := writeManifest(t, station, "small", devices(t, sigalg.Ed25519, "small", 2))
	e.importManifest(t, "sensor", small).decode(t, 201, &ImportResult{})
}

func (e *env) wantDevices(t testing.TB, n int) {
	t.Helper()
	if got := e.deviceCount(t); got != n {
		t.Fatalf("%d devices registered, want %d", got, n)
	}
}

func flipIn(data []byte, at int) []byte {
	out := bytes.Clone(data)
	// Flip between two characters of the same class so the line stays
	// parseable and only the signature can tell.
	switch c := out[at]; {
	case c >= '0' && c <= '8':
		out[at]++
	case c == '9':
		out[at] = '0'
	case c >= 'a' && c <= 'y', c >= 'A' && c <= 'Y':
		out[at]++
	default:
		out[at] ^= 0x01
	}
	return out
}

func mustSPKI(t testing.TB, rec manifest.Record) []byte {
	t.Helper()
	der, err := sigalg.MarshalPublicKey(rec.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func mustID(t testing.TB, key crypto.Signer) string {
	t.Helper()
	id, err := identity.FromPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	return id.String()
}
