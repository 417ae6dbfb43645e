package pki

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/sigalg/sigalgtest"
)

// degenerateSigners is sigalgtest.Forgeable, or the test stops.
func degenerateSigners(t testing.TB) map[string]crypto.Signer {
	t.Helper()
	keys, err := sigalgtest.Forgeable()
	if err != nil {
		t.Fatal(err)
	}
	return keys
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
