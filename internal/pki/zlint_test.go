package pki

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"math/big"
	"slices"
	"testing"
	"time"

	zx509 "github.com/zmap/zcrypto/x509"
	"github.com/zmap/zlint/v3"
	"github.com/zmap/zlint/v3/lint"

	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// zlintExcludedSources are the lint sources that do not apply to a private
// PKI; docs/pki.md says why for each. Every other source runs in full.
var zlintExcludedSources = lint.SourceList{
	lint.CABFBaselineRequirements,
	lint.CABFEVGuidelines,
	lint.CABFSMIMEBaselineRequirements,
	lint.CABFCSBaselineRequirements,
	lint.MozillaRootStorePolicy,
	lint.AppleRootStorePolicy,
	lint.ChromeRootStorePolicy,
	lint.EtsiEsi,
	lint.RFC6962,
}

// zlintBlindToMLDSA are lints that misjudge a certificate signed with
// ML-DSA because zcrypto knows neither the algorithm nor how to check its
// signature; docs/pki.md. The project's own checks cover what they would.
var zlintBlindToMLDSA = map[string]string{
	// zcrypto cannot check the root's self-signature, so zlint takes the
	// self-signed ML-DSA root for an issued certificate, which needs an AKI.
	"e_ext_authority_key_identifier_no_key_identifier": "self-signature not checkable",
}

// minPassedCert and minPassedCRL are how many lints must pass on every
// certificate and CRL: a filter that left (almost) nothing to run would
// pass everything. (Most lints are "not applicable" to a given
// certificate; zlint 3.7.3 has 12 CRL lints in the sources kept.)
const (
	minPassedCert = 40
	minPassedCRL  = 8
)

func zlintRegistry(t *testing.T) lint.Registry {
	t.Helper()
	reg, err := lint.GlobalRegistry().Filter(lint.FilterOptions{ExcludeSources: zlintExcludedSources})
	if err != nil {
		t.Fatalf("zlint filter: %v", err)
	}
	return reg
}

// lintedCert is one certificate Hallmark issues, and the suite that signed it.
type lintedCert struct {
	kind     string
	der      []byte
	signedBy sigalg.ID
}

// hallmarkCertificates issues, with a CA of suite whose certificates
// carry revocation URLs, one certificate of every kind the platform makes.
func hallmarkCertificates(t *testing.T, tc *testCA) []lintedCert {
	t.Helper()
	ctx := context.Background()
	suite := tc.Suite()
	certs := []lintedCert{
		{"root", tc.RootCertificate().Raw, suite},
		{"issuing CA", tc.IssuingCertificate().Raw, suite},
	}
	// An ML-DSA CA's bundle also holds the ECDSA TLS root.
	for rest := tc.RootPEM(); ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if c := mustParse(t, b.Bytes); !c.Equal(tc.RootCertificate()) {
			certs = append(certs, lintedCert{"TLS root", b.Bytes, sigalg.ECDSAP256})
		}
	}
	for _, key := range []sigalg.ID{sigalg.ECDSAP256, sigalg.Ed25519, sigalg.MLDSA44} {
		iss := issueDevice(t, tc.CA, deviceKey(t, key, "zlint").Public(), "zlint "+string(key))
		certs = append(certs, lintedCert{"device, " + string(key) + " key", iss.DER, suite})
	}
	responder, err := tc.IssueOCSPResponder(ctx, deviceKey(t, suite, "zlint responder").Public(), 7*24*time.Hour)
	if err != nil {
		t.Fatalf("IssueOCSPResponder: %v", err)
	}
	certs = append(certs, lintedCert{"OCSP responder", responder, suite})
	server, err := tc.IssueServer(ctx, []string{"platform.example", "localhost"}, nil, 90*24*time.Hour)
	if err != nil {
		t.Fatalf("IssueServer: %v", err)
	}
	serverSigner := suite
	if !tlsCapable(suite) {
		serverSigner = sigalg.ECDSAP256
	}
	return append(certs, lintedCert{"TLS server", server.Certificate[0], serverSigner})
}

// TestZlintCertificates runs zlint, less the sources that do not apply to
// a private PKI, on every kind of certificate Hallmark issues, for each
// CA suite: no lint may give an error or a warning. zcrypto parses ML-DSA
// certificates but knows neither their key nor their signature algorithm;
// the lints blind to that are left out for them, and the project's own
// verifier checks their signatures and profile instead.
func TestZlintCertificates(t *testing.T) {
	reg := zlintRegistry(t)
	for _, suite := range []sigalg.ID{sigalg.ECDSAP256, sigalg.Ed25519, sigalg.MLDSA65} {
		t.Run(string(suite), func(t *testing.T) {
			tc := newTestCAWith(t, Config{Suite: suite, RevocationBaseURL: testRevocationBase})
			for _, c := range hallmarkCertificates(t, tc) {
				zc, err := zx509.ParseCertificate(c.der)
				if err != nil {
					t.Fatalf("%s: zcrypto cannot parse it: %v", c.kind, err)
				}
				mldsa := isMLDSA(c.signedBy)
				if unknown := zc.SignatureAlgorithm == zx509.UnknownSignatureAlgorithm; unknown != mldsa {
					t.Errorf("%s: zcrypto's signature algorithm %v; the ML-DSA exceptions assume it knows all but ML-DSA", c.kind, zc.SignatureAlgorithm)
				}
				checkZlint(t, c.kind, zlint.LintCertificateEx(zc, reg), minPassedCert, mldsa)
				if mldsa {
					checkMLDSACertificate(t, tc, c)
				}
			}
		})
	}
}

