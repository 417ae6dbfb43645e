package evidence

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/audit/chain"
	"github.com/hallmark-iot/hallmark/internal/firmware"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/manifest"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
	"github.com/hallmark-iot/hallmark/internal/store/sqlite"
)

// fixture is one real registry (SQLite in memory) with a station, a
// product with a firmware policy and an image, a batch imported from a
// real station-signed manifest, audit events chained and checkpointed,
// and the pack of its device.
type fixture struct {
	auditKey crypto.Signer
	device   identity.ID
	manifest []byte
	pack     []byte
	src      Source
}

var (
	fixtureOnce sync.Once
	theFixture  *fixture
	fixtureErr  error
)

func getFixture(t testing.TB) *fixture {
	t.Helper()
	fixtureOnce.Do(func() { theFixture, fixtureErr = buildFixture(context.Background()) })
	if fixtureErr != nil {
		t.Fatal(fixtureErr)
	}
	return theFixture
}

func genKey(id sigalg.ID) crypto.Signer {
	s, _ := sigalg.Lookup(string(id))
	k, err := s.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}

func buildFixture(ctx context.Context) (*fixture, error) {
	st, err := sqlite.Open(ctx, sqlite.Memory)
	if err != nil {
		return nil, err
	}
	// The store stays open for the tests' lifetime: TestExportIsDeterministic reads it again.
	f := &fixture{auditKey: genKey(sigalg.ECDSAP256)}
	stationKey, vendor, devKey := genKey(sigalg.Ed25519), genKey(sigalg.Ed25519), genKey(sigalg.Ed25519)
	stationSPKI, _ := sigalg.MarshalPublicKey(stationKey.Public())
	vendorSPKI, _ := sigalg.MarshalPublicKey(vendor.Public())
	devSPKI, _ := sigalg.MarshalPublicKey(devKey.Public())
	f.device = identity.FromSPKI(devSPKI)
	now := time.Now().UTC().Truncate(time.Second)
	station := store.Station{ID: identity.FromSPKI(stationSPKI), Name: "line", Algorithm: sigalg.Ed25519, PublicKey: stationSPKI, CreatedAt: now}
	if err := st.CreateStation(ctx, station); err != nil {
		return nil, err
	}
	product := store.Product{ID: "meter", Name: "Meter", CertValidity: time.Hour, CloudEndpoint: "mqtts://b:8883", CreatedAt: now,
		Firmware: store.FirmwarePolicy{Roots: [][32]byte{sha256.Sum256(vendorSPKI)}}}
	if err := st.CreateProduct(ctx, product); err != nil {
		return nil, err
	}
	// The manifest, as the station writes it.
	var mf bytes.Buffer
	w, err := manifest.NewWriter(&mf, manifest.Header{Batch: "batch-1"}, stationKey)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, 32)
	rand.Read(nonce)
	proof, _ := sigalg.Sign(devKey, identity.ProofMessage(identity.FactoryProofContext, nonce, f.device))
	if err := w.Add(ctx, manifest.Record{Identity: f.device, Algorithm: sigalg.Ed25519, SPKI: devSPKI, RootOfTrust: manifest.Keygen,
		Injection: manifest.NotInjected, Time: now, Nonce: nonce, Proof: proof}); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	f.manifest = mf.Bytes()
	sum, err := manifest.Verify(ctx, bytes.NewReader(f.manifest), stationKey.Public(), nil)
	if err != nil {
		return nil, err
	}
	_, err = st.ImportBatch(ctx, store.Batch{ID: "batch-1", StationID: station.ID, ProductID: "meter", ManifestDigest: sum.Digest, DeviceCount: 1, ImportedAt: now},
		[]store.Device{{Identity: f.device, Algorithm: sigalg.Ed25519, PublicKey: devSPKI, RootOfTrust: "keygen", Injection: "none",
			BatchID: "batch-1", StationID: station.ID, ProductID: "meter", State: store.StateRegistered, CreatedAt: now}})
	if err != nil {
		return nil, err
	}
	// A firmware image signed by the product's root.
	img, _ := firmware.New(firmware.Metadata{Type: firmware.TypeApplication, Version: firmware.Version{Major: 1, Minor: 2}, SecurityCounter: 3}, []byte("app v1.2.0"))
	if err := img.Sign(vendor); err != nil {
		return nil, err
	}
	imgBytes, _ := img.MarshalBinary()
	digest := sha256.Sum256(imgBytes)
	if _, _, err := st.PutFirmwareImage(ctx, store.FirmwareImage{Digest: digest, ProductID: "meter", Type: "app", Version: "1.2.0", SecurityCounter: 3,
		Size: int64(len(imgBytes)), Signers: []identity.ID{identity.FromSPKI(vendorSPKI)}, UploadedAt: now, UploadedBy: "token:t"}); err != nil {
		return nil, err
	}
	for _, ev := range []store.AuditEvent{
		{Time: now, Actor: "token:t", Action: "manifest.import", Subject: "batch:batch-1", Outcome: "ok"},
		{Time: now, Actor: "token:t", Action: "device.get", Subject: "device:" + f.device.String(), Outcome: "ok"},
		{Time: now, Actor: "token:t", Action: "device.get", Subject: "device:ffff", Outcome: "ok"},
	} {
		if _, err := st.AppendAudit(ctx, ev); err != nil {
			return nil, err
		}
	}
	sealer, err := chain.NewSealer(chain.SealerConfig{Chain: st, Key: f.auditKey})
	if err != nil {
		return nil, err
	}
	if _, err := sealer.Step(ctx, true); err != nil {
		return nil, err
	}
	src := Source{Store: st, Key: f.auditKey, CAs: func() []CA { return nil },
		Firmware: func(d [32]byte) (io.ReadCloser, error) {
			if d != digest {
				return nil, errors.New("no such image")
			}
			return io.NopCloser(bytes.NewReader(imgBytes)), nil
		}}
	f.src = src
	var pack bytes.Buffer
	if err := src.Export(ctx, Request{Scope: ScopeDevice, Subject: f.device.String()}, &pack); err != nil {
		return nil, err
	}
	f.pack = pack.Bytes()
	if err := src.Export(ctx, Request{Scope: ScopeDevice, Subject: strings.Repeat("ab", 32)}, io.Discard); !errors.Is(err, ErrNotFound) {
		return nil, errors.New("an unknown device exported: " + errString(err))
	}
	return f, nil
}

