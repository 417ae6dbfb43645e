package pki

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/keys"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// ocspSuites are the CA suites the OCSP tests run under: the platform's
// two and Ed25519, which OpenSSL verifies too.
var ocspSuites = []sigalg.ID{sigalg.ECDSAP256, sigalg.Ed25519, sigalg.MLDSA65}

// readOpenSSLRequest reads one of the requests OpenSSL made
// (testdata/README.md).
func readOpenSSLRequest(t testing.TB, name string) []byte {
	t.Helper()
	der, err := os.ReadFile(filepath.Join("testdata", "ocsp", name))
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestParseOCSPRequestFromOpenSSL(t *testing.T) {
	pemData, err := os.ReadFile(filepath.Join("testdata", "ocsp", "openssl-issuer.pem"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(pemData)
	issuer, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	hashes, err := ocspIssuerHashes(issuer)
	if err != nil {
		t.Fatal(err)
	}
	serial1, _ := hex.DecodeString("4a1b2c3d4e5f60718293a4b5c6d7e8f9")
	serial2, _ := hex.DecodeString("5a1b2c3d4e5f60718293a4b5c6d7e8f0")
	tests := []struct {
		file     string
		hash     asn1.ObjectIdentifier
		serials  [][]byte
		nonceLen int
	}{
		{"sha1-nonce.der", oidOCSPHashSHA1, [][]byte{serial1}, 16},
		{"sha1-no-nonce.der", oidOCSPHashSHA1, [][]byte{serial1}, 0},
		{"sha256-nonce.der", oidOCSPHashSHA256, [][]byte{serial1}, 16},
		{"two-certs.der", oidOCSPHashSHA1, [][]byte{serial1, serial2}, 16},
		{"signed.der", oidOCSPHashSHA1, [][]byte{serial1}, 16},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			req, err := ParseOCSPRequest(readOpenSSLRequest(t, tt.file))
			if err != nil {
				t.Fatalf("ParseOCSPRequest: %v", err)
			}
			if len(req.Nonce) != tt.nonceLen {
				t.Errorf("nonce of %d octets, want %d", len(req.Nonce), tt.nonceLen)
			}
			if len(req.CertIDs) != len(tt.serials) {
				t.Fatalf("%d CertIDs, want %d", len(req.CertIDs), len(tt.serials))
			}
			for i, id := range req.CertIDs {
				if !id.HashAlgorithm.Equal(tt.hash) || !ocspMatchesIssuer(id, hashes) {
					t.Errorf("CertID %d: hash %v does not name the issuer", i, id.HashAlgorithm)
				}
				serial, ok := id.Serial()
				if !ok || !bytes.Equal(serial[:], tt.serials[i]) {
					t.Errorf("CertID %d: serial %x (%v), want %x", i, serial, ok, tt.serials[i])
				}
			}
		})
	}
}

// rawRequest builds an OCSPRequest field by field, to make requests
// CreateOCSPRequest never would.
type rawRequest struct {
	version  int
	ids      []ocspCertIDASN
	exts     []pkix.Extension
	trailing []byte
}

func (r rawRequest) der(t testing.TB) []byte {
	t.Helper()
	tbs := ocspTBSRequestASN{Version: r.version, Extensions: r.exts}
	for _, id := range r.ids {
		raw, err := asn1.Marshal(id)
		if err != nil {
			t.Fatal(err)
		}
		tbs.RequestList = append(tbs.RequestList, ocspSingleRequestASN{CertID: asn1.RawValue{FullBytes: raw}})
	}
	raw, err := asn1.Marshal(tbs)
	if err != nil {
		t.Fatal(err)
	}
	der, err := asn1.Marshal(ocspRequestASN{TBS: asn1.RawValue{FullBytes: raw}})
	if err != nil {
		t.Fatal(err)
	}
	return append(der, r.trailing...)
}

func testCertIDASN(serial []byte) ocspCertIDASN {
	return ocspCertIDASN{
		HashAlgorithm:  pkix.AlgorithmIdentifier{Algorithm: oidOCSPHashSHA256},
		IssuerNameHash: make([]byte, 32), IssuerKeyHash: make([]byte, 32),
		SerialNumber: asn1.RawValue{Tag: asn1.TagInteger, Bytes: serial},
	}
}

func nonceExt(t testing.TB, n int) pkix.Extension {
	t.Helper()
	v, err := asn1.Marshal(make([]byte, n))
	if err != nil {
		t.Fatal(err)
	}
	return pkix.Extension{Id: oidOCSPNonce, Value: v}
}

func TestParseOCSPRequestRefuses(t *testing.T) {
	good := testCertIDASN(bytes.Repeat([]byte{0x41}, 16))
	withParams := good
	withParams.HashAlgorithm.Parameters = asn1.RawValue{Tag: asn1.TagInteger, Bytes: []byte{1}}
	critical := pkix.Extension{Id: asn1.ObjectIdentifier{1, 2, 3}, Critical: true, Value: asn1.NullBytes}
	tests := []struct {
		name string
		req  rawRequest
	}{
		{"version 2", rawRequest{version: 1, ids: []ocspCertIDASN{good}}},
		{"no CertID", rawRequest{}},
		{"17 CertIDs", rawRequest{ids: slices.Repeat([]ocspCertIDASN{good}, MaxOCSPRequests+1)}},
		{"trailing bytes", rawRequest{ids: []ocspCertIDASN{good}, trailing: []byte{0}}},
		{"empty nonce", rawRequest{ids: []ocspCertIDASN{good}, exts: []pkix.Extension{nonceExt(t, 0)}}},
		{"33-octet nonce", rawRequest{ids: []ocspCertIDASN{good}, exts: []pkix.Extension{nonceExt(t, 33)}}},
		{"raw nonce", rawRequest{ids: []ocspCertIDASN{good}, exts: []pkix.Extension{{Id: oidOCSPNonce, Value: make([]byte, 16)}}}},
		{"two nonces", rawRequest{ids: []ocspCertIDASN{good}, exts: []pkix.Extension{nonceExt(t, 8), nonceExt(t, 8)}}},
		{"unknown critical extension", rawRequest{ids: []ocspCertIDASN{good}, exts: []pkix.Extension{critical}}},
		{"hash parameters", rawRequest{ids: []ocspCertIDASN{withParams}}},
		{"serial with a leading zero", rawRequest{ids: []ocspCertIDASN{testCertIDASN([]byte{0, 0x41})}}},
		{"empty serial", rawRequest{ids: []ocspCertIDASN{testCertIDASN(nil)}}},
		{"22-octet serial", rawRequest{ids: []ocspCertIDASN{testCertIDASN(bytes.Repeat([]byte{1}, 22))}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseOCSPRequest(tt.req.der(t))
			if !errors.Is(err, ErrMalformedOCSPRequest) {
				t.Fatalf("err = %v, want ErrMalformedOCSPRequest", err)
			}
		})
	}
	t.Run("oversized", func(t *testing.T) {
		req := rawRequest{ids: []ocspCertIDASN{good}, exts: []pkix.Extension{{Id: asn1.ObjectIdentifier{1, 2, 3}, Value: make([]byte, MaxOCSPRequestSize)}}}
		if _, err := ParseOCSPRequest(req.der(t)); !errors.Is(err, ErrMalformedOCSPRequest) {
			t.Fatalf("err = %v, want ErrMalformedOCSPRequest", err)
		}
	})
	t.Run("accepted controls", func(t *testing.T) {
		ok := rawRequest{ids: []ocspCertIDASN{good, good}, exts: []pkix.Extension{nonceExt(t, 32), {Id: asn1.ObjectIdentifier{1, 2, 3}, Value: asn1.NullBytes}}}
		req, err := ParseOCSPRequest(ok.der(t))
		if err != nil || len(req.CertIDs) != 2 || len(req.Nonce) != 32 {
			t.Fatalf("ParseOCSPRequest = %+v, %v; want 2 CertIDs and a 32-octet nonce", req, err)
		}
		negative := rawRequest{ids: []ocspCertIDASN{testCertIDASN([]byte{0xff, 0x01})}}
		req, err = ParseOCSPRequest(negative.der(t))
		if err != nil {
			t.Fatalf("negative serial: %v", err)
		}
		if _, ours := req.CertIDs[0].Serial(); ours {
			t.Fatal("a negative serial passes for one of ours")
		}
	})
}

// ocspFixture is a CA, a delegated responder and two device certificates.
type ocspFixture struct {
	*testCA
	responderDER []byte
	responderKey crypto.Signer
	responder    *OCSPSigner
	devices      []*Issued
}

func newOCSPFixture(t testing.TB, suite sigalg.ID) *ocspFixture {
	t.Helper()
	f := &ocspFixture{testCA: newTestCA(t, suite)}
	ctx := context.Background()
	pub, err := f.km.CreateKey(ctx, keys.CreateKeyRequest{Name: KeyOCSPResponder, Suite: suite})
	if err != nil {
		t.Fatal(err)
	}
	if f.responderDER, err = f.IssueOCSPResponder(ctx, pub, 7*24*time.Hour); err != nil {
		t.Fatalf("IssueOCSPResponder: %v", err)
	}
	f.responderKey = f.testCA.signer(t, KeyOCSPResponder)
	if f.responder, err = NewOCSPSigner(f.Chain()[0], f.responderDER, f.responderKey); err != nil {
		t.Fatalf("NewOCSPSigner: %v", err)
	}
	for _, label := range []string{"ocsp-a", "ocsp-b"} {
		f.devices = append(f.devices, issueDevice(t, f.CA, deviceKey(t, sigalg.ECDSAP256, label).Public(), label))
	}
	return f
}

// certID is the CertID of one of the fixture's devices, as a client would
// send it.
func (f *ocspFixture) certID(t testing.TB, i int, hash crypto.Hash) OCSPCertID {
	t.Helper()
	der, err := CreateOCSPRequest(f.IssuingCertificate(), [][SerialSize]byte{f.devices[i].Serial}, hash, nil)
	if err != nil {
		t.Fatal(err)
	}
	req, err := ParseOCSPRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	return req.CertIDs[0]
}

// statuses are one response of each kind about the fixture's devices.
func (f *ocspFixture) statuses(t testing.TB) []OCSPSingleResponse {
	next := testNow.Add(time.Hour)
	return []OCSPSingleResponse{
		{CertID: f.certID(t, 0, crypto.SHA1), Status: OCSPGood, ThisUpdate: testNow, NextUpdate: next},
		{CertID: f.certID(t, 1, crypto.SHA256), Status: OCSPRevoked, RevokedAt: testNow.Add(-time.Hour), Reason: ReasonKeyCompromise, ThisUpdate: testNow, NextUpdate: next},
		{CertID: f.certID(t, 1, crypto.SHA1), Status: OCSPRevoked, RevokedAt: testNow.Add(-time.Minute), Reason: ReasonCertificateHold, ThisUpdate: testNow},
		{CertID: f.certID(t, 0, crypto.SHA256), Status: OCSPRevoked, RevokedAt: testNow.Add(-time.Minute), ThisUpdate: testNow},
	}
}

func TestOCSPResponseRoundTrip(t *testing.T) {
	for _, suite := range ocspSuites {
		t.Run(string(suite), func(t *testing.T) {
			f := newOCSPFixture(t, suite)
			caSigner, err := f.OCSPSigner()
			if err != nil {
				t.Fatal(err)
			}
			for _, tc := range []struct {
				name   string
				signer *OCSPSigner
				want   []byte
			}{{"delegated", f.responder, f.responderDER}, {"issuing CA", caSigner, f.Chain()[0]}} {
				t.Run(tc.name, func(t *testing.T) {
					want := f.statuses(t)
					nonce := []byte("a nonce of 22 octets..")
					der, err := tc.signer.Sign(testNow, want, nonce)
					if err != nil {
						t.Fatalf("Sign: %v", err)
					}
					resp, err := VerifyOCSPResponse(der, f.Chain()[0], testNow, nonce)
					if err != nil {
						t.Fatalf("VerifyOCSPResponse: %v", err)
					}
					if !bytes.Equal(resp.Signer.Raw, tc.want) || !resp.ProducedAt.Equal(testNow) {
						t.Errorf("signer %q, producedAt %v", resp.Signer.Subject.CommonName, resp.ProducedAt)
					}
					checkSingles(t, resp.Responses, want)
				})
			}
		})
	}
}

func checkSingles(t *testing.T, got, want []OCSPSingleResponse) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d responses, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if !bytes.Equal(g.CertID.raw, w.CertID.raw) || g.Status != w.Status || g.Reason != w.Reason ||
			!g.RevokedAt.Equal(w.RevokedAt) || !g.ThisUpdate.Equal(w.ThisUpdate) || !g.NextUpdate.Equal(w.NextUpdate) {
			t.Errorf("response %d = %+v, want %+v", i, g, w)
		}
	}
}