// checkMLDSACertificate is what zlint cannot do for an ML-DSA certificate:
// check its signature, and the chain's profile, with the project's verifier.
func checkMLDSACertificate(t *testing.T, tc *testCA, c lintedCert) {
	t.Helper()
	now := testNow.Add(time.Hour)
	root, issuing := tc.RootCertificate(), tc.IssuingCertificate()
	var err error
	switch leaf := mustParse(t, c.der); {
	case leaf.Equal(root):
		var p *parsedCert
		if p, err = parseCert(c.der); err == nil {
			err = p.checkSignedBy(root)
		}
	case leaf.IsCA:
		_, err = VerifyChain(c.der, nil, [][]byte{root.Raw}, now, x509.ExtKeyUsageAny)
	case slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageOCSPSigning):
		_, err = VerifyChain(c.der, [][]byte{issuing.Raw}, [][]byte{root.Raw}, now, x509.ExtKeyUsageOCSPSigning)
	default:
		_, err = VerifyChain(c.der, [][]byte{issuing.Raw}, [][]byte{root.Raw}, now, x509.ExtKeyUsageClientAuth)
	}
	if err != nil {
		t.Errorf("%s: the project's verifier refuses it: %v", c.kind, err)
	}
}

// TestZlintCRLs: the CRLs Hallmark publishes, empty and with an entry of
// every reason the registry gives, pass zlint's CRL lints for ECDSA and
// Ed25519 CAs, and for ML-DSA, whose signature VerifyCRL checks as
// zcrypto cannot.
func TestZlintCRLs(t *testing.T) {
	reg := zlintRegistry(t)
	for _, suite := range []sigalg.ID{sigalg.ECDSAP256, sigalg.Ed25519, sigalg.MLDSA65} {
		t.Run(string(suite), func(t *testing.T) {
			tc := newTestCAWith(t, Config{Suite: suite, RevocationBaseURL: testRevocationBase})
			var entries []CRLEntry
			for i, reason := range []int{ReasonUnspecified, ReasonKeyCompromise, ReasonSuperseded, ReasonCessationOfOperation, ReasonCertificateHold} {
				iss := issueDevice(t, tc.CA, deviceKey(t, sigalg.ECDSAP256, "crl").Public(), "zlint crl "+string(rune('a'+i)))
				entries = append(entries, CRLEntry{Serial: iss.Serial, RevokedAt: testNow.Add(-time.Minute), Reason: reason})
			}
			for _, list := range [][]CRLEntry{nil, entries} {
				der := createCRL(t, tc.CA, CRLRequest{Number: big.NewInt(1_700_000_000_123), ThisUpdate: testNow,
					NextUpdate: testNow.Add(24 * time.Hour), Entries: list})
				rl, err := zx509.ParseRevocationList(der)
				if isMLDSA(suite) {
					if _, err := VerifyCRL(der, tc.IssuingCertificate()); err != nil {
						t.Fatalf("VerifyCRL: %v", err)
					}
				}
				if err != nil {
					t.Fatalf("zcrypto cannot parse the CRL: %v", err)
				}
				checkZlint(t, "CRL", zlint.LintRevocationListEx(rl, reg), minPassedCRL, isMLDSA(suite))
			}
		})
	}
}

// TestZlintFilterKeepsRFC5280: the filtered registry still judges: a
// device certificate re-signed with its authority key identifier marked
// critical is an RFC 5280 error.
func TestZlintFilterKeepsRFC5280(t *testing.T) {
	tc := newTestCA(t, sigalg.ECDSAP256)
	iss := issueDevice(t, tc.CA, deviceKey(t, sigalg.ECDSAP256, "no aki").Public(), "no aki")
	der := resign(t, iss.DER, tc.signer(t, KeyIssuing), func(tbs *tbsCertificate) {
		for i, e := range tbs.Extensions {
			tbs.Extensions[i].Critical = e.Critical || e.Id.Equal(oidAuthorityKeyID)
		}
	})
	zc, err := zx509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	res := zlint.LintCertificateEx(zc, zlintRegistry(t))
	if r := res.Results["e_ext_authority_key_identifier_critical"]; r == nil || r.Status != lint.Error {
		t.Fatalf("e_ext_authority_key_identifier_missing = %+v; want an error", r)
	}
}

// checkZlint fails t for every error, warning or fatal result, except the
// lints blind to ML-DSA on an ML-DSA-signed certificate, and when fewer
// than minPassed lints passed.
func checkZlint(t *testing.T, what string, res *zlint.ResultSet, minPassed int, mldsa bool) {
	t.Helper()
	passed := 0
	for name, r := range res.Results {
		switch r.Status {
		case lint.Pass:
			passed++
		case lint.Error, lint.Warn, lint.Fatal:
			if _, blind := zlintBlindToMLDSA[name]; mldsa && blind {
				continue
			}
			t.Errorf("%s: %s %s %s", what, r.Status, name, r.Details)
		}
	}
	if passed < minPassed {
		t.Errorf("%s: %d lints passed, want at least %d (is the filter leaving anything to run?)", what, passed, minPassed)
	}
}

func isMLDSA(id sigalg.ID) bool {
	return id == sigalg.MLDSA44 || id == sigalg.MLDSA65 || id == sigalg.MLDSA87
}
