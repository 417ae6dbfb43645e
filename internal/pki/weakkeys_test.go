package pki

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/sigalg/sigalgtest"
)

// degenerateSigners are keys of every suite that anyone can sign for,
// each with a working signer: what an attacker puts in a CSR.
func degenerateSigners(t testing.TB) map[string]crypto.Signer {
	t.Helper()
	out := map[string]crypto.Signer{}
	for _, id := range []sigalg.ID{sigalg.MLDSA44, sigalg.MLDSA65, sigalg.MLDSA87} {
		var rho [32]byte
		rand.Read(rho[:])
		key, err := sigalgtest.ZeroMLDSA(id, rho)
		if err != nil {
			t.Fatal(err)
		}
		out[string(id)+" t1 = 0"] = key
	}
	for _, k := range []int64{1, -1, 1 << 16} {
		p256, err := sigalgtest.P256Scalar(k)
		if err != nil {
			t.Fatal(err)
		}
		out[fmt.Sprintf("ecdsa-p256 %d·G", k)] = p256
		ed, err := sigalgtest.NewEd25519Scalar(k)
		if err != nil {
			t.Fatal(err)
		}
		out[fmt.Sprintf("ed25519 %d·B", k)] = ed
	}
	return out
}

// TestParseCSRRefusesDegenerateKeys: a CSR whose self-signature is valid,
// made with a key anyone can sign for, is refused as malformed and names
// the weak key; CreateCSR will not make one.
func TestParseCSRRefusesDegenerateKeys(t *testing.T) {
	for name, key := range degenerateSigners(t) {
		if _, err := CreateCSR(key, "operational"); !errors.Is(err, sigalg.ErrWeakKey) {
			t.Errorf("%s: CreateCSR = %v, want ErrWeakKey", name, err)
		}
		der, err := sigalgtest.CSR(key, "operational")
		if err != nil {
			t.Fatalf("%s: build the CSR: %v", name, err)
		}
		if err := csrSignatureValid(der, key); err != nil {
			t.Fatalf("%s: the CSR's signature is not valid (%v); the test proves nothing", name, err)
		}
		_, err = ParseCSR(der)
		if !errors.Is(err, ErrMalformedCSR) || !errors.Is(err, sigalg.ErrWeakKey) {
			t.Errorf("%s: ParseCSR = %v, want ErrMalformedCSR wrapping ErrWeakKey", name, err)
		}
	}
}

// TestCARefusesDegenerateKeys: the CA will not certify such a key handed
// over as a Go value, and a certificate for one, even signed by the
// platform's own issuing key, does not verify.
func TestCARefusesDegenerateKeys(t *testing.T) {
	tc := newTestCA(t, sigalg.ECDSAP256)
	good := issueDevice(t, tc.CA, deviceKey(t, sigalg.ECDSAP256, "weak").Public(), "weak")
	chain := tc.Chain()
	issuingKey := tc.signer(t, KeyIssuing)
	for name, key := range degenerateSigners(t) {
		_, err := tc.IssueDevice(context.Background(), DeviceRequest{Identity: testIdentity(name), PublicKey: key.Public(), Validity: time.Hour})
		if !errors.Is(err, ErrInvalidRequest) || !errors.Is(err, sigalg.ErrWeakKey) {
			t.Errorf("%s: IssueDevice = %v, want ErrInvalidRequest wrapping ErrWeakKey", name, err)
		}
		spki, err := sigalg.MarshalPublicKey(key.Public())
		if err != nil {
			t.Fatal(err)
		}
		forged := resign(t, good.DER, issuingKey, func(tbs *tbsCertificate) { tbs.PublicKey = asn1.RawValue{FullBytes: spki} })
		if _, err := VerifyChain(forged, chain[:1], chain[1:], testNow, x509.ExtKeyUsageClientAuth); !errors.Is(err, sigalg.ErrWeakKey) {
			t.Errorf("%s: VerifyChain of a certificate for the key = %v, want ErrWeakKey", name, err)
		}
	}
}

// csrSignatureValid checks the request's self-signature without the key
// policy: with crypto/x509 for classical keys, with the suite for ML-DSA.
func csrSignatureValid(der []byte, key crypto.Signer) error {
	var req certificationRequest
	if _, err := asn1.Unmarshal(der, &req); err != nil {
		return err
	}
	suite, err := sigalg.SuiteOf(key.Public())
	if err != nil {
		return err
	}
	if c, err := x509.ParseCertificateRequest(der); err == nil && c.PublicKeyAlgorithm != x509.UnknownPublicKeyAlgorithm {
		if err := c.CheckSignature(); err != nil {
			return err
		}
	}
	return suite.Verify(key.Public(), req.Info.FullBytes, req.Signature.Bytes)
}
