package httpapi

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/manifest"
	"github.com/hallmark-iot/hallmark/internal/manifest/manifesttest"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/sigalg/sigalgtest"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// forgeableKeyset is sigalgtest.Forgeable, or the test stops.
func forgeableKeyset(t testing.TB) map[string]crypto.Signer {
	t.Helper()
	keys, err := sigalgtest.Forgeable()
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// forgedRecord is the manifest record of key with a proof of possession
// the attacker signs with it.
func forgedRecord(t testing.TB, key crypto.Signer) manifest.Record {
	t.Helper()
	rec := deviceRecord(t, key)
	rec.PublicKey = nil
	rec.SPKI, _ = sigalg.MarshalPublicKey(key.Public())
	return rec
}

// TestStationRegistrationRefusesDegenerateKeys: a station key anyone can
// sign for would let anyone sign manifests; registering one is refused as
// a malformed request naming the weak key, and nothing is stored.
func TestStationRegistrationRefusesDegenerateKeys(t *testing.T) {
	e := newEnv(t)
	for name, key := range forgeableKeyset(t) {
		r := e.call(t, "POST", "/v1/admin/stations", e.admin, StationRequest{Name: "weak", PublicKey: stationPEM(t, key)})
		if p := r.wantProblem(t, 400, "malformed-request"); !strings.Contains(p.Detail, "weak key") {
			t.Errorf("%s: problem detail %q does not name the weak key", name, p.Detail)
		}
	}
	if list, err := e.store.ListStations(context.Background()); err != nil || len(list) != 0 {
		t.Fatalf("%d stations stored (%v)", len(list), err)
	}
}

// TestManifestImportRefusesDegenerateKeys: a correctly signed manifest
// holding one device whose key anyone can sign for, among honest ones, is
// refused whole.
func TestManifestImportRefusesDegenerateKeys(t *testing.T) {
	e := newEnv(t)
	station := e.registry(t)
	honest := devices(t, sigalg.MLDSA65, "honest", 3)
	n := 0
	for name, key := range forgeableKeyset(t) {
		n++
		batch := fmt.Sprintf("weak-%d", n)
		recs := append(append([]manifest.Record(nil), honest[:2]...), forgedRecord(t, key), honest[2])
		data, err := manifesttest.Forge(station, batch, testStart, recs)
		if err != nil {
			t.Fatal(err)
		}
		p := e.importManifest(t, "sensor", data).wantProblem(t, 422, "manifest-invalid")
		if !strings.Contains(p.Detail, "weak key") {
			t.Errorf("%s: problem detail %q does not name the weak key", name, p.Detail)
		}
		e.wantDevices(t, 0)
		if _, err := e.store.GetBatch(context.Background(), batch); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("%s: batch recorded (%v)", name, err)
		}
	}
	// The honest devices alone import: the refusal was the key's.
	data, _ := manifesttest.Forge(station, "honest", testStart, honest)
	e.importManifest(t, "sensor", data).decode(t, 201, &ImportResult{})
	e.wantDevices(t, 3)
}

// TestImportFromDegenerateStationRefused: a station registered with such a
// key before the policy existed (put straight into the store) gets no
// manifest imported, however correctly its forger signs.
func TestImportFromDegenerateStationRefused(t *testing.T) {
	e := newEnv(t)
	e.registry(t)
	weak, _ := sigalgtest.ZeroMLDSA(sigalg.MLDSA65, [32]byte{7})
	spki, _ := sigalg.MarshalPublicKey(weak.Public())
	if err := e.store.CreateStation(context.Background(), store.Station{ID: identity.FromSPKI(spki), Name: "old",
		Algorithm: sigalg.MLDSA65, PublicKey: spki, CreatedAt: testStart}); err != nil {
		t.Fatal(err)
	}
	data, err := manifesttest.Forge(weak, "from-weak", testStart, devices(t, sigalg.Ed25519, "weak-station", 2))
	if err != nil {
		t.Fatal(err)
	}
	p := e.importManifest(t, "sensor", data).wantProblem(t, 422, "manifest-invalid")
	if !strings.Contains(p.Detail, "key policy refuses") {
		t.Errorf("problem detail %q does not say why", p.Detail)
	}
	e.wantDevices(t, 0)
}
