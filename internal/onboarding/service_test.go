package onboarding_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/device"
	"github.com/hallmark-iot/hallmark/internal/firmware"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/keys/softkms"
	"github.com/hallmark-iot/hallmark/internal/onboarding"
	"github.com/hallmark-iot/hallmark/internal/onboarding/onboardpki"
	"github.com/hallmark-iot/hallmark/internal/onboarding/onboardstore"
	"github.com/hallmark-iot/hallmark/internal/pki"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
	"github.com/hallmark-iot/hallmark/internal/store/sqlite"
)

const serverName = "hallmark.test"

// platform is a real store and CA behind a Service, with a clock tests move.
type platform struct {
	svc     *onboarding.Service
	store   store.Store
	ca      *pki.CA
	now     atomic.Pointer[time.Time]
	ief     []byte
	roots   [][32]byte
	station identity.ID
}

func newPlatform(t testing.TB, caSuite sigalg.ID) *platform {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "hallmark.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	km, err := softkms.Open(ctx, filepath.Join(dir, "keys"), []byte("test passphrase"), softkms.InsecureKDFIterations(1000))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { km.Close() })
	p := &platform{store: st}
	start := time.Now().UTC()
	p.now.Store(&start)
	clock := func() time.Time { return *p.now.Load() }
	if p.ca, err = pki.Open(ctx, km, filepath.Join(dir, "ca"), pki.Config{Suite: caSuite, Now: clock}); err != nil {
		t.Fatal(err)
	}
	if p.svc, err = onboarding.NewService(p.config(clock, -1, -1)); err != nil { // limits have their own test
		t.Fatal(err)
	}
	if err := st.CreateProduct(ctx, store.Product{ID: "sensor", Name: "Sensor", CertValidity: 30 * 24 * time.Hour,
		CloudEndpoint: "mqtts://broker.test:8883", CreatedAt: start}); err != nil {
		t.Fatal(err)
	}
	p.makeIEF(t)
	suite, _ := sigalg.Lookup("ed25519")
	stationKey, _ := suite.GenerateKey(rand.Reader)
	spki, _ := sigalg.MarshalPublicKey(stationKey.Public())
	p.station = identity.FromSPKI(spki)
	if err := st.CreateStation(ctx, store.Station{ID: p.station, Name: "line 1", Algorithm: sigalg.Ed25519, PublicKey: spki, CreatedAt: start}); err != nil {
		t.Fatal(err)
	}
	return p
}

// config is a service's over p's store and CA, through the platform's
// bindings, with the given clock (nil: time.Now) and limits.
func (p *platform) config(clock func() time.Time, perIdentity, perAddress int) onboarding.Config {
	return onboarding.Config{State: onboardstore.New(onboardstore.Config{Store: p.store, Now: clock}),
		Issuer: onboardpki.NewIssuer(p.ca, clock), ServerName: serverName, Now: clock, PerIdentity: perIdentity, PerAddress: perAddress}
}

func (p *platform) makeIEF(t testing.TB) {
	suite, _ := sigalg.Lookup("ed25519")
	vendor, _ := suite.GenerateKey(rand.Reader)
	img, _ := firmware.New(firmware.Metadata{Type: firmware.TypeIEF}, device.IEFPayload())
	if err := img.Sign(vendor); err != nil {
		t.Fatal(err)
	}
	p.ief, _ = img.MarshalBinary()
	spki, _ := sigalg.MarshalPublicKey(vendor.Public())
	p.roots = [][32]byte{sha256.Sum256(spki)}
}

