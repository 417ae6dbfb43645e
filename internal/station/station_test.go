package station

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/device"
	"github.com/hallmark-iot/hallmark/internal/firmware"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/keys"
	"github.com/hallmark-iot/hallmark/internal/keys/softkms"
	"github.com/hallmark-iot/hallmark/internal/manifest"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// factory is the fixed part of a test batch: a vendor root key, a signed
// IEF and a station key store.
type factory struct {
	root    [32]byte
	ief     []byte
	keys    keys.Manager
	station crypto.PublicKey
}

func newFactory(t testing.TB) factory {
	t.Helper()
	suite, _ := sigalg.Lookup("ecdsa-p256")
	vendor, _ := suite.GenerateKey(rand.Reader)
	spki, _ := sigalg.MarshalPublicKey(vendor.Public())
	img, err := firmware.New(firmware.Metadata{Type: firmware.TypeIEF}, device.IEFPayload())
	if err != nil {
		t.Fatal(err)
	}
	if err := img.Sign(vendor); err != nil {
		t.Fatal(err)
	}
	ief, _ := img.MarshalBinary()
	ks, err := softkms.Open(context.Background(), filepath.Join(t.TempDir(), "keystore"), []byte("test passphrase"), softkms.InsecureKDFIterations(1000))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ks.Close() })
	pub, err := ks.CreateKey(context.Background(), keys.CreateKeyRequest{Name: "station", Suite: sigalg.MLDSA65})
	if err != nil {
		t.Fatal(err)
	}
	return factory{root: sha256.Sum256(spki), ief: ief, keys: ks, station: pub}
}

func (f factory) config(t testing.TB, dir string, count int) Config {
	t.Helper()
	plan, err := NewPlan(ClassLabels, sigalg.Names())
	if err != nil {
		t.Fatal(err)
	}
	return Config{Dir: dir, Count: count, Plan: plan, IEF: f.ief, RootKeyHashes: [][32]byte{f.root},
		Keys: f.keys, KeyName: "station", Workers: 4}
}

// verifyManifest checks the batch's manifest against the station key and
// returns its records.
func (f factory) verifyManifest(t *testing.T, dir string) []manifest.Record {
	t.Helper()
	file, err := os.Open(filepath.Join(dir, ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	var recs []manifest.Record
	if _, err := manifest.Verify(context.Background(), file, f.station, func(r manifest.Record) error {
		recs = append(recs, r)
		return nil
	}); err != nil {
		t.Fatalf("manifest does not verify: %v", err)
	}
	return recs
}

func TestBatchOfEveryKind(t *testing.T) {
	f := newFactory(t)
	dir := t.TempDir()
	sum, err := Run(context.Background(), f.config(t, dir, 40))
	if err != nil {
		t.Fatal(err)
	}
	if sum.Enrolled != 40 || sum.Rejected != 0 || len(sum.ByKind) != 20 {
		t.Fatalf("summary %+v", sum)
	}
	recs := f.verifyManifest(t, dir)
	if len(recs) != 40 {
		t.Fatalf("manifest holds %d records", len(recs))
	}
	plan := f.config(t, dir, 40).Plan
	for i, r := range recs {
		kind := plan.KindOf(i)
		wantInjection := manifest.NotInjected
		if kind.Class == device.ClassInject {
			wantInjection = manifest.Clear
			if kind.Channel {
				wantInjection = manifest.Encrypted
			}
		}
		if string(r.RootOfTrust) != string(kind.Class) || r.Algorithm != kind.Algorithm || r.Injection != wantInjection {
			t.Errorf("record %d is %s/%s/%s, plan says %s", i, r.RootOfTrust, r.Algorithm, r.Injection, kind)
		}
		// The device the manifest names exists and still proves its identity.
		dev, err := device.Load(filepath.Join(dir, devicesDir, deviceFile(i)), nil)
		if err != nil {
			t.Fatal(err)
		}
		dev.Program(f.ief)
		if err := dev.Boot(); err != nil {
			t.Fatal(err)
		}
		id, _, err := dev.Prove("test", []byte("n"))
		if err != nil || id != r.Identity {
			t.Errorf("device %d proves %s (%v), manifest says %s", i, id, err, r.Identity)
		}
	}
	// A second run of a finished batch makes no device and keeps them all.
	again, err := Run(context.Background(), f.config(t, dir, 40))
	if err != nil || again.Resumed != 40 || again.Enrolled != 40 {
		t.Fatalf("rerun: %+v, %v", again, err)
	}
	recsAgain := f.verifyManifest(t, dir)
	for i := range recs {
		if recs[i].Identity != recsAgain[i].Identity {
			t.Fatal("rerun changed the manifest's devices")
		}
	}
}

// TestResumeAfterInterruption stops a batch midway, then damages its
// journal the way a kill would (the last line lost after its device was
// saved, a torn partial line), and resumes.
func TestResumeAfterInterruption(t *testing.T) {
	f := newFactory(t)
	dir := t.TempDir()
	cfg := f.config(t, dir, 30)
	ctx, cancel := context.WithCancel(context.Background())
	var made atomic.Int32
	cfg.TRNG = func(int) io.Reader {
		if made.Add(1) == 12 {
			cancel()
		}
		return rand.Reader
	}
	if _, err := Run(ctx, cfg); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run = %v, want context.Canceled", err)
	}
	journalPath := filepath.Join(dir, journalFile)
	lines := readLines(t, journalPath)
	if len(lines) == 0 || len(lines) >= 30 {
		t.Fatalf("%d devices recorded before the interruption", len(lines))
	}
	var lost entry
	json.Unmarshal(lines[len(lines)-1], &lost)
	kept := bytes.Join(lines[:len(lines)-1], []byte("\n"))
	os.WriteFile(journalPath, append(kept, []byte("\n{\"seq\":99,\"dev")...), 0o600)

	cfg.TRNG = nil
	sum, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Enrolled != 30 || sum.Resumed != len(lines)-1 {
		t.Fatalf("resumed batch: %+v", sum)
	}
	recs := f.verifyManifest(t, dir)
	seen := map[identity.ID]bool{}
	for _, r := range recs {
		if seen[r.Identity] {
			t.Fatal("a device appears twice")
		}
		seen[r.Identity] = true
	}
	if len(recs) != 30 || recs[lost.Seq].Identity != lost.Device.Identity {
		t.Fatalf("the saved but unjournalled device %d was not kept: %d records", lost.Seq, len(recs))
	}
}

func readLines(t *testing.T, path string) [][]byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var lines [][]byte
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, maxJournalLine)
	for sc.Scan() {
		lines = append(lines, bytes.Clone(sc.Bytes()))
	}
	return lines
}

