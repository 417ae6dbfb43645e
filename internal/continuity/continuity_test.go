package continuity_test

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"errors"
	"strings"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/continuity"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/sigalg/sigalgtest"
)

// challenge returns a challenge distinct for each n.
func challenge(n byte) continuity.Challenge {
	ch := continuity.Challenge{Nonce: bytes.Repeat([]byte{0xa0 ^ n}, 32), ServerName: "hallmark.example"}
	for i := range ch.ID {
		ch.ID[i] = n + byte(i)
	}
	return ch
}

// device is one simulated device's old and new enrolment keys.
type device struct {
	old, new crypto.Signer
}

func newDevice(t testing.TB, name string, from, to sigalg.ID) device {
	return device{
		old: sigalgtest.DeriveNamed(t, from, name+" old", 0),
		new: sigalgtest.DeriveNamed(t, to, name+" new", 0),
	}
}

func (d device) predecessor(t testing.TB) continuity.Predecessor {
	t.Helper()
	return predecessorOf(t, d.old)
}

func predecessorOf(t testing.TB, key crypto.Signer) continuity.Predecessor {
	t.Helper()
	spki, err := sigalg.MarshalPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	suite, err := sigalg.SuiteOf(key)
	if err != nil {
		t.Fatal(err)
	}
	return continuity.Predecessor{Algorithm: suite.ID(), PublicKey: spki}
}

