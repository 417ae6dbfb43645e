package app

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/httpapi"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/manifest"
	"github.com/hallmark-iot/hallmark/internal/manifest/manifesttest"
	"github.com/hallmark-iot/hallmark/internal/pki"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/sigalg/sigalgtest"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// weakKeyProver proves possession of a key anyone can sign for: it signs
// with the signer an attacker builds from the public key alone.
type weakKeyProver struct {
	key crypto.Signer
	id  identity.ID
}

func (w weakKeyProver) Prove(context string, nonce []byte) (identity.ID, []byte, error) {
	sig, err := sigalg.Sign(w.key, identity.ProofMessage(context, nonce, w.id))
	return w.id, sig, err
}

// weakKeyZeroMLDSA is the key of issue 10 at ML-DSA-65 with a random ρ:
// t1 = 0, signed for with s1 = s2 = t0 = 0.
func weakKeyZeroMLDSA(t *testing.T) (crypto.Signer, identity.ID) {
	t.Helper()
	var rho [32]byte
	rand.Read(rho[:])
	key, err := sigalgtest.ZeroMLDSA(sigalg.MLDSA65, rho)
	if err != nil {
		t.Fatal(err)
	}
	id, err := identity.FromPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	return key, id
}

func weakKeyProblem(t *testing.T, err error, code string) *httpapi.Problem {
	t.Helper()
	var p *httpapi.Problem
	if !errors.As(err, &p) || p.Code != code {
		t.Fatalf("error %v, want the problem %q", err, code)
	}
	return p
}

// TestAttackDegenerateKeys attacks one platform over HTTPS with keys that
// anyone can sign for, wherever a key enters: a device of a manifest, a
// device registered before the key policy, a station, an operational key.
func TestAttackDegenerateKeys(t *testing.T) {
	t.Parallel()
	p := start(t, newDataDir(t), sigalg.ECDSAP256)
	f := newFleet(t, sigalg.ECDSAP256, sigalg.Ed25519, sigalg.MLDSA44)
	f.register(t, adminClient(t, p))
	t.Run("device key in a manifest", func(t *testing.T) { weakKeyInManifest(t, p) })
	t.Run("device key registered before the policy", func(t *testing.T) { weakKeyAlreadyRegistered(t, p, f) })
	t.Run("station key", func(t *testing.T) { weakKeyStation(t, p) })
	t.Run("operational key", func(t *testing.T) { weakKeyOperational(t, p, f) })
}

// weakKeyInManifest: a manifest, correctly signed by a registered station,
// holds a device whose ML-DSA key has t1 = 0 and a proof of possession
// forged from public data. The import is refused whole, and an onboarding
// with a proof forged the same way gets no certificate.
func weakKeyInManifest(t *testing.T, p *Platform) {
	ctx := context.Background()
	admin := adminClient(t, p)
	station := mustKey(t)
	stationPEM, _ := sigalg.EncodePublicKeyPEM(station.Public())
	if _, err := admin.CreateStation(ctx, httpapi.StationRequest{Name: "second line", PublicKey: string(stationPEM)}); err != nil {
		t.Fatal(err)
	}

	forger, id := weakKeyZeroMLDSA(t)
	nonce := make([]byte, 32)
	rand.Read(nonce)
	proof, err := sigalg.Sign(forger, identity.ProofMessage(identity.FactoryProofContext, nonce, id))
	if err != nil {
		t.Fatal(err)
	}
	honest := newFleet(t, sigalg.ECDSAP256)
	honestPub, _ := sigalg.MarshalPublicKey(honest.pubs[0])
	honestRec := manifestRecordOf(t, honest, 0, honestPub)
	weakRec := manifest.Record{Identity: id, Algorithm: sigalg.MLDSA65, PublicKey: forger.Public(), RootOfTrust: manifest.Keygen,
		Injection: manifest.NotInjected, Nonce: nonce, Proof: proof}
	data, err := manifesttest.Forge(station, "weak-batch", time.Now(), []manifest.Record{honestRec, weakRec})
	if err != nil {
		t.Fatal(err)
	}
	_, err = admin.ImportManifest(ctx, "meter", bytes.NewReader(data))
	if prob := weakKeyProblem(t, err, "manifest-invalid"); !strings.Contains(prob.Detail, "weak key") {
		t.Errorf("problem detail %q does not name the weak key", prob.Detail)
	}
	for _, dev := range []identity.ID{id, honest.ids[0]} {
		if _, err := admin.GetDevice(ctx, dev); err == nil {
			t.Fatalf("device %s was imported", dev)
		}
	}

	op := mustKey(t)
	csr, _ := pki.CreateCSR(op, id.String())
	c := deviceClient(p.URL(), tlsClient(p, nil))
	creds, err := c.Onboard(ctx, weakKeyProver{forger, id}, id, csr)
	if err == nil || creds != nil {
		t.Fatal("onboarding with a forged proof issued a certificate")
	}
	if !isProblem(err, "proof-rejected") {
		t.Errorf("onboarding with a forged proof: %v, want proof-rejected", err)
	}
	weakKeyNoCertificates(t, p, id)
}

