package pki

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

const testRevocationBase = "http://revocation.example:8080/pki"

func newTestCAWith(t testing.TB, cfg Config) *testCA {
	t.Helper()
	base := t.TempDir()
	tc := &testCA{dir: filepath.Join(base, "ca"), keyDir: filepath.Join(base, "keys")}
	tc.km = newKeyManager(t, tc.keyDir)
	if cfg.Now == nil {
		cfg.Now = fixedClock
	}
	ca, err := Open(context.Background(), tc.km, tc.dir, cfg)
	if err != nil {
		t.Fatalf("Open %s CA: %v", cfg.Suite, err)
	}
	tc.CA = ca
	return tc
}

// TestDeviceCertificateRevocationURLs: with a base URL, device
// certificates of every suite carry the CRL Distribution Point and the
// OCSP and caIssuers access descriptions, as crypto/x509 reads them; the
// certificates still verify.
func TestDeviceCertificateRevocationURLs(t *testing.T) {
	for _, suite := range []sigalg.ID{sigalg.ECDSAP256, sigalg.Ed25519, sigalg.MLDSA65} {
		t.Run(string(suite), func(t *testing.T) {
			// A trailing slash is dropped, so URLs have no "//".
			tc := newTestCAWith(t, Config{Suite: suite, RevocationBaseURL: testRevocationBase + "/"})
			iss := issueDevice(t, tc.CA, deviceKey(t, suite, "urls").Public(), "urls")
			chain := tc.Chain()
			leaf, err := VerifyChain(iss.DER, chain[:1], chain[1:], testNow, x509.ExtKeyUsageClientAuth)
			if err != nil {
				t.Fatal(err)
			}
			crl := testRevocationBase + "/crl/" + tc.CRLName() + ".crl"
			if !slices.Equal(leaf.CRLDistributionPoints, []string{crl}) || tc.CRLURL() != crl {
				t.Errorf("CRL distribution points %q, CRLURL %q, want %q", leaf.CRLDistributionPoints, tc.CRLURL(), crl)
			}
			if !slices.Equal(leaf.OCSPServer, []string{testRevocationBase + "/ocsp"}) || tc.OCSPURL() != testRevocationBase+"/ocsp" {
				t.Errorf("OCSP servers %q, OCSPURL %q", leaf.OCSPServer, tc.OCSPURL())
			}
			if want := testRevocationBase + "/ca/" + tc.CRLName() + ".crt"; !slices.Equal(leaf.IssuingCertificateURL, []string{want}) {
				t.Errorf("caIssuers %q, want %q", leaf.IssuingCertificateURL, want)
			}
			for _, ext := range leaf.Extensions {
				if ext.Critical && (ext.Id.Equal(oidCRLDistributionPoints) || ext.Id.Equal(oidAuthorityInfoAccess)) {
					t.Errorf("extension %s is critical", ext.Id)
				}
			}
		})
	}
}

// TestNoRevocationURLsByDefault: without a base URL nothing changes (the
// golden files pin the bytes).
func TestNoRevocationURLsByDefault(t *testing.T) {
	tc := newTestCA(t, sigalg.Ed25519)
	leaf := mustParse(t, issueDevice(t, tc.CA, deviceKey(t, sigalg.Ed25519, "plain").Public(), "plain").DER)
	if len(leaf.CRLDistributionPoints)+len(leaf.OCSPServer)+len(leaf.IssuingCertificateURL) != 0 || tc.CRLURL() != "" || tc.OCSPURL() != "" {
		t.Errorf("a CA without base URL put revocation URLs in a certificate: %q %q %q", leaf.CRLDistributionPoints, leaf.OCSPServer, leaf.IssuingCertificateURL)
	}
	server, err := newTestCAWith(t, Config{Suite: sigalg.ECDSAP256, RevocationBaseURL: testRevocationBase}).
		IssueServer(context.Background(), []string{"platform.example"}, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if c := mustParse(t, server.Certificate[0]); len(c.CRLDistributionPoints)+len(c.OCSPServer) != 0 {
		t.Error("a TLS server certificate carries revocation URLs: only device certificates do")
	}
}

func TestRevocationBaseURLRefused(t *testing.T) {
	for _, raw := range []string{
		"https://revocation.example", "ftp://revocation.example", "revocation.example", "http://",
		"http://user:pw@revocation.example", "http://revocation.example/?q=1", "http://revocation.example/#x",
		"http://révocation.example", "http://revocation.example/a b", "http://revocation.example/?",
	} {
		t.Run(raw, func(t *testing.T) {
			km := newKeyManager(t, "")
			dir := filepath.Join(t.TempDir(), "ca")
			if _, err := Open(context.Background(), km, dir, Config{RevocationBaseURL: raw, Now: fixedClock}); err == nil {
				t.Fatal("Open accepted the base URL")
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Errorf("a refused configuration created the CA directory: %v", err)
			}
		})
	}
}

// TestGoldenRevocationURLs pins the encoding of the two extensions in a
// device TBSCertificate (go test -run TestGoldenRevocationURLs -update).
func TestGoldenRevocationURLs(t *testing.T) {
	caKey := deviceKey(t, sigalg.Ed25519, "golden CA")
	rootDER, err := selfSignedCA(fixedSerials(), caKey, "Hallmark", "Root CA", 1, testNow, defaultRootValidity)
	if err != nil {
		t.Fatal(err)
	}
	root := mustParsed(t, rootDER)
	req := DeviceRequest{Identity: testIdentity("golden"), PublicKey: deviceKey(t, sigalg.ECDSAP256, "golden device").Public(), Validity: 365 * 24 * time.Hour}
	tmpl, err := deviceTemplate(fixedSerials(), root, "Hallmark", req, testNow)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.revocation = revocationURLs{crl: testRevocationBase + "/crl/issuing-0011223344556677.crl",
		ocsp: testRevocationBase + "/ocsp", caIssuers: testRevocationBase + "/ca/issuing-0011223344556677.crt"}
	device, err := sign(tmpl, caKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyChain(device, nil, [][]byte{rootDER}, testNow, x509.ExtKeyUsageClientAuth); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "golden", "ed25519-issues-ecdsa-p256-revocation.pem")
	got := pemBytes(device)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs; review with openssl x509 -text and run go test -run TestGoldenRevocationURLs -update", path)
	}
	// The only difference from the golden certificate without URLs is
	// the two extensions, after the others.
	plain, err := os.ReadFile(filepath.Join("testdata", "golden", "ed25519-issues-ecdsa-p256.pem"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest := pem.Decode(plain)
	block, _ := pem.Decode(rest)
	if block == nil {
		t.Fatal("golden file without a device certificate")
	}
	without, with := mustParse(t, block.Bytes), mustParse(t, device)
	n := len(without.Extensions)
	if len(with.Extensions) != n+2 || !with.Extensions[n].Id.Equal(oidCRLDistributionPoints) || !with.Extensions[n+1].Id.Equal(oidAuthorityInfoAccess) {
		t.Fatalf("extensions %d, want %d + CDP + AIA", len(with.Extensions), n)
	}
	for i := range n {
		if !with.Extensions[i].Id.Equal(without.Extensions[i].Id) || !bytes.Equal(with.Extensions[i].Value, without.Extensions[i].Value) {
			t.Errorf("extension %d differs", i)
		}
	}
}
