package app

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/device"
	"github.com/hallmark-iot/hallmark/internal/firmware"
	"github.com/hallmark-iot/hallmark/internal/httpapi"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/keys"
	"github.com/hallmark-iot/hallmark/internal/keys/softkms"
	"github.com/hallmark-iot/hallmark/internal/manifest"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/station"
)

// lockFactory is a real station: a vendor-signed IEF and a station key in
// a key store, making batches locked or left open.
type lockFactory struct {
	cfg        station.Config
	stationPEM []byte
	ief        []byte
}

func newLockFactory(t *testing.T) lockFactory {
	t.Helper()
	ed, _ := sigalg.Lookup("ed25519")
	vendor, _ := ed.GenerateKey(rand.Reader)
	img, _ := firmware.New(firmware.Metadata{Type: firmware.TypeIEF}, device.IEFPayload())
	img.Sign(vendor)
	ief, _ := img.MarshalBinary()
	spki, _ := sigalg.MarshalPublicKey(vendor.Public())
	ks, err := softkms.Open(t.Context(), filepath.Join(t.TempDir(), "ks"), []byte("station passphrase"), softkms.InsecureKDFIterations(1000))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ks.Close() })
	pub, err := ks.CreateKey(t.Context(), keys.CreateKeyRequest{Name: "station", Suite: sigalg.Ed25519})
	if err != nil {
		t.Fatal(err)
	}
	stationPEM, _ := sigalg.EncodePublicKeyPEM(pub)
	plan, err := station.NewPlan([]string{"keygen", "puf"}, []string{"ecdsa-p256"})
	if err != nil {
		t.Fatal(err)
	}
	return lockFactory{ief: ief, stationPEM: stationPEM, cfg: station.Config{Count: 2, Plan: plan, IEF: ief,
		RootKeyHashes: [][32]byte{sha256.Sum256(spki)}, Keys: ks, KeyName: "station", Workers: 2}}
}

