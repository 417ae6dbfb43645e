package pki

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"path/filepath"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/keys"
	"github.com/hallmark-iot/hallmark/internal/keys/softkms"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// testNow is the CA's clock in tests; certificates are checked at fixed
// times relative to it, never at the wall clock.
var testNow = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// caSuites are the CA suites the platform offers.
var caSuites = []sigalg.ID{sigalg.ECDSAP256, sigalg.MLDSA65}

func fixedClock() time.Time { return testNow }

// newKeyManager opens a software key store in dir, or in a new directory
// if dir is empty.
func newKeyManager(t testing.TB, dir string) keys.Manager {
	t.Helper()
	if dir == "" {
		dir = filepath.Join(t.TempDir(), "keys")
	}
	km, err := softkms.Open(context.Background(), dir, []byte("test passphrase"), softkms.InsecureKDFIterations(1000))
	if err != nil {
		t.Fatalf("open key store: %v", err)
	}
	t.Cleanup(func() { km.Close() })
	return km
}

type testCA struct {
	*CA
	km     keys.Manager
	dir    string
	keyDir string
}

func newTestCA(t testing.TB, suite sigalg.ID) *testCA {
	t.Helper()
	base := t.TempDir()
	tc := &testCA{dir: filepath.Join(base, "ca"), keyDir: filepath.Join(base, "keys")}
	tc.km = newKeyManager(t, tc.keyDir)
	ca, err := Open(context.Background(), tc.km, tc.dir, Config{Suite: suite, Now: fixedClock})
	if err != nil {
		t.Fatalf("Open %s CA: %v", suite, err)
	}
	tc.CA = ca
	return tc
}

func (tc *testCA) signer(t testing.TB, name string) crypto.Signer {
	t.Helper()
	s, err := tc.km.Signer(context.Background(), name)
	if err != nil {
		t.Fatalf("Signer(%s): %v", name, err)
	}
	return s
}

// deviceKey is a deterministic key of suite, distinct per label.
func deviceKey(t testing.TB, suite sigalg.ID, label string) crypto.Signer {
	t.Helper()
	s, err := suite.Suite()
	if err != nil {
		t.Fatal(err)
	}
	seed := sha256.Sum256([]byte("pki test device key " + label))
	key, err := s.DeriveKey(seed[:])
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func testIdentity(label string) identity.ID {
	return identity.ID(sha256.Sum256([]byte("pki test identity " + label)))
}

func issueDevice(t testing.TB, ca *CA, pub crypto.PublicKey, label string) *Issued {
	t.Helper()
	iss, err := ca.IssueDevice(context.Background(), DeviceRequest{Identity: testIdentity(label), PublicKey: pub, Validity: 365 * 24 * time.Hour})
	if err != nil {
		t.Fatalf("IssueDevice: %v", err)
	}
	return iss
}

func mustParse(t testing.TB, der []byte) *x509.Certificate {
	t.Helper()
	c, err := ParseCertificate(der)
	if err != nil {
		t.Fatalf("ParseCertificate: %v", err)
	}
	return c
}

func pemBytes(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// resign decodes cert's TBSCertificate, lets mutate change it, and signs
// the result with key, to make certificates the builder never would.
func resign(t testing.TB, der []byte, key crypto.Signer, mutate func(*tbsCertificate)) []byte {
	t.Helper()
	var outer certificate
	if _, err := asn1.Unmarshal(der, &outer); err != nil {
		t.Fatal(err)
	}
	var tbs tbsCertificate
	if rest, err := asn1.Unmarshal(outer.TBS.FullBytes, &tbs); err != nil || len(rest) != 0 {
		t.Fatalf("decode TBS: %v", err)
	}
	mutate(&tbs)
	raw, err := asn1.Marshal(tbs)
	if err != nil {
		t.Fatal(err)
	}
	return signRaw(t, raw, tbs.Signature.Algorithm, key)
}

// signRaw assembles a certificate from a DER TBS, a claimed signature
// algorithm, and a signature by key.
func signRaw(t testing.TB, tbs []byte, oid asn1.ObjectIdentifier, key crypto.Signer) []byte {
	t.Helper()
	sig, err := sigalg.Sign(key, tbs)
	if err != nil {
		t.Fatal(err)
	}
	der, err := asn1.Marshal(certificate{
		TBS:                asn1.RawValue{FullBytes: tbs},
		SignatureAlgorithm: algorithmIdentifier{Algorithm: oid},
		Signature:          asn1.BitString{Bytes: sig, BitLength: 8 * len(sig)},
	})
	if err != nil {
		t.Fatal(err)
	}
	return der
}