// newDevice makes, boots and registers a device as a manifest import would.
func (p *platform) newDevice(t testing.TB, class device.Class, alg sigalg.ID) (*device.Device, identity.ID) {
	t.Helper()
	d, err := device.New(device.Config{Class: class, Algorithm: alg, RootKeyHashes: p.roots})
	if err != nil {
		t.Fatal(err)
	}
	d.Program(p.ief)
	if err := d.Boot(); err != nil {
		t.Fatal(err)
	}
	enr, err := d.Enrol(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	batch := "b-" + enr.Identity.Short()
	dev := store.Device{Identity: enr.Identity, Algorithm: alg, PublicKey: enr.PublicKey, RootOfTrust: string(class),
		Injection: "none", BatchID: batch, StationID: p.station, ProductID: "sensor", State: store.StateRegistered, CreatedAt: *p.now.Load()}
	if _, err := p.store.ImportBatch(context.Background(), store.Batch{ID: batch, StationID: p.station, ProductID: "sensor", DeviceCount: 1,
		ImportedAt: *p.now.Load(), ManifestDigest: sha256.Sum256([]byte(batch))}, []store.Device{dev}); err != nil {
		t.Fatal(err)
	}
	return d, enr.Identity
}

// proof builds what a device sends in answer to ch.
func proof(t testing.TB, d *device.Device, id identity.ID, ch onboarding.ChallengeResponse, server string) onboarding.ProofRequest {
	t.Helper()
	op, err := d.OperationalKey(sigalg.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := hex.DecodeString(ch.ChallengeID)
	csr, err := pki.CreateCSRWith(op, pki.CSROptions{CommonName: id.String(),
		ChallengePassword: onboarding.CSRBinding([onboarding.ChallengeIDSize]byte(raw), ch.Nonce, ch.ServerName)})
	if err != nil {
		t.Fatal(err)
	}
	_, sig, err := d.Prove(onboarding.ProofContext, onboarding.Transcript([onboarding.ChallengeIDSize]byte(raw), ch.Nonce, server, csr))
	if err != nil {
		t.Fatal(err)
	}
	return onboarding.ProofRequest{ChallengeID: ch.ChallengeID, Identity: id, CSR: csr, Signature: sig}
}

func (p *platform) challenge(t testing.TB, id identity.ID) onboarding.ChallengeResponse {
	t.Helper()
	ch, err := p.svc.Challenge(context.Background(), onboarding.ChallengeRequest{Identity: id}, "192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

func TestOnboardEverySuiteUnderBothCAs(t *testing.T) {
	for _, caSuite := range []sigalg.ID{sigalg.ECDSAP256, sigalg.MLDSA65} {
		p := newPlatform(t, caSuite)
		for _, alg := range sigalg.Names() {
			for _, class := range []device.Class{device.ClassPUF, device.ClassKeygen} {
				t.Run(string(caSuite)+"/"+alg+"/"+string(class), func(t *testing.T) {
					d, id := p.newDevice(t, class, sigalg.ID(alg))
					creds, err := p.svc.Prove(context.Background(), proof(t, d, id, p.challenge(t, id), serverName), "192.0.2.1")
					if err != nil {
						t.Fatal(err)
					}
					if creds.Identity != id || creds.CloudEndpoint != "mqtts://broker.test:8883" || len(creds.CertificateChain) != 2 {
						t.Fatalf("credentials %+v", creds)
					}
					leaf, _ := pem.Decode([]byte(creds.CertificateChain[0]))
					issuing, _ := pem.Decode([]byte(creds.CertificateChain[1]))
					root, _ := pem.Decode([]byte(creds.TrustBundle))
					cert, err := pki.VerifyChain(leaf.Bytes, [][]byte{issuing.Bytes}, [][]byte{root.Bytes}, *p.now.Load(), x509.ExtKeyUsageClientAuth)
					if err != nil {
						t.Fatalf("issued chain does not verify: %v", err)
					}
					if got, err := pki.DeviceIdentity(cert); err != nil || got != id {
						t.Fatalf("certificate names %s (%v), want %s", got, err, id)
					}
					dev, _ := p.store.GetDevice(context.Background(), id)
					if dev.State != store.StateOnboarded {
						t.Fatalf("device state %s", dev.State)
					}
				})
			}
		}
	}
}

func TestRefusedProofsChangeNothing(t *testing.T) {
	p := newPlatform(t, sigalg.ECDSAP256)
	ctx := context.Background()
	d, id := p.newDevice(t, device.ClassKeygen, sigalg.Ed25519)
	other, otherID := p.newDevice(t, device.ClassKeygen, sigalg.Ed25519)

	good := proof(t, d, id, p.challenge(t, id), serverName)
	if _, err := p.svc.Prove(ctx, good, "a"); err != nil {
		t.Fatal(err)
	}
	certsBefore, _ := p.store.ListCertificates(ctx, id)

	forged := proof(t, other, id, p.challenge(t, id), serverName) // signed by another device's key
	wrongServer := proof(t, d, id, p.challenge(t, id), "evil.test")
	swapped := proof(t, d, id, p.challenge(t, id), serverName)
	swapped.CSR = proof(t, other, otherID, p.challenge(t, otherID), serverName).CSR
	stolen := proof(t, d, id, p.challenge(t, otherID), serverName) // challenge issued for another identity
	stolen.Identity = id
	expired := proof(t, d, id, p.challenge(t, id), serverName)
	badCSR := proof(t, d, id, p.challenge(t, id), serverName)
	badCSR.CSR[len(badCSR.CSR)-1] ^= 1

	var unknown identity.ID
	rand.Read(unknown[:])
	unknownCh := p.challenge(t, unknown)
	knownCh := p.challenge(t, id)
	if len(unknownCh.Nonce) != len(knownCh.Nonce) || unknownCh.ServerName != knownCh.ServerName || len(unknownCh.ChallengeID) != len(knownCh.ChallengeID) {
		t.Fatal("a challenge for an unknown identity looks different")
	}
	unknownProof := proof(t, d, id, unknownCh, serverName)
	unknownProof.Identity = unknown

	cases := []struct {
		name string
		req  onboarding.ProofRequest
		want error
		late bool
	}{
		{"replayed", good, onboarding.ErrChallengeUsed, false},
		{"forged signature", forged, onboarding.ErrProofRejected, false},
		{"other server name", wrongServer, onboarding.ErrProofRejected, false},
		{"swapped CSR", swapped, onboarding.ErrProofRejected, false},
		{"challenge of another identity", stolen, onboarding.ErrProofRejected, false},
		{"unknown identity", unknownProof, onboarding.ErrProofRejected, false},
		{"tampered CSR", badCSR, onboarding.ErrProofRejected, false},
		{"malformed challenge ID", onboarding.ProofRequest{ChallengeID: "XYZ", Identity: id, CSR: good.CSR, Signature: good.Signature}, onboarding.ErrMalformed, false},
		{"unknown challenge", onboarding.ProofRequest{ChallengeID: hex.EncodeToString(make([]byte, 16)), Identity: id, CSR: good.CSR, Signature: good.Signature}, onboarding.ErrChallengeUnknown, false},
		{"expired", expired, onboarding.ErrChallengeExpired, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.late {
				later := p.now.Load().Add(2 * onboarding.ChallengeTTL)
				p.now.Store(&later)
			}
			if _, err := p.svc.Prove(ctx, tc.req, "a"); !errors.Is(err, tc.want) {
				t.Fatalf("Prove = %v, want %v", err, tc.want)
			}
		})
	}
	if certs, _ := p.store.ListCertificates(ctx, id); len(certs) != len(certsBefore) {
		t.Fatalf("refused proofs issued certificates: %d, want %d", len(certs), len(certsBefore))
	}
	if dev, _ := p.store.GetDevice(ctx, otherID); dev.State != store.StateRegistered {
		t.Fatalf("the other device is %s", dev.State)
	}
	events, err := p.store.ListAudit(ctx, store.AuditFilter{Action: "device.onboard", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	denied := 0
	for _, e := range events {
		if e.Outcome == "denied" {
			denied++
		}
	}
	if denied != len(cases) {
		t.Fatalf("audit holds %d denied onboarding attempts, want %d", denied, len(cases))
	}
}

func TestRevokedDeviceRefused(t *testing.T) {
	p := newPlatform(t, sigalg.ECDSAP256)
	ctx := context.Background()
	d, id := p.newDevice(t, device.ClassPUF, sigalg.MLDSA44)
	if err := p.store.RevokeDevice(ctx, id, "stolen", *p.now.Load()); err != nil {
		t.Fatal(err)
	}
	if _, err := p.svc.Prove(ctx, proof(t, d, id, p.challenge(t, id), serverName), "a"); !errors.Is(err, onboarding.ErrRevoked) {
		t.Fatalf("Prove(revoked) = %v, want onboarding.ErrRevoked", err)
	}
	if certs, _ := p.store.ListCertificates(ctx, id); len(certs) != 0 {
		t.Fatal("a revoked device got a certificate")
	}
}

// TestConcurrentAnswersIssueOneCertificate sends one answer 16 times at once.
func TestConcurrentAnswersIssueOneCertificate(t *testing.T) {
	p := newPlatform(t, sigalg.ECDSAP256)
	d, id := p.newDevice(t, device.ClassKeygen, sigalg.ECDSAP256)
	req := proof(t, d, id, p.challenge(t, id), serverName)
	var wg sync.WaitGroup
	var wins, used atomic.Int32
	for range 16 {
		wg.Go(func() {
			_, err := p.svc.Prove(context.Background(), req, "a")
			switch {
			case err == nil:
				wins.Add(1)
			case errors.Is(err, onboarding.ErrChallengeUsed):
				used.Add(1)
			default:
				t.Error(err)
			}
		})
	}
	wg.Wait()
	certs, _ := p.store.ListCertificates(context.Background(), id)
	if wins.Load() != 1 || used.Load() != 15 || len(certs) != 1 {
		t.Fatalf("%d successes, %d replays refused, %d certificates", wins.Load(), used.Load(), len(certs))
	}
}

func TestRateLimits(t *testing.T) {
	p := newPlatform(t, sigalg.ECDSAP256)
	svc, err := onboarding.NewService(p.config(nil, 4, -1))
	if err != nil {
		t.Fatal(err)
	}
	var id identity.ID
	id[0] = 1
	limited := 0
	for range 10 {
		if _, err := svc.Challenge(context.Background(), onboarding.ChallengeRequest{Identity: id}, "a"); errors.Is(err, onboarding.ErrRateLimited) {
			limited++
		}
	}
	if limited < 5 {
		t.Fatalf("only %d of 10 rapid challenges for one identity limited", limited)
	}
	var other identity.ID
	other[0] = 2
	if _, err := svc.Challenge(context.Background(), onboarding.ChallengeRequest{Identity: other}, "a"); err != nil {
		t.Fatalf("another identity is limited too: %v", err)
	}
}