func (d device) sign(t testing.TB, ch continuity.Challenge) *continuity.Proof {
	t.Helper()
	p, err := continuity.Sign(ch, d.old, d.new)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var allowAll = continuity.Policy{Allowed: func(from, to sigalg.ID) bool { return true }}

// TestEveryPair signs and verifies a migration between every two suites:
// the default policy accepts exactly the upgrades to ML-DSA-65 and -87,
// and a policy that accepts everything shows the proof itself works for
// every pair.
func TestEveryPair(t *testing.T) {
	allowed := map[[2]sigalg.ID]bool{
		{sigalg.ECDSAP256, sigalg.MLDSA65}: true, {sigalg.ECDSAP256, sigalg.MLDSA87}: true,
		{sigalg.Ed25519, sigalg.MLDSA65}: true, {sigalg.Ed25519, sigalg.MLDSA87}: true,
		{sigalg.MLDSA44, sigalg.MLDSA65}: true, {sigalg.MLDSA44, sigalg.MLDSA87}: true,
		{sigalg.MLDSA65, sigalg.MLDSA87}: true,
	}
	ch := challenge(1)
	for _, from := range sigalg.All() {
		for _, to := range sigalg.All() {
			pair := [2]sigalg.ID{from.ID(), to.ID()}
			t.Run(string(pair[0])+"→"+string(pair[1]), func(t *testing.T) {
				d := newDevice(t, "pair", pair[0], pair[1])
				p := d.sign(t, ch)
				if p.OldAlgorithm != pair[0] || p.NewAlgorithm != pair[1] {
					t.Fatalf("proof names %s→%s", p.OldAlgorithm, p.NewAlgorithm)
				}
				succ, err := continuity.Verify(p, ch, d.predecessor(t), continuity.Policy{})
				if allowed[pair] != (err == nil) {
					t.Fatalf("default policy: err = %v, want allowed = %v", err, allowed[pair])
				}
				if err != nil && !errors.Is(err, continuity.ErrMigrationNotAllowed) {
					t.Fatalf("refused with %v, want ErrMigrationNotAllowed", err)
				}
				if continuity.DefaultAllowed(pair[0], pair[1]) != allowed[pair] {
					t.Fatalf("DefaultAllowed disagrees with Verify")
				}
				succ, err = continuity.Verify(p, ch, d.predecessor(t), allowAll)
				if err != nil {
					t.Fatalf("allow-all policy: %v", err)
				}
				wantID, _ := identity.FromPublicKey(d.new.Public())
				wantSPKI, _ := sigalg.MarshalPublicKey(d.new.Public())
				if succ.Identity != wantID || succ.Algorithm != pair[1] || !bytes.Equal(succ.SPKI, wantSPKI) {
					t.Fatalf("successor %s %s, want %s %s", succ.Identity.Short(), succ.Algorithm, wantID.Short(), pair[1])
				}
				if got, _ := identity.FromPublicKey(succ.PublicKey); got != wantID {
					t.Fatal("successor's public key is not the new key")
				}
			})
		}
	}
}

// TestPolicyConsulted shows a platform policy refusing a pair the default
// accepts, with the algorithms it was asked about.
func TestPolicyConsulted(t *testing.T) {
	d := newDevice(t, "policy", sigalg.ECDSAP256, sigalg.MLDSA65)
	ch := challenge(2)
	var asked [2]sigalg.ID
	pol := continuity.Policy{Allowed: func(from, to sigalg.ID) bool {
		asked = [2]sigalg.ID{from, to}
		return to == sigalg.MLDSA87
	}}
	_, err := continuity.Verify(d.sign(t, ch), ch, d.predecessor(t), pol)
	if !errors.Is(err, continuity.ErrMigrationNotAllowed) {
		t.Fatalf("err = %v, want ErrMigrationNotAllowed", err)
	}
	if asked != [2]sigalg.ID{sigalg.ECDSAP256, sigalg.MLDSA65} {
		t.Fatalf("policy asked about %v", asked)
	}
}

// TestReplay: a proof answers one challenge of one platform only.
func TestReplay(t *testing.T) {
	d := newDevice(t, "replay", sigalg.Ed25519, sigalg.MLDSA65)
	ch := challenge(3)
	p := d.sign(t, ch)
	if _, err := continuity.Verify(p, ch, d.predecessor(t), continuity.Policy{}); err != nil {
		t.Fatal(err)
	}
	other := challenge(4)
	relabelled := *p
	relabelled.ChallengeID = other.ID
	sameIDOtherNonce := ch
	sameIDOtherNonce.Nonce = other.Nonce
	otherPlatform := ch
	otherPlatform.ServerName = "evil.example"
	tests := []struct {
		name  string
		proof *continuity.Proof
		ch    continuity.Challenge
		want  error
	}{
		{"proof checked against a later challenge", p, other, continuity.ErrChallengeMismatch},
		{"proof relabelled with the later challenge's ID", &relabelled, other, continuity.ErrOldSignature},
		{"same challenge ID, another nonce", p, sameIDOtherNonce, continuity.ErrOldSignature},
		{"relayed to another platform", p, otherPlatform, continuity.ErrOldSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := continuity.Verify(tt.proof, tt.ch, d.predecessor(t), continuity.Policy{})
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

// TestCrossDevice: a proof made by one device's keys never moves another.
func TestCrossDevice(t *testing.T) {
	a := newDevice(t, "device A", sigalg.ECDSAP256, sigalg.MLDSA65)
	b := newDevice(t, "device B", sigalg.ECDSAP256, sigalg.MLDSA65)
	ch := challenge(5)
	pa, pb := a.sign(t, ch), b.sign(t, ch)

	withBsNewKey := *pa // B's new key and its signature in A's proof
	withBsNewKey.NewPublicKey, withBsNewKey.NewIdentity, withBsNewKey.NewSignature = pb.NewPublicKey, pb.NewIdentity, pb.NewSignature
	withBsNewSig := *pa
	withBsNewSig.NewSignature = pb.NewSignature
	withBsOldSig := *pa
	withBsOldSig.OldSignature = pb.OldSignature
	mixedKeys, err := continuity.Sign(ch, a.old, b.new) // A's old key with B's new one
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		proof *continuity.Proof
		old   continuity.Predecessor
		want  error
	}{
		{"A's proof for B's record", pa, b.predecessor(t), continuity.ErrIdentityMismatch},
		{"B's new key and signature in A's proof", &withBsNewKey, a.predecessor(t), continuity.ErrOldSignature},
		{"B's new signature in A's proof", &withBsNewSig, a.predecessor(t), continuity.ErrNewSignature},
		{"B's old signature in A's proof", &withBsOldSig, a.predecessor(t), continuity.ErrOldSignature},
		{"A's old key with B's new key, for B's record", mixedKeys, b.predecessor(t), continuity.ErrIdentityMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := continuity.Verify(tt.proof, ch, tt.old, continuity.Policy{})
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

// TestReversedProof: a valid proof K1→K2 with its signatures swapped is not
// a proof K2→K1, even where both keys are of one suite and the sizes fit.
func TestReversedProof(t *testing.T) {
	d := newDevice(t, "reverse", sigalg.MLDSA65, sigalg.MLDSA65)
	ch := challenge(6)
	p := d.sign(t, ch)
	if _, err := continuity.Verify(p, ch, d.predecessor(t), allowAll); err != nil {
		t.Fatal(err)
	}
	oldSPKI := d.predecessor(t).PublicKey
	reversed := &continuity.Proof{
		ChallengeID: ch.ID, OldIdentity: p.NewIdentity, OldAlgorithm: p.NewAlgorithm,
		NewIdentity: p.OldIdentity, NewAlgorithm: p.OldAlgorithm, NewPublicKey: oldSPKI,
		OldSignature: p.NewSignature, NewSignature: p.OldSignature,
	}
	_, err := continuity.Verify(reversed, ch, predecessorOf(t, d.new), allowAll)
	if !errors.Is(err, continuity.ErrOldSignature) {
		t.Fatalf("err = %v, want ErrOldSignature", err)
	}
	swapped := *p
	swapped.OldSignature, swapped.NewSignature = p.NewSignature, p.OldSignature
	if _, err := continuity.Verify(&swapped, ch, d.predecessor(t), allowAll); !errors.Is(err, continuity.ErrOldSignature) {
		t.Fatalf("signatures swapped: err = %v, want ErrOldSignature", err)
	}
}

// TestTamperedNewKey: the new key, its identity and its algorithm are all
// covered by the old key's signature and checked against one another.
func TestTamperedNewKey(t *testing.T) {
	d := newDevice(t, "tamper", sigalg.ECDSAP256, sigalg.MLDSA87)
	attacker := sigalgtest.DeriveNamed(t, sigalg.MLDSA87, "attacker", 0)
	attackerSPKI, _ := sigalg.MarshalPublicKey(attacker.Public())
	ch := challenge(7)
	p := d.sign(t, ch)

	keyOnly := *p
	keyOnly.NewPublicKey = attackerSPKI
	keyAndIdentity := keyOnly
	keyAndIdentity.NewIdentity = identity.FromSPKI(attackerSPKI)
	flipped := *p
	flipped.NewPublicKey = bytes.Clone(p.NewPublicKey)
	flipped.NewPublicKey[len(flipped.NewPublicKey)-1] ^= 1
	wrongLabel := *p
	wrongLabel.NewAlgorithm = sigalg.MLDSA65
	d65 := newDevice(t, "tamper", sigalg.ECDSAP256, sigalg.MLDSA65)
	trailing := *d65.sign(t, ch)
	trailing.NewPublicKey = append(bytes.Clone(trailing.NewPublicKey), 0)
	tests := []struct {
		name  string
		proof *continuity.Proof
		want  error
	}{
		{"another key, identity left", &keyOnly, continuity.ErrIdentityMismatch},
		{"another key and its identity", &keyAndIdentity, continuity.ErrOldSignature},
		{"one bit of the key flipped", &flipped, continuity.ErrIdentityMismatch},
		{"ML-DSA-87 key labelled ML-DSA-65", &wrongLabel, continuity.ErrMalformed},
		{"a byte after the key's DER", &trailing, continuity.ErrNewKeyRefused},
		{"a new key over the size limit", mutated(p, func(q *continuity.Proof) { q.NewPublicKey = append(q.NewPublicKey, 0) }), continuity.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := continuity.Verify(tt.proof, ch, d.predecessor(t), continuity.Policy{})
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

// TestWeakNewKey: a new key anyone can sign for is refused although both
// signatures verify, so no one migrates a device to a public key.
func TestWeakNewKey(t *testing.T) {
	forgeable, err := sigalgtest.Forgeable()
	if err != nil {
		t.Fatal(err)
	}
	old := sigalgtest.DeriveNamed(t, sigalg.Ed25519, "weak", 0)
	ch := challenge(8)
	for name, key := range forgeable {
		t.Run(name, func(t *testing.T) {
			p, err := continuity.Sign(ch, old, key)
			if err != nil {
				t.Fatalf("Sign: %v", err)
			}
			_, err = continuity.Verify(p, ch, predecessorOf(t, old), allowAll)
			if !errors.Is(err, continuity.ErrNewKeyRefused) || !errors.Is(err, sigalg.ErrWeakKey) {
				t.Fatalf("err = %v, want ErrNewKeyRefused and sigalg.ErrWeakKey", err)
			}
		})
	}
}

// TestSameKey: re-signing with the key the device already has is no
// migration.
func TestSameKey(t *testing.T) {
	key := sigalgtest.DeriveNamed(t, sigalg.MLDSA65, "same", 0)
	ch := challenge(9)
	if _, err := continuity.Sign(ch, key, key); !errors.Is(err, continuity.ErrSameKey) {
		t.Fatalf("Sign: err = %v, want ErrSameKey", err)
	}
	// A proof made of two real signatures of the key, as an attacker who
	// builds one by hand would.
	other := sigalgtest.DeriveNamed(t, sigalg.MLDSA65, "same other", 0)
	p, err := continuity.Sign(ch, key, other)
	if err != nil {
		t.Fatal(err)
	}
	pred := predecessorOf(t, key)
	p.NewPublicKey, p.NewIdentity = pred.PublicKey, p.OldIdentity
	if _, err := continuity.Verify(p, ch, pred, allowAll); !errors.Is(err, continuity.ErrSameKey) {
		t.Fatalf("Verify: err = %v, want ErrSameKey", err)
	}
}

// TestRecordMismatch: the proof's old side must be the device on record.
func TestRecordMismatch(t *testing.T) {
	d := newDevice(t, "record", sigalg.ECDSAP256, sigalg.MLDSA65)
	ch := challenge(10)
	p := d.sign(t, ch)
	wrongAlgorithm := d.predecessor(t)
	wrongAlgorithm.Algorithm = sigalg.Ed25519
	relabelled := *p
	relabelled.OldAlgorithm = sigalg.MLDSA44
	for name, tc := range map[string]struct {
		p   *continuity.Proof
		old continuity.Predecessor
	}{
		"record's algorithm is not its key's":       {p, wrongAlgorithm},
		"proof's old algorithm is not the record's": {&relabelled, d.predecessor(t)},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := continuity.Verify(tc.p, ch, tc.old, continuity.Policy{}); !errors.Is(err, continuity.ErrIdentityMismatch) {
				t.Fatalf("err = %v, want ErrIdentityMismatch", err)
			}
		})
	}
}

// TestMalformed: proofs and challenges out of form are refused before any
// signature is checked.
func TestMalformed(t *testing.T) {
	d := newDevice(t, "malformed", sigalg.Ed25519, sigalg.MLDSA65)
	ch := challenge(11)
	p := d.sign(t, ch)
	mutate := func(f func(*continuity.Proof)) *continuity.Proof { return mutated(p, f) }
	shortNonce := ch
	shortNonce.Nonce = ch.Nonce[:continuity.MinNonce-1]
	noServer := ch
	noServer.ServerName = ""
	tests := []struct {
		name  string
		proof *continuity.Proof
		ch    continuity.Challenge
	}{
		{"no proof", nil, ch},
		{"short nonce", p, shortNonce},
		{"no server name", p, noServer},
		{"zero challenge ID", p, continuity.Challenge{Nonce: ch.Nonce, ServerName: ch.ServerName}},
		{"unknown algorithm", mutate(func(q *continuity.Proof) { q.NewAlgorithm = "rsa-2048" }), ch},
		{"algorithm alias", mutate(func(q *continuity.Proof) { q.OldAlgorithm = "ED25519" }), ch},
		{"no new key", mutate(func(q *continuity.Proof) { q.NewPublicKey = nil }), ch},
		{"no old signature", mutate(func(q *continuity.Proof) { q.OldSignature = nil }), ch},
		{"old signature too long for Ed25519", mutate(func(q *continuity.Proof) { q.OldSignature = append(bytes.Clone(q.OldSignature), 0) }), ch},
		{"new signature over ML-DSA-65's size", mutate(func(q *continuity.Proof) { q.NewSignature = make([]byte, continuity.MaxSignature) }), ch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := continuity.Verify(tt.proof, tt.ch, d.predecessor(t), continuity.Policy{}); !errors.Is(err, continuity.ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
		})
	}
	if _, err := continuity.Sign(shortNonce, d.old, d.new); !errors.Is(err, continuity.ErrMalformed) {
		t.Fatalf("Sign with a short nonce: err = %v, want ErrMalformed", err)
	}
	if _, err := continuity.Sign(ch, d.old, nil); !errors.Is(err, continuity.ErrMalformed) {
		t.Fatalf("Sign without a new key: err = %v, want ErrMalformed", err)
	}
}

// mutated returns a copy of p changed by f; p's slices are not shared.
func mutated(p *continuity.Proof, f func(*continuity.Proof)) *continuity.Proof {
	q := *p
	q.NewPublicKey = bytes.Clone(p.NewPublicKey)
	q.OldSignature = bytes.Clone(p.OldSignature)
	q.NewSignature = bytes.Clone(p.NewSignature)
	f(&q)
	return &q
}

// TestNewChallenge: two challenges differ, each is one a proof can answer,
// and a server name the message cannot carry is refused.
func TestNewChallenge(t *testing.T) {
	a, err := continuity.NewChallenge(rand.Reader, "hallmark.example")
	if err != nil {
		t.Fatal(err)
	}
	b, err := continuity.NewChallenge(rand.Reader, "hallmark.example")
	if err != nil {
		t.Fatal(err)
	}
	if a.ID == b.ID || bytes.Equal(a.Nonce, b.Nonce) || len(a.Nonce) != continuity.NonceSize {
		t.Fatal("challenges not fresh")
	}
	d := newDevice(t, "new challenge", sigalg.Ed25519, sigalg.MLDSA87)
	if _, err := continuity.Verify(d.sign(t, a), a, d.predecessor(t), continuity.Policy{}); err != nil {
		t.Fatal(err)
	}
	if _, err := continuity.NewChallenge(rand.Reader, strings.Repeat("a", continuity.MaxServerName+1)); !errors.Is(err, continuity.ErrMalformed) {
		t.Fatalf("long server name: err = %v, want ErrMalformed", err)
	}
	if _, err := continuity.NewChallenge(bytes.NewReader(make([]byte, 20)), "hallmark.example"); err == nil {
		t.Fatal("a short random source gave a challenge")
	}
}