// weakKeyAlreadyRegistered: a device registered with such a key before the
// key policy existed (put straight into the store) gets no certificate for
// a forged proof either.
func weakKeyAlreadyRegistered(t *testing.T, p *Platform, f *fleet) {
	ctx := context.Background()
	forger, id := weakKeyZeroMLDSA(t)
	spki, _ := sigalg.MarshalPublicKey(forger.Public())
	existing, err := p.Store.GetDevice(ctx, f.ids[0])
	if err != nil {
		t.Fatal(err)
	}
	old := existing
	old.Identity, old.Algorithm, old.PublicKey = id, sigalg.MLDSA65, spki
	if _, err := p.Store.ImportBatch(ctx, store.Batch{ID: "before-the-policy", StationID: mustBatch(t, p, existing.BatchID).StationID,
		ProductID: existing.ProductID, ManifestDigest: [32]byte{1}, DeviceCount: 1, ImportedAt: time.Now().UTC()}, []store.Device{old}); err != nil {
		t.Fatal(err)
	}
	op := mustKey(t)
	csr, _ := pki.CreateCSR(op, id.String())
	c := deviceClient(p.URL(), tlsClient(p, nil))
	// The onboarding service cannot parse the stored key and fails
	// closed; how it answers is its own business, that it issues nothing
	// is the point.
	if creds, err := c.Onboard(ctx, weakKeyProver{forger, id}, id, csr); err == nil || creds != nil {
		t.Fatal("onboarding of a registered degenerate key issued a certificate")
	}
	weakKeyNoCertificates(t, p, id)
}

func mustBatch(t *testing.T, p *Platform, id string) store.Batch {
	t.Helper()
	b, err := p.Store.GetBatch(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// weakKeyStation: registering a station whose key anyone can sign for is
// refused, for every suite family, and nothing is stored.
func weakKeyStation(t *testing.T, p *Platform) {
	ctx := context.Background()
	admin := adminClient(t, p)
	before, err := admin.ListStations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	zero, _ := weakKeyZeroMLDSA(t)
	g, _ := sigalgtest.P256Scalar(1)
	b, _ := sigalgtest.NewEd25519Scalar(1)
	for name, key := range map[string]crypto.Signer{"ml-dsa-65 t1 = 0": zero, "P-256 G": g, "Ed25519 B": b} {
		pemData, _ := sigalg.EncodePublicKeyPEM(key.Public())
		_, err := admin.CreateStation(ctx, httpapi.StationRequest{Name: "weak", PublicKey: string(pemData)})
		if prob := weakKeyProblem(t, err, "malformed-request"); !strings.Contains(prob.Detail, "weak key") {
			t.Errorf("%s: problem detail %q does not name the weak key", name, prob.Detail)
		}
	}
	if list, err := admin.ListStations(ctx); err != nil || len(list) != len(before) {
		t.Fatalf("%d stations, %d before (%v)", len(list), len(before), err)
	}
}

// weakKeyOperational: a real device, proving its real identity, asks for a
// certificate over an operational key anyone can sign for, in a CSR made
// by hand and signed with the forged key. It is refused as bad-csr and no
// certificate is issued; the device then onboards with an honest key.
func weakKeyOperational(t *testing.T, p *Platform, f *fleet) {
	ctx := context.Background()
	zero, _ := weakKeyZeroMLDSA(t)
	g, _ := sigalgtest.P256Scalar(-1)
	b, _ := sigalgtest.NewEd25519Scalar(3)
	weak := []crypto.Signer{zero, g, b}
	c := deviceClient(p.URL(), tlsClient(p, nil))
	for i, d := range f.devices {
		csr, err := sigalgtest.CSR(weak[i], f.ids[i].String())
		if err != nil {
			t.Fatal(err)
		}
		creds, err := c.Onboard(ctx, d, f.ids[i], csr)
		if err == nil || creds != nil {
			t.Fatalf("%T operational key: certificate issued", weak[i].Public())
		}
		var prob *httpapi.Problem
		if !errors.As(err, &prob) || prob.Code != "bad-csr" || !strings.Contains(prob.Detail, "weak key") {
			t.Fatalf("%T operational key: %v, want bad-csr naming the weak key", weak[i].Public(), err)
		}
		weakKeyNoCertificates(t, p, f.ids[i])
	}
	if _, _, err := onboard(t, p, f.devices[0], f.ids[0]); err != nil {
		t.Fatalf("the device cannot onboard with an honest key after the refusal: %v", err)
	}
}

// weakKeyNoCertificates checks the store holds no certificate for id and
// has not marked it onboarded.
func weakKeyNoCertificates(t *testing.T, p *Platform, id identity.ID) {
	t.Helper()
	certs, err := p.Store.ListCertificates(context.Background(), id)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		t.Fatal(err)
	}
	if len(certs) != 0 {
		t.Fatalf("%d certificates issued for %s", len(certs), id)
	}
	dev, err := p.Store.GetDevice(context.Background(), id)
	if err == nil && dev.State == store.StateOnboarded {
		t.Fatalf("device %s is onboarded", id)
	}
}

// manifestRecordOf is the record of fleet device i, enrolled anew.
func manifestRecordOf(t *testing.T, f *fleet, i int, spki []byte) manifest.Record {
	t.Helper()
	nonce := make([]byte, 32)
	rand.Read(nonce)
	enr, err := f.devices[i].Enrol(nonce)
	if err != nil {
		t.Fatal(err)
	}
	return manifest.Record{Identity: enr.Identity, Algorithm: sigalg.ECDSAP256, SPKI: spki, RootOfTrust: manifest.Keygen,
		Injection: manifest.NotInjected, Nonce: nonce, Proof: enr.Proof}
}
