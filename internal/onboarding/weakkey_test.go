package onboarding_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/onboarding"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/sigalg/sigalgtest"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// TestWeakRegisteredKeyIsProofRejected: a device registered before the key
// policy refused its key (here an ML-DSA-65 key with t1 = 0, for which
// anyone can sign) is refused like any bad proof, not with an internal
// error, and gets no certificate, even with a signature that verifies.
func TestWeakRegisteredKeyIsProofRejected(t *testing.T) {
	p := newPlatform(t, sigalg.ECDSAP256)
	ctx := context.Background()
	var rho [32]byte
	rand.Read(rho[:])
	forger, err := sigalgtest.ZeroMLDSA(sigalg.MLDSA65, rho)
	if err != nil {
		t.Fatal(err)
	}
	spki, err := sigalg.MarshalPublicKey(forger.Public())
	if err != nil {
		t.Fatal(err)
	}
	id := identity.FromSPKI(spki)
	dev := store.Device{Identity: id, Algorithm: sigalg.MLDSA65, PublicKey: spki, RootOfTrust: "keygen", Injection: "none",
		BatchID: "legacy", StationID: p.station, ProductID: "sensor", State: store.StateRegistered, CreatedAt: p.clock()}
	if _, err := p.store.ImportBatch(ctx, store.Batch{ID: "legacy", StationID: p.station, ProductID: "sensor", DeviceCount: 1,
		ImportedAt: p.clock(), ManifestDigest: sha256.Sum256([]byte("legacy"))}, []store.Device{dev}); err != nil {
		t.Fatal(err)
	}
	ch := p.challenge(t, id)
	op := sigalgtest.Suite(t, sigalg.ECDSAP256)
	opKey, _ := op.GenerateKey(rand.Reader)
	csr := boundCSR(t, opKey, id.String(), ch)
	raw, _ := hex.DecodeString(ch.ChallengeID)
	suite := sigalgtest.Suite(t, sigalg.MLDSA65)
	sig, err := suite.Sign(forger, onboarding.ProofMessage([onboarding.ChallengeIDSize]byte(raw), ch.Nonce, ch.ServerName, csr, id))
	if err != nil {
		t.Fatal(err)
	}
	if err := suite.Verify(forger.Public(), onboarding.ProofMessage([onboarding.ChallengeIDSize]byte(raw), ch.Nonce, ch.ServerName, csr, id), sig); err != nil {
		t.Fatalf("the forged signature does not verify by itself: %v", err)
	}
	_, err = p.svc.Prove(ctx, onboarding.ProofRequest{ChallengeID: ch.ChallengeID, Identity: id, CSR: csr, Signature: sig}, "192.0.2.9")
	if !errors.Is(err, onboarding.ErrProofRejected) {
		t.Fatalf("Prove with a weak registered key = %v, want onboarding.ErrProofRejected", err)
	}
	if certs, _ := p.store.ListCertificates(ctx, id); len(certs) != 0 {
		t.Fatalf("%d certificates issued for a weak key", len(certs))
	}
}