func TestIssueOCSPResponderProfile(t *testing.T) {
	for _, suite := range ocspSuites {
		t.Run(string(suite), func(t *testing.T) {
			f := newOCSPFixture(t, suite)
			c := mustParse(t, f.responderDER)
			if c.IsCA || !slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning}) || c.KeyUsage != x509.KeyUsageDigitalSignature {
				t.Errorf("IsCA %v, EKU %v, KU %v", c.IsCA, c.ExtKeyUsage, c.KeyUsage)
			}
			var nocheck int
			for _, e := range c.Extensions {
				if e.Id.Equal(oidOCSPNoCheck) {
					nocheck++
					if e.Critical || !bytes.Equal(e.Value, asn1.NullBytes) {
						t.Errorf("ocsp-nocheck critical %v value %x", e.Critical, e.Value)
					}
				}
			}
			if nocheck != 1 {
				t.Errorf("%d ocsp-nocheck extensions, want 1", nocheck)
			}
			if got := c.NotAfter.Sub(testNow); got != 7*24*time.Hour {
				t.Errorf("valid for %v after issuance, want 7 days", got)
			}
			if _, err := VerifyChain(f.responderDER, f.Chain()[:1], f.Chain()[1:], testNow, x509.ExtKeyUsageOCSPSigning); err != nil {
				t.Errorf("VerifyChain: %v", err)
			}
			if _, err := f.IssueOCSPResponder(context.Background(), f.responderKey.Public(), MaxOCSPResponderValidity+time.Hour); !errors.Is(err, ErrInvalidRequest) {
				t.Errorf("a %v responder: err = %v, want ErrInvalidRequest", MaxOCSPResponderValidity+time.Hour, err)
			}
		})
	}
}

