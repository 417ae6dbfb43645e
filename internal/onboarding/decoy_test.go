package onboarding

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/asn1"
	"errors"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/device"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// Every suite's real signatures imply that suite, whatever the message,
// so a genuine device is always checked against its own key.
func TestImpliedSuiteOfRealSignatures(t *testing.T) {
	for _, suite := range sigalg.All() {
		key, err := suite.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		msg := make([]byte, 64)
		for i := range 200 {
			rand.Read(msg)
			sig, err := suite.Sign(key, msg)
			if err != nil {
				t.Fatal(err)
			}
			if got := impliedSuite(sig); got != suite.ID() {
				t.Fatalf("%s signature %d (%d bytes) implies %s", suite.ID(), i, len(sig), got)
			}
		}
	}
}

func TestImpliedSuiteOfOtherForms(t *testing.T) {
	// A 64-byte P-256 signature (r and s of 29 bytes) is DER-shaped; an
	// Ed25519 one almost never is.
	der64 := append([]byte{0x30, 62, 0x02, 29}, bytes.Repeat([]byte{1}, 29)...)
	der64 = append(append(der64, 0x02, 29), bytes.Repeat([]byte{2}, 29)...)
	cases := []struct {
		sig  []byte
		want sigalg.ID
	}{
		{der64, sigalg.ECDSAP256},
		{append([]byte{0x30, 62, 0x02, 29}, make([]byte, 60)...), sigalg.Ed25519}, // second INTEGER missing
		{make([]byte, 64), sigalg.Ed25519},
		{make([]byte, 2420), sigalg.MLDSA44},
		{make([]byte, 3309), sigalg.MLDSA65},
		{make([]byte, 4627), sigalg.MLDSA87},
		{nil, sigalg.ECDSAP256},
		{make([]byte, 3310), sigalg.ECDSAP256},
	}
	for _, c := range cases {
		if got := impliedSuite(c.sig); got != c.want {
			t.Errorf("%d-byte signature % x…: implies %s, want %s", len(c.sig), c.sig[:min(len(c.sig), 6)], got, c.want)
		}
	}
}

// FuzzImpliedSuite: any bytes imply one of the suites there is a decoy
// for, and whatever the shape check takes for an ECDSA signature is the DER
// of a SEQUENCE of two INTEGERs.
func FuzzImpliedSuite(f *testing.F) {
	for _, suite := range sigalg.All() {
		key, _ := suite.GenerateKey(rand.Reader)
		sig, _ := suite.Sign(key, []byte("seed"))
		f.Add(sig)
	}
	f.Add([]byte{0x30, 6, 0x02, 1, 1, 0x02, 1, 1})
	f.Add([]byte{0x30, 0x80, 0x02, 0x00})
	decoys, err := newDecoys()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, sig []byte) {
		if _, ok := decoys[impliedSuite(sig)]; !ok {
			t.Fatalf("%d bytes imply %q, which has no decoy", len(sig), impliedSuite(sig))
		}
		if !isECDSASignatureShape(sig) {
			return
		}
		var rs struct{ R, S asn1.RawValue }
		rest, err := asn1.Unmarshal(sig, &rs)
		if err != nil || len(rest) != 0 || rs.R.Tag != asn1.TagInteger || rs.S.Tag != asn1.TagInteger {
			t.Fatalf("% x passes the shape check but is not SEQUENCE { INTEGER, INTEGER }: %v", sig, err)
		}
	})
}

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
			dev, found, err := p.svc.lookUp(ctx, id, impliedSuite(sig))
			if err != nil {
				t.Fatal(err)
			}
			return p.svc.proofKey(dev, found, impliedSuite(sig))
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
	svc, err := NewService(Config{Store: reads, Issuer: NewCAIssuer(p.ca, nil), ServerName: serverName, PerIdentity: -1, PerAddress: -1})
	if err != nil {
		t.Fatal(err)
	}
	_, known := p.newDevice(t, device.ClassKeygen, sigalg.MLDSA65)
	_, otherSuite := p.newDevice(t, device.ClassKeygen, sigalg.Ed25519)
	var unknown identity.ID
	rand.Read(unknown[:])
	mldsa, _ := sigalg.Lookup(string(sigalg.MLDSA65))
	attacker, _ := mldsa.GenerateKey(rand.Reader)
	probe := func(id identity.ID) (hits, misses int) {
		ch := store.Challenge{Identity: id, ServerName: serverName}
		rand.Read(ch.Nonce[:])
		req := ProofRequest{Identity: id, CSR: []byte("csr")}
		req.Signature, _ = mldsa.Sign(attacker, ProofMessage(ch.ID, ch.Nonce[:], ch.ServerName, req.CSR, id))
		reads.hits, reads.misses, reads.found = 0, 0, nil
		if _, err := svc.checkProof(context.Background(), req, ch); !errors.Is(err, ErrProofRejected) {
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
		if _, err := p.svc.Prove(context.Background(), req, "192.0.2.1"); !errors.Is(err, ErrProofRejected) {
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
			ch := store.Challenge{Identity: c.id, ServerName: serverName, ExpiresAt: time.Now().Add(time.Hour)}
			rand.Read(ch.ID[:])
			rand.Read(ch.Nonce[:])
			req := ProofRequest{ChallengeID: "", Identity: c.id, CSR: []byte("csr")}
			req.Signature, _ = suite.Sign(attacker, ProofMessage(ch.ID, ch.Nonce[:], ch.ServerName, req.CSR, c.id))
			b.Run(string(suite.ID())+"/"+c.name, func(b *testing.B) {
				for b.Loop() {
					if _, err := p.svc.checkProof(context.Background(), req, ch); !errors.Is(err, ErrProofRejected) {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
