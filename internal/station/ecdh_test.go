package station

import (
	"context"
	"crypto"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/device"
	"github.com/hallmark-iot/hallmark/internal/keys"
	"github.com/hallmark-iot/hallmark/internal/manifest"
	"github.com/hallmark-iot/hallmark/internal/sealing"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// wrapperSpy is the soft key store with a record of the wrappers the
// station handed it, so the test sees what an HSM key store would be given.
type wrapperSpy struct {
	keys.Manager
	mu       sync.Mutex
	wrappers []keys.Wrapper
}

func (s *wrapperSpy) GenerateDeviceKey(ctx context.Context, suite sigalg.ID, wrap keys.Wrapper) (crypto.PublicKey, []byte, error) {
	s.mu.Lock()
	s.wrappers = append(s.wrappers, wrap)
	s.mu.Unlock()
	return s.Manager.(keys.DeviceKeyGenerator).GenerateDeviceKey(ctx, suite, wrap)
}

// TestECDHChannelBatch programs inject chips whose channel is P-256 ECDH,
// with the soft key store, mixed with chips of the default HPKE channel:
// the station hands the key store a keys.ECDHTransport for exactly the
// ECDH chips and the chip's HPKE key for the others, every key arrives
// wrapped ("encrypted" in the manifest), the batch's plan records each
// kind's channel, and every device boots from its saved state and proves
// the identity the manifest gives it.
func TestECDHChannelBatch(t *testing.T) {
	f := newFactory(t)
	spy := &wrapperSpy{Manager: f.keys}
	dir := t.TempDir()
	cfg := f.config(t, dir, 8)
	cfg.Keys = spy
	var err error
	if cfg.Plan, err = NewPlan([]string{"inject:p256-ecdh", "inject"}, []string{"ecdsa-p256", "ed25519", "ml-dsa-65", "ml-dsa-44"}); err != nil {
		t.Fatal(err)
	}
	sum, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Enrolled != 8 || sum.Rejected != 0 || sum.ByKind["inject:p256-ecdh/ml-dsa-65"] != 1 || sum.ByKind["inject/ed25519"] != 1 {
		t.Fatalf("summary %+v", sum)
	}
	ecdhWrappers := 0
	for _, w := range spy.wrappers {
		switch w.(type) {
		case keys.ECDHTransport:
			ecdhWrappers++
		case *sealing.PublicKey:
		default:
			t.Errorf("key store was handed a %T", w)
		}
	}
	if len(spy.wrappers) != 8 || ecdhWrappers != 4 {
		t.Fatalf("%d wrappers, %d of them ECDH; want 8 and 4", len(spy.wrappers), ecdhWrappers)
	}
	batch, err := os.ReadFile(filepath.Join(dir, batchFile))
	if err != nil {
		t.Fatal(err)
	}
	var info batchInfo
	if err := json.Unmarshal(batch, &info); err != nil {
		t.Fatal(err)
	}
	recorded := 0
	for _, k := range info.Plan.Kinds {
		if k.Transport == device.TransportECDHP256 {
			recorded++
		}
	}
	if recorded != 4 {
		t.Errorf("batch.json records %d ECDH kinds, want 4:\n%s", recorded, batch)
	}
	for i, r := range f.verifyManifest(t, dir) {
		kind := cfg.Plan.KindOf(i)
		if r.Injection != manifest.Encrypted || r.RootOfTrust != manifest.Inject || r.Algorithm != kind.Algorithm {
			t.Errorf("record %d: %s/%s/%s, plan %s", i, r.RootOfTrust, r.Algorithm, r.Injection, kind)
		}
		dev, err := device.Load(filepath.Join(dir, devicesDir, deviceFile(i)), nil)
		if err != nil {
			t.Fatal(err)
		}
		wantTransport := device.DefaultTransport
		if kind.Transport != "" {
			wantTransport = kind.Transport
		}
		if dev.Transport() != wantTransport {
			t.Errorf("device %d has channel %q, plan %s", i, dev.Transport(), kind)
		}
		if err := dev.Boot(); err != nil {
			t.Fatal(err)
		}
		id, _, err := dev.Prove("test", []byte("n"))
		if err != nil || id != r.Identity {
			t.Errorf("device %d proves %s (%v), manifest says %s", i, id, err, r.Identity)
		}
	}
}

// TestPlanTransports: inject:SCHEME names a channel; the default scheme
// spelled out is plain inject, and an unknown scheme is refused.
func TestPlanTransports(t *testing.T) {
	p, err := NewPlan([]string{"inject:P256-ECDH", "inject:ml-kem-768"}, []string{"ed25519"})
	if err != nil {
		t.Fatal(err)
	}
	if p.Kinds[0].Transport != device.TransportECDHP256 || !p.Kinds[0].Channel || p.Kinds[1].String() != "inject:ml-kem-768/ed25519" {
		t.Fatalf("plan %+v", p)
	}
	if _, err := NewPlan([]string{"inject", "inject:x-wing"}, []string{"ed25519"}); err == nil {
		t.Error("inject and inject:x-wing are the same kind, named twice")
	}
	if _, err := NewPlan([]string{"inject:rsa"}, []string{"ed25519"}); err == nil {
		t.Error("an unknown channel scheme")
	}
}
