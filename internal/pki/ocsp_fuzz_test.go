package pki

import (
	"bytes"
	"crypto"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// FuzzParseOCSPRequest: ParseOCSPRequest never panics, every refusal is
// ErrMalformedOCSPRequest, and an accepted request keeps the limits and
// holds CertIDs that parse again from their own encoding. Seeds: the
// requests OpenSSL made (testdata/ocsp) and CreateOCSPRequest's.
func FuzzParseOCSPRequest(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "ocsp", "*.der"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no OpenSSL seeds: %v", err)
	}
	for _, name := range files {
		der, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(der)
	}
	issuer := newTestCA(f, sigalg.ECDSAP256).IssuingCertificate()
	for _, hash := range []crypto.Hash{crypto.SHA1, crypto.SHA256} {
		der, err := CreateOCSPRequest(issuer, [][SerialSize]byte{{0x40, 1}, {0x41, 2}}, hash, []byte("nonce"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(der)
		f.Add(der[:len(der)-3])
	}
	f.Fuzz(func(t *testing.T, der []byte) {
		req, err := ParseOCSPRequest(der)
		if err != nil {
			if !errors.Is(err, ErrMalformedOCSPRequest) {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		if len(der) > MaxOCSPRequestSize || len(req.CertIDs) == 0 || len(req.CertIDs) > MaxOCSPRequests {
			t.Fatalf("accepted %d bytes with %d CertIDs", len(der), len(req.CertIDs))
		}
		if req.Nonce != nil && (len(req.Nonce) < minOCSPNonce || len(req.Nonce) > maxOCSPNonce) {
			t.Fatalf("accepted a nonce of %d octets", len(req.Nonce))
		}
		for _, id := range req.CertIDs {
			again, err := parseCertID(id.Raw())
			if err != nil || !bytes.Equal(again.SerialNumber, id.SerialNumber) {
				t.Fatalf("CertID does not parse again: %v", err)
			}
		}
	})
}

// FuzzVerifyOCSPResponse: VerifyOCSPResponse never panics, classifies
// every refusal, and accepts nothing but what the fixture's responder or
// CA signed: an accepted response's signed data is one of the seeds'.
func FuzzVerifyOCSPResponse(f *testing.F) {
	fx := newOCSPFixture(f, sigalg.ECDSAP256)
	caSigner, err := fx.OCSPSigner()
	if err != nil {
		f.Fatal(err)
	}
	signed := map[string]bool{}
	for _, s := range []*OCSPSigner{fx.responder, caSigner} {
		der, err := s.Sign(testNow, fx.statuses(f), []byte("nonce"))
		if err != nil {
			f.Fatal(err)
		}
		basic, err := parseOCSPBasic(der)
		if err != nil {
			f.Fatal(err)
		}
		signed[string(basic.TBS.FullBytes)] = true
		f.Add(der)
	}
	f.Add(OCSPErrorResponse(OCSPTryLater))
	issuer := fx.Chain()[0]
	f.Fuzz(func(t *testing.T, der []byte) {
		resp, err := VerifyOCSPResponse(der, issuer, testNow, nil)
		if err != nil {
			for _, want := range []error{ErrMalformedOCSPResponse, ErrOCSPRefused, ErrUntrusted, ErrExpired, ErrMalformedCertificate} {
				if errors.Is(err, want) {
					return
				}
			}
			t.Fatalf("unclassified error: %v", err)
		}
		basic, err := parseOCSPBasic(der)
		if err != nil || !signed[string(basic.TBS.FullBytes)] {
			t.Fatalf("accepted a response nobody signed: %+v", resp)
		}
		if resp.ProducedAt.After(testNow.Add(time.Minute)) {
			t.Fatal("producedAt changed")
		}
	})
}