func TestNewOCSPSignerRefuses(t *testing.T) {
	f := newOCSPFixture(t, sigalg.ECDSAP256)
	other := newOCSPFixture(t, sigalg.ECDSAP256)
	devKey := deviceKey(t, sigalg.ECDSAP256, "ocsp-a")
	tests := []struct {
		name      string
		responder []byte
		key       crypto.Signer
		want      error
	}{
		{"device certificate", f.devices[0].DER, devKey, ErrUntrusted},
		{"another CA's responder", other.responderDER, other.responderKey, ErrUntrusted},
		{"the issuing CA itself", f.Chain()[0], f.testCA.signer(t, KeyIssuing), ErrUntrusted},
		{"wrong key", f.responderDER, devKey, ErrInvalidRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewOCSPSigner(f.Chain()[0], tt.responder, tt.key); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
	t.Run("CertID of another issuer", func(t *testing.T) {
		id := other.certID(t, 0, crypto.SHA256)
		if f.responder.Covers(id) {
			t.Fatal("Covers another issuer's CertID")
		}
		_, err := f.responder.Sign(testNow, []OCSPSingleResponse{{CertID: id, Status: OCSPGood, ThisUpdate: testNow}}, nil)
		if !errors.Is(err, ErrInvalidRequest) {
			t.Fatalf("err = %v, want ErrInvalidRequest", err)
		}
	})
	t.Run("bad statuses", func(t *testing.T) {
		id := f.certID(t, 0, crypto.SHA1)
		for _, r := range []OCSPSingleResponse{
			{CertID: id, Status: OCSPRevoked, ThisUpdate: testNow},                                 // no time
			{CertID: id, Status: OCSPRevoked, RevokedAt: testNow, Reason: 7, ThisUpdate: testNow},  // unassigned
			{CertID: id, Status: OCSPRevoked, RevokedAt: testNow, Reason: 11, ThisUpdate: testNow}, // out of range
			{CertID: id, Status: OCSPGood, ThisUpdate: testNow, NextUpdate: testNow.Add(-time.Second)},
			{CertID: id, Status: OCSPCertStatus(3), ThisUpdate: testNow},
		} {
			if _, err := f.responder.Sign(testNow, []OCSPSingleResponse{r}, nil); !errors.Is(err, ErrInvalidRequest) {
				t.Errorf("Sign(%+v): err = %v, want ErrInvalidRequest", r, err)
			}
		}
	})
}

// forgedSigner signs as if cert were a responder for f's issuer, skipping
// NewOCSPSigner's checks, to make responses a verifier must refuse.
func forgedSigner(t testing.TB, f *ocspFixture, certDER []byte, key crypto.Signer) *OCSPSigner {
	t.Helper()
	cert, err := parseCert(certDER)
	if err != nil {
		t.Fatal(err)
	}
	s, err := newOCSPSigner(f.issuing, cert, key)
	if err != nil {
		t.Fatal(err)
	}
	s.certs = []asn1.RawValue{{FullBytes: certDER}}
	return s
}

func TestVerifyOCSPResponseRefuses(t *testing.T) {
	f := newOCSPFixture(t, sigalg.ECDSAP256)
	other := newOCSPFixture(t, sigalg.ECDSAP256)
	single := []OCSPSingleResponse{{CertID: f.certID(t, 0, crypto.SHA1), Status: OCSPGood, ThisUpdate: testNow, NextUpdate: testNow.Add(time.Hour)}}
	sign := func(s *OCSPSigner, nonce []byte) []byte {
		der, err := s.Sign(testNow, single, nonce)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	good := sign(f.responder, []byte{1, 2, 3})
	tampered := tamperOCSPSignature(t, good)
	tests := []struct {
		name  string
		der   []byte
		now   time.Time
		nonce []byte
		want  error
	}{
		{"wrong nonce", good, testNow, []byte{1, 2, 4}, ErrOCSPNonceMismatch},
		{"nonce missing", sign(f.responder, nil), testNow, []byte{1}, ErrOCSPNonceMismatch},
		{"tampered signature", tampered, testNow, nil, ErrUntrusted},
		{"signed by a device", sign(forgedSigner(t, f, f.devices[0].DER, deviceKey(t, sigalg.ECDSAP256, "ocsp-a")), nil), testNow, nil, ErrUntrusted},
		{"signed by another CA's responder", sign(forgedSigner(t, f, other.responderDER, other.responderKey), nil), testNow, nil, ErrUntrusted},
		{"responder expired", good, testNow.Add(8 * 24 * time.Hour), nil, ErrExpired},
		{"nextUpdate passed", good, testNow.Add(2 * time.Hour), nil, ErrExpired},
		{"thisUpdate ahead", good, testNow.Add(-time.Hour), nil, ErrExpired},
		{"unauthorized", OCSPErrorResponse(OCSPUnauthorized), testNow, nil, ErrOCSPRefused},
		{"truncated", good[:len(good)-1], testNow, nil, ErrMalformedOCSPResponse},
		{"request instead", readOpenSSLRequest(t, "sha1-nonce.der"), testNow, nil, ErrMalformedOCSPResponse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := VerifyOCSPResponse(tt.der, f.Chain()[0], tt.now, tt.nonce)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
	t.Run("about another issuer", func(t *testing.T) {
		if _, err := VerifyOCSPResponse(good, other.Chain()[0], testNow, nil); !errors.Is(err, ErrUntrusted) {
			t.Fatalf("err = %v, want ErrUntrusted", err)
		}
	})
}

func TestOCSPErrorResponses(t *testing.T) {
	issuer := newTestCA(t, sigalg.ECDSAP256).Chain()[0]
	for _, s := range []OCSPResponseStatus{OCSPMalformedRequest, OCSPInternalError, OCSPTryLater, OCSPSigRequired, OCSPUnauthorized} {
		der := OCSPErrorResponse(s)
		want := []byte{0x30, 0x03, 0x0a, 0x01, byte(s)}
		if !bytes.Equal(der, want) {
			t.Errorf("%v: %x, want %x", s, der, want)
		}
		var refused *OCSPRefusedError
		if _, err := VerifyOCSPResponse(der, issuer, testNow, nil); !errors.As(err, &refused) || refused.Status != s {
			t.Errorf("%v: err = %v", s, err)
		}
	}
}

// tamperOCSPSignature flips a bit of a response's signature.
func tamperOCSPSignature(t testing.TB, der []byte) []byte {
	t.Helper()
	basic, err := parseOCSPBasic(der)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(der, basic.Signature.Bytes)
	if i < 0 {
		t.Fatal("signature not found")
	}
	out := bytes.Clone(der)
	out[i+len(basic.Signature.Bytes)/2] ^= 1
	return out
}