// batch runs a batch and returns its directory and manifest.
func (lf lockFactory) batch(t *testing.T, name string, leaveOpen bool) (string, []byte) {
	t.Helper()
	cfg := lf.cfg
	cfg.Dir, cfg.BatchID, cfg.LeaveOpen = t.TempDir(), name, leaveOpen
	if _, err := station.Run(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(cfg.Dir, station.ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Dir, data
}

// chip loads device seq of a batch and boots its IEF, as the device's
// first power-up in the field does.
func (lf lockFactory) chip(t *testing.T, dir string, seq int) (*device.Device, identity.ID) {
	t.Helper()
	d, err := device.Load(filepath.Join(dir, "devices", "device-000000"+string(rune('0'+seq))+".json"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Program(lf.ief); err != nil {
		t.Fatal(err)
	}
	if err := d.Boot(); err != nil {
		t.Fatal(err)
	}
	id, err := d.Identity()
	if err != nil {
		t.Fatal(err)
	}
	return d, id
}

func manifestIDs(t *testing.T, data []byte) []string {
	t.Helper()
	var ids []string
	if _, err := manifest.Inspect(t.Context(), bytes.NewReader(data), func(r manifest.Record) error {
		ids = append(ids, r.Identity.String())
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return ids
}

// TestAttackDevicesLeftOpen attacks a product that requires locked
// devices, over HTTPS: a manifest of devices left open (whose keys a debug
// probe reads out), the same manifest with its lock field rewritten, and
// a manifest from before stations recorded locks are refused whole; a
// locked batch is imported and onboards; and a device imported before the
// requirement was set is refused onboarding once it is.
func TestAttackDevicesLeftOpen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := start(t, newDataDir(t), sigalg.ECDSAP256)
	admin := adminClient(t, p)
	lf := newLockFactory(t)
	if _, err := admin.CreateStation(ctx, httpapi.StationRequest{Name: "line", PublicKey: string(lf.stationPEM)}); err != nil {
		t.Fatal(err)
	}
	for _, pr := range []httpapi.ProductRequest{
		{ID: "locked-only", Name: "Locked only", CertValidity: "720h", CloudEndpoint: "mqtts://broker.test:8883", RequireLocked: true},
		{ID: "bench", Name: "Bench", CertValidity: "720h", CloudEndpoint: "mqtts://broker.test:8883"},
	} {
		got, err := admin.CreateProduct(ctx, pr)
		if err != nil || got.RequireLocked != pr.RequireLocked {
			t.Fatalf("create product %s: %+v, %v", pr.ID, got, err)
		}
	}
	openDir, open := lf.batch(t, "open", true)
	lockedDir, locked := lf.batch(t, "locked", false)

	// The devices left open give their keys to a debug probe.
	openChip, _ := lf.chip(t, openDir, 0)
	if _, err := openChip.DebugRead(device.RegionKeyStore); err != nil {
		t.Fatalf("debug read of a device left open: %v", err)
	}

	notImported := func(what string, data []byte) {
		t.Helper()
		for _, id := range manifestIDs(t, data) {
			parsed, _ := identity.Parse(id)
			if _, err := admin.GetDevice(ctx, parsed); !isProblem(err, "not-found") {
				t.Fatalf("%s: device %s was imported (%v)", what, id, err)
			}
		}
	}
	_, err := admin.ImportManifest(ctx, "locked-only", bytes.NewReader(open))
	prob := weakKeyProblem(t, err, "devices-not-locked")
	listed, _ := prob.Extensions["not_locked"].([]any)
	var names []string
	for _, v := range listed {
		names = append(names, v.(string))
	}
	if want := manifestIDs(t, open); !slices.Equal(names, want) || prob.Extensions["not_locked_count"] != float64(len(want)) {
		t.Fatalf("problem names %v (count %v), want %v", names, prob.Extensions["not_locked_count"], want)
	}
	notImported("open devices", open)

	forged := bytes.ReplaceAll(open, []byte(`"locks":"open"`), []byte(`"locks":"`+manifest.LocksClosed+`"`))
	if bytes.Equal(forged, open) {
		t.Fatal("no lock field rewritten")
	}
	_, err = admin.ImportManifest(ctx, "locked-only", bytes.NewReader(forged))
	weakKeyProblem(t, err, "manifest-invalid")
	notImported("lock field rewritten", open) // the same devices

	old := newFleetBatch(t, "before-locks", sigalg.ECDSAP256)
	if _, err := admin.CreateStation(ctx, httpapi.StationRequest{Name: "old line", PublicKey: string(old.stationPEM)}); err != nil {
		t.Fatal(err)
	}
	_, err = admin.ImportManifest(ctx, "locked-only", bytes.NewReader(old.manifest))
	weakKeyProblem(t, err, "devices-not-locked")
	notImported("manifest without locks", old.manifest)

	if res, err := admin.ImportManifest(ctx, "locked-only", bytes.NewReader(locked)); err != nil || res.Imported != 2 {
		t.Fatalf("import of a locked batch: %+v, %v", res, err)
	}
	lockedChip, lockedID := lf.chip(t, lockedDir, 1)
	if d, err := admin.GetDevice(ctx, lockedID); err != nil || d.Locks != string(manifest.LocksClosed) {
		t.Fatalf("locked device: %+v, %v", d, err)
	}
	if _, _, err := onboard(t, p, lockedChip, lockedID); err != nil {
		t.Fatalf("onboarding a locked device: %v", err)
	}

	// Imported into a product without the requirement, then required.
	if _, err := admin.ImportManifest(ctx, "bench", bytes.NewReader(open)); err != nil {
		t.Fatal(err)
	}
	on := true
	if got, err := admin.UpdateProduct(ctx, "bench", httpapi.ProductUpdateRequest{RequireLocked: &on}); err != nil || !got.RequireLocked {
		t.Fatalf("require locked devices: %+v, %v", got, err)
	}
	benchChip, benchID := lf.chip(t, openDir, 1)
	if d, err := admin.GetDevice(ctx, benchID); err != nil || d.Locks != "open" {
		t.Fatalf("open device: %+v, %v", d, err)
	}
	creds, _, err := onboard(t, p, benchChip, benchID)
	if !isProblem(err, "device-not-locked") || creds != nil {
		t.Fatalf("onboarding a device left open: %v, want device-not-locked", err)
	}
}
