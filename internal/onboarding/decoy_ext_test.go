package onboarding_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/device"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/onboarding"
	"github.com/hallmark-iot/hallmark/internal/onboarding/onboardstore"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/sigalg/sigalgtest"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// An unregistered identity, or a registered one whose suite the signature
// does not match, is checked against the decoy of the suite the signature
// implies, which is a valid key of that suite, as a registered device's is.
func TestProofKeyFollowsTheSignature(t *testing.T) {
	p := newPlatform(t, sigalg.ECDSAP256)
	ctx := context.Background()
	registered := map[sigalg.ID]store.Device{}
	for _, suite := range sigalg.All() {
		_, id := p.newDevice(t, device.ClassKeygen, suite.ID())
		dev, err := p.store.GetDevice(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		registered[suite.ID()] = dev
	}
	var unknown identity.ID
	rand.Read(unknown[:])
	for _, sigSuite := range sigalg.All() {
		key, _ := sigSuite.GenerateKey(rand.Reader)
		sig, _ := sigSuite.Sign(key, []byte("probe"))
		keyFor := func(id identity.ID) ([]byte, bool) {
			spki, genuine, err := p.svc.ProofKeyFor(ctx, id, onboarding.ImpliedSuite(sig))
			if err != nil {
				t.Fatal(err)
			}
			return spki, genuine
		}
		check := func(what string, spki []byte, genuine bool) {
			t.Helper()
			pub, err := sigalg.ParsePublicKey(spki)
			if err != nil {
				t.Fatalf("%s signature, %s: key does not parse: %v", sigSuite.ID(), what, err)
			}
			if got, _ := sigalg.SuiteOf(pub); got.ID() != sigSuite.ID() || genuine {
				t.Fatalf("%s signature, %s: a %s key, genuine %v; want the decoy", sigSuite.ID(), what, got.ID(), genuine)
			}
		}
		spki, genuine := keyFor(unknown)
		check("unknown identity", spki, genuine)
		for devSuite, dev := range registered {
			spki, genuine := keyFor(dev.Identity)
			if devSuite == sigSuite.ID() {
				if !bytes.Equal(spki, dev.PublicKey) || !genuine {
					t.Fatalf("%s device: not checked against its own key", devSuite)
				}
				continue
			}
			check(string(devSuite)+" device", spki, genuine)
		}
	}
}

// readCounter counts the device rows a store finds and misses, and notes
// the suites of those found.
type readCounter struct {
	store.Store
	hits, misses int
	found        []sigalg.ID
}

func (r *readCounter) GetDevice(ctx context.Context, id identity.ID) (store.Device, error) {
	return r.count(r.Store.GetDevice(ctx, id))
}

func (r *readCounter) GetDeviceOfSuite(ctx context.Context, id identity.ID, alg sigalg.ID) (store.Device, error) {
	return r.count(r.Store.GetDeviceOfSuite(ctx, id, alg))
}

func (r *readCounter) count(dev store.Device, err error) (store.Device, error) {
	if err == nil {
		r.hits++
		r.found = append(r.found, dev.Algorithm)
	} else if errors.Is(err, store.ErrNotFound) {
		r.misses++
	}
	return dev, err
}

// Checking a proof reads one registered row, of the signature's suite,
// and misses one, whether the identity is registered with that suite,
// with another, or not at all, so the store's work does not tell.
func TestLookUpReadsTheSame(t *testing.T) {
	p := newPlatform(t, sigalg.ECDSAP256)
	reads := &readCounter{Store: p.store}
	cfg := p.config(nil, -1, -1)
	cfg.State = onboardstore.New(onboardstore.Config{Store: reads})
	svc, err := onboarding.NewService(cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, known := p.newDevice(t, device.ClassKeygen, sigalg.MLDSA65)
	_, otherSuite := p.newDevice(t, device.ClassKeygen, sigalg.Ed25519)
	var unknown identity.ID
	rand.Read(unknown[:])
	mldsa := sigalgtest.Suite(t, sigalg.MLDSA65)
	attacker, _ := mldsa.GenerateKey(rand.Reader)
	probe := func(id identity.ID) (hits, misses int) {
		ch := onboarding.Challenge{Identity: id, ServerName: serverName}
		rand.Read(ch.Nonce[:])
		req := onboarding.ProofRequest{Identity: id, CSR: []byte("csr")}
		req.Signature, _ = mldsa.Sign(attacker, onboarding.ProofMessage(ch.ID, ch.Nonce[:], ch.ServerName, req.CSR, id))
		reads.hits, reads.misses, reads.found = 0, 0, nil
		if _, err := svc.CheckProof(context.Background(), req, ch); !errors.Is(err, onboarding.ErrProofRejected) {
			t.Fatalf("checkProof: %v", err)
		}
		return reads.hits, reads.misses
	}
	probe(known) // the first lookup to find an ml-dsa-65 device gives the suite a shadow
	for _, c := range []struct {
		what string
		id   identity.ID
	}{{"registered", known}, {"unknown", unknown}, {"registered with ed25519", otherSuite}, {"registered, again", known}} {
		if hits, misses := probe(c.id); hits != 1 || misses != 1 || reads.found[0] != sigalg.MLDSA65 {
			t.Fatalf("identity %s: %d rows found (%v) and %d missed, want one ml-dsa-65 row and a miss", c.what, hits, reads.found, misses)
		}
	}
}

// A proof whose signature is of another suite than the device's is
// refused like any bad proof, and the device still onboards after.
func TestProofOfAnotherSuiteRefused(t *testing.T) {
	p := newPlatform(t, sigalg.ECDSAP256)
	d, id := p.newDevice(t, device.ClassKeygen, sigalg.MLDSA65)
	for _, suite := range sigalg.All() {
		req := proof(t, d, id, p.challenge(t, id), serverName)
		key, _ := suite.GenerateKey(rand.Reader)
		req.Signature, _ = suite.Sign(key, []byte("not the transcript"))
		if _, err := p.svc.Prove(context.Background(), req, "192.0.2.1"); !errors.Is(err, onboarding.ErrProofRejected) {
			t.Fatalf("%s signature for an ml-dsa-65 device: %v", suite.ID(), err)
		}
	}
	if _, err := p.svc.Prove(context.Background(), proof(t, d, id, p.challenge(t, id), serverName), "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkRefusedProof times checkProof for a registered identity and an
// unknown one with a wrongly keyed signature of each suite: the server's
// side of what "hallmark fleet probe-timing" measures over HTTPS, without
// the network. Compare known and unknown with benchstat.
func BenchmarkRefusedProof(b *testing.B) {
	p := newPlatform(b, sigalg.ECDSAP256)
	for _, suite := range sigalg.All() {
		_, known := p.newDevice(b, device.ClassKeygen, suite.ID())
		var unknown identity.ID
		rand.Read(unknown[:])
		attacker, _ := suite.GenerateKey(rand.Reader)
		for _, c := range []struct {
			name string
			id   identity.ID
		}{{"known", known}, {"unknown", unknown}} {
			ch := onboarding.Challenge{Identity: c.id, ServerName: serverName, ExpiresAt: time.Now().Add(time.Hour)}
			rand.Read(ch.ID[:])
			rand.Read(ch.Nonce[:])
			req := onboarding.ProofRequest{ChallengeID: "", Identity: c.id, CSR: []byte("csr")}
			req.Signature, _ = suite.Sign(attacker, onboarding.ProofMessage(ch.ID, ch.Nonce[:], ch.ServerName, req.CSR, c.id))
			b.Run(string(suite.ID())+"/"+c.name, func(b *testing.B) {
				for b.Loop() {
					if _, err := p.svc.CheckProof(context.Background(), req, ch); !errors.Is(err, onboarding.ErrProofRejected) {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