func errString(err error) string {
	if err == nil {
		return "no error"
	}
	return err.Error()
}

func verifyBytes(b []byte, pub crypto.PublicKey, opts Options) (*Report, error) {
	return Verify(context.Background(), bytes.NewReader(b), int64(len(b)), pub, opts)
}

func TestPackVerifies(t *testing.T) {
	f := getFixture(t)
	rep, err := verifyBytes(f.pack, f.auditKey.Public(), Options{Manifests: map[string][]byte{"batch-1": f.manifest}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Devices != 1 || rep.Firmware != 1 || rep.AuditEntries != 2 || rep.Manifests != 1 {
		t.Fatalf("report %+v: want 1 device, 1 image, 2 audit entries (device and batch), 1 manifest", rep)
	}
}

// members splits a pack into its members, in order.
func members(t *testing.T, pack []byte) (names []string, data map[string][]byte) {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(pack))
	data = map[string][]byte{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names, data
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		names, data[h.Name] = append(names, h.Name), b
	}
}

// rebuild writes members back in order, as a forger would.
func rebuild(t *testing.T, names []string, data map[string][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range names {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: n, Size: int64(len(data[n])), Mode: 0o644}); err != nil {
			t.Fatal(err)
		}
		tw.Write(data[n])
	}
	tw.Close()
	return buf.Bytes()
}

func TestTamperingIsDetected(t *testing.T) {
	f := getFixture(t)
	pub := f.auditKey.Public()
	dev := "devices/" + f.device.String() + "/device.json"
	var auditMember string
	names, _ := members(t, f.pack)
	for _, n := range names {
		if strings.HasPrefix(n, "audit/") {
			auditMember = n
		}
	}
	cases := []struct {
		name   string
		change func(names []string, data map[string][]byte) ([]string, map[string][]byte)
		want   string
	}{
		{"flip a byte", func(n []string, d map[string][]byte) ([]string, map[string][]byte) {
			d[dev][10] ^= 1
			return n, d
		}, "member " + dev + ": SHA-256"},
		{"remove a member", func(n []string, d map[string][]byte) ([]string, map[string][]byte) {
			for i, x := range n {
				if x == dev {
					return append(n[:i:i], n[i+1:]...), d
				}
			}
			return n, d
		}, "member " + dev + ": listed in MANIFEST.json but missing"},
		{"add a member", func(n []string, d map[string][]byte) ([]string, map[string][]byte) {
			d["devices/extra.json"] = []byte("{}")
			return append([]string{"devices/extra.json"}, n...), d
		}, "member devices/extra.json: not listed"},
		{"swap the signature", func(n []string, d map[string][]byte) ([]string, map[string][]byte) {
			other := genKey(sigalg.ECDSAP256)
			d[MemberSignature], _ = sigalg.Sign(other, SignedMessage(d[MemberManifest]))
			return n, d
		}, "member MANIFEST.sig: signature over MANIFEST.json does not verify"},
		{"alter an audit entry", func(n []string, d map[string][]byte) ([]string, map[string][]byte) {
			d[auditMember] = bytes.Replace(d[auditMember], []byte(`"outcome": "ok"`), []byte(`"outcome": "no"`), 1)
			return n, d
		}, "member " + auditMember + ": SHA-256"},
		{"truncate", func(n []string, d map[string][]byte) ([]string, map[string][]byte) {
			return n[:len(n)-2], d
		}, "member MANIFEST.json: missing"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			names, data := members(t, f.pack)
			names, data = c.change(names, data)
			tampered := rebuild(t, names, data)
			_, err := verifyBytes(tampered, pub, Options{})
			if !errors.Is(err, ErrPack) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an ErrPack containing %q", err, c.want)
			}
		})
	}
}

