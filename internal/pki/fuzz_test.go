package pki

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// FuzzParseCSR: ParseCSR never panics, every refusal is classified, and an
// accepted request holds a canonical key of the suite it names.
func FuzzParseCSR(f *testing.F) {
	for _, s := range sigalg.All() {
		der, err := CreateCSR(deviceKey(f, s.ID(), "fuzz"), "device")
		if err != nil {
			f.Fatal(err)
		}
		f.Add(der)
		f.Add(der[:len(der)/2])
		bound, err := CreateCSRWith(deviceKey(f, s.ID(), "fuzz"), CSROptions{CommonName: "device", ChallengePassword: "binding"})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(bound)
	}
	f.Add([]byte{0x30, 0x00})
	f.Fuzz(func(t *testing.T, der []byte) {
		csr, err := ParseCSR(der)
		if err != nil {
			if !errors.Is(err, ErrMalformedCSR) && !errors.Is(err, ErrCSRSignature) {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		if len(der) > MaxCSR {
			t.Fatal("accepted an oversized request")
		}
		pub, err := sigalg.ParsePublicKey(csr.SPKI)
		if err != nil {
			t.Fatalf("accepted SPKI does not parse: %v", err)
		}
		again, _ := sigalg.MarshalPublicKey(csr.PublicKey)
		suite, _ := sigalg.SuiteOf(pub)
		if !bytes.Equal(again, csr.SPKI) || suite.ID() != csr.Suite {
			t.Fatal("key, SPKI and suite disagree")
		}
	})
}

// fuzzCA is a CA the certificate fuzz targets verify against, and the
// certificates it issued: a chain that verifies must end in one of these.
type fuzzCA struct {
	*testCA
	leaves map[string]bool // RawTBSCertificate of every leaf issued
}

// newFuzzCA makes a CA of suite, issues a device certificate for each
// device suite and adds them and the CA's chain to the seed corpus.
func newFuzzCA(f *testing.F, suite sigalg.ID, devSuites ...sigalg.ID) *fuzzCA {
	fc := &fuzzCA{testCA: newTestCA(f, suite), leaves: map[string]bool{}}
	for _, s := range devSuites {
		iss := issueDevice(f, fc.CA, deviceKey(f, s, "fuzz").Public(), "fuzz")
		fc.leaves[string(mustParse(f, iss.DER).RawTBSCertificate)] = true
		f.Add(iss.DER)
	}
	for _, der := range fc.Chain() {
		f.Add(der)
	}
	return fc
}

func addRFC9881Seeds(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "rfc9881", "*.crt"))
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		if block, _ := pem.Decode(data); block != nil {
			f.Add(block.Bytes)
		}
	}
}

// FuzzParseCertificate: ParseCertificate never panics and an accepted
// certificate's key re-encodes to its SPKI; verification of the input as a
// device certificate never panics, classifies every refusal, and accepts
// only a certificate the CA issued (the fuzzer cannot forge a signature).
//
// The ECDSA CA goes through VerifyChain; the ML-DSA CA through VerifyDevice,
// whose chain is parsed once, because parsing an ML-DSA key expands its
// matrix and a slow target starves the fuzzer's input minimisation. ML-DSA
// parsing is still fuzzed through the ML-DSA leaves and the RFC 9881 seeds.
func FuzzParseCertificate(f *testing.F) {
	var all []sigalg.ID
	for _, s := range sigalg.All() {
		all = append(all, s.ID())
	}
	classical := newFuzzCA(f, sigalg.ECDSAP256, all...)
	pq := newFuzzCA(f, sigalg.MLDSA44, sigalg.ECDSAP256)
	addRFC9881Seeds(f)
	classified := func(t *testing.T, err error) {
		if !errors.Is(err, ErrMalformedCertificate) && !errors.Is(err, ErrUntrusted) && !errors.Is(err, ErrExpired) {
			t.Fatalf("unclassified error: %v", err)
		}
	}
	f.Fuzz(func(t *testing.T, der []byte) {
		cert, err := ParseCertificate(der)
		if err != nil {
			if !errors.Is(err, ErrMalformedCertificate) {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		if spki, err := sigalg.MarshalPublicKey(cert.PublicKey); err != nil || !bytes.Equal(spki, cert.RawSubjectPublicKeyInfo) {
			t.Fatalf("key does not re-encode to the SPKI: %v", err)
		}
		chain := classical.Chain()
		if leaf, err := VerifyChain(der, chain[:1], chain[1:], testNow, x509.ExtKeyUsageClientAuth); err != nil {
			classified(t, err)
		} else if !classical.leaves[string(leaf.RawTBSCertificate)] {
			t.Fatal("VerifyChain accepted a certificate the CA never issued")
		}
		if leaf, _, err := pq.VerifyDevice([][]byte{der}, testNow); err != nil {
			classified(t, err)
		} else if !pq.leaves[string(leaf.RawTBSCertificate)] {
			t.Fatal("VerifyDevice accepted a certificate the CA never issued")
		}
	})
}

// FuzzVerifyChain fuzzes the intermediate of a genuine leaf's chain: it
// may verify only if it carries the issuing CA's own TBSCertificate.
func FuzzVerifyChain(f *testing.F) {
	tc := newTestCA(f, sigalg.ECDSAP256)
	leaf := issueDevice(f, tc.CA, deviceKey(f, sigalg.Ed25519, "fuzz").Public(), "fuzz").DER
	issuing, root := tc.Chain()[0], tc.Chain()[1]
	f.Add(issuing)
	f.Add(root)
	f.Add(leaf)
	wantTBS := mustParse(f, issuing).RawTBSCertificate
	f.Fuzz(func(t *testing.T, inter []byte) {
		_, err := VerifyChain(leaf, [][]byte{inter}, [][]byte{root}, testNow, x509.ExtKeyUsageClientAuth)
		if err != nil {
			if !errors.Is(err, ErrMalformedCertificate) && !errors.Is(err, ErrUntrusted) && !errors.Is(err, ErrExpired) {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		if c, err := ParseCertificate(inter); err != nil || !bytes.Equal(c.RawTBSCertificate, wantTBS) {
			t.Fatal("a chain verified through an intermediate the root never signed")
		}
	})
}