func TestDuplicateIdentityRefused(t *testing.T) {
	f := newFactory(t)
	dir := t.TempDir()
	cfg := f.config(t, dir, 6)
	cfg.Plan, _ = NewPlan([]string{"keygen"}, []string{"ed25519"})
	cfg.Workers = 1
	// Devices 2 and 4 get the same TRNG: a cloned chip.
	cfg.TRNG = func(seq int) io.Reader {
		if seq == 2 || seq == 4 {
			return mrand.NewChaCha8([32]byte{7})
		}
		return rand.Reader
	}
	sum, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Enrolled != 5 || sum.Rejected != 1 || !strings.Contains(sum.Rejection[0], "duplicate device identity") {
		t.Fatalf("summary %+v", sum)
	}
	if n := len(f.verifyManifest(t, dir)); n != 5 {
		t.Fatalf("manifest holds %d devices", n)
	}
}

func TestResumeRefusesAnotherBatch(t *testing.T) {
	f := newFactory(t)
	dir := t.TempDir()
	if _, err := Run(context.Background(), f.config(t, dir, 2)); err != nil {
		t.Fatal(err)
	}
	if _, err := Run(context.Background(), f.config(t, dir, 3)); !errors.Is(err, ErrMismatch) {
		t.Fatalf("rerun with another count = %v, want ErrMismatch", err)
	}
}

func TestPlan(t *testing.T) {
	p, err := NewPlan([]string{"puf", "inject-clear"}, []string{"p256", "ml-dsa-87"})
	if err != nil {
		t.Fatal(err)
	}
	if got := p.KindOf(3).String(); got != "inject-clear/ml-dsa-87" {
		t.Fatalf("KindOf(3) = %s", got)
	}
	for _, bad := range [][2][]string{{{"tpm"}, {"ed25519"}}, {{"puf"}, {"rsa"}}, {{"puf", "puf"}, {"ed25519"}}, {nil, {"ed25519"}}} {
		if _, err := NewPlan(bad[0], bad[1]); err == nil {
			t.Errorf("NewPlan(%v, %v) succeeded", bad[0], bad[1])
		}
	}
}