// TestResignedForgeryIsDetected: even with the audit key (a forger who
// re-signs the manifest), an altered audit entry fails its chain proof,
// and an altered device key fails its identity.
func TestResignedForgeryIsDetected(t *testing.T) {
	f := getFixture(t)
	names, _ := members(t, f.pack)
	for _, c := range []struct{ prefix, suffix, old, new, want string }{
		{"audit/", ".json", `"outcome": "ok"`, `"outcome": "no"`, "does not lead to the head signed"},
		{"devices/", "/device.json", `"public_key": "MC`, `"public_key": "MD`, "identity is not the SHA-256 of its public key"},
		{"firmware/", ".json", `"version": "1.2.0"`, `"version": "1.2.1"`, "header says version 1.2.0"},
	} {
		_, data := members(t, f.pack)
		var target string
		for _, n := range names {
			if strings.HasPrefix(n, c.prefix) && strings.HasSuffix(n, c.suffix) {
				target = n
			}
		}
		if !bytes.Contains(data[target], []byte(c.old)) {
			t.Fatalf("%s holds no %s", target, c.old)
		}
		data[target] = bytes.Replace(data[target], []byte(c.old), []byte(c.new), 1)
		resigned := resign(t, f.auditKey, names, data)
		_, err := verifyBytes(resigned, f.auditKey.Public(), Options{})
		if err == nil || !strings.Contains(err.Error(), "member "+c.prefix) || !strings.Contains(err.Error(), c.want) {
			t.Fatalf("%s: got %v, want %q", target, err, c.want)
		}
	}
}

// resign rewrites MANIFEST.json for the members as they are and signs it.
func resign(t *testing.T, key crypto.Signer, names []string, data map[string][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	pw := newPackWriter(&buf, time.Now())
	for _, n := range names[:len(names)-2] {
		if err := pw.add(n, data[n]); err != nil {
			t.Fatal(err)
		}
	}
	if err := pw.finish(key); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestWrongKeyAndWrongManifest(t *testing.T) {
	f := getFixture(t)
	other := genKey(sigalg.ECDSAP256)
	if _, err := verifyBytes(f.pack, other.Public(), Options{}); err == nil || !strings.Contains(err.Error(), "not the audit key given") {
		t.Fatalf("another key: %v", err)
	}
	bad := bytes.Clone(f.manifest)
	bad[len(bad)/2] ^= 1
	_, err := verifyBytes(f.pack, f.auditKey.Public(), Options{Manifests: map[string][]byte{"batch-1": bad}})
	if err == nil || !strings.Contains(err.Error(), "batches/batch-1.json: the manifest given does not verify") {
		t.Fatalf("an altered manifest: %v", err)
	}
}

// TestExportIsDeterministic: the same registry at the same time gives
// the same members and manifest (only an ECDSA signature is randomised).
func TestExportIsDeterministic(t *testing.T) {
	f := getFixture(t)
	src := f.src
	at := time.Date(2027, 12, 11, 0, 0, 0, 0, time.UTC)
	src.Now = func() time.Time { return at }
	var a, b bytes.Buffer
	req := Request{Scope: ScopeProduct, Subject: "meter"}
	if err := src.Export(t.Context(), req, &a); err != nil {
		t.Fatal(err)
	}
	if err := src.Export(t.Context(), req, &b); err != nil {
		t.Fatal(err)
	}
	_, da := members(t, a.Bytes())
	_, db := members(t, b.Bytes())
	if !bytes.Equal(da[MemberManifest], db[MemberManifest]) || !bytes.Equal(a.Bytes()[:len(a.Bytes())-2048], b.Bytes()[:len(a.Bytes())-2048]) {
		t.Fatal("two exports of the same registry differ")
	}
	if _, err := verifyBytes(a.Bytes(), f.auditKey.Public(), Options{}); err != nil {
		t.Fatal(err)
	}
}

func FuzzVerify(f *testing.F) {
	fx := getFixture(f)
	f.Add(fx.pack)
	f.Add(fx.pack[:len(fx.pack)/2])
	f.Add([]byte{})
	pub := fx.auditKey.Public()
	f.Fuzz(func(t *testing.T, b []byte) {
		rep, err := verifyBytes(b, pub, Options{})
		if err == nil && rep.Pack.Format != Format {
			t.Fatal("a pack verified without pack.json")
		}
	})
}
