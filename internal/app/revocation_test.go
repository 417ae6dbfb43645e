package app

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/pki"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

const testRevocationBase = "http://revocation.test:8080"

// TestRevocationServed: with a revocation listener, onboarded devices'
// certificates name the served CRL; revoking a device puts its serial in
// the CRL the listener serves, signed by the issuing CA (checked by OpenSSL
// for an ECDSA CA, by pki.VerifyCRL for ML-DSA), and the other device
// stays out of it.
func TestRevocationServed(t *testing.T) {
	t.Parallel()
	for _, caSuite := range []sigalg.ID{sigalg.ECDSAP256, sigalg.MLDSA65} {
		t.Run("ca-"+string(caSuite), func(t *testing.T) {
			ctx := context.Background()
			p, err := Start(ctx, Config{DataDir: newDataDir(t), Listen: "127.0.0.1:0", CASuite: caSuite,
				RevocationListen: "127.0.0.1:0", RevocationBaseURL: testRevocationBase + "/"})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { p.Close() })
			f := newFleet(t, sigalg.ECDSAP256, sigalg.Ed25519)
			admin := adminClient(t, p)
			f.register(t, admin)
			var leaves [][]byte
			for i, d := range f.devices {
				_, cert, err := onboard(t, p, d, f.ids[i])
				if err != nil {
					t.Fatal(err)
				}
				leaves = append(leaves, cert.Certificate[0])
			}
			leaf := mustParseCert(t, leaves[0])
			crlURL := testRevocationBase + pki.CRLPath + p.CA.CRLName() + ".crl"
			if len(leaf.CRLDistributionPoints) != 1 || leaf.CRLDistributionPoints[0] != crlURL ||
				len(leaf.OCSPServer) != 1 || leaf.OCSPServer[0] != testRevocationBase+pki.OCSPPath {
				t.Fatalf("device certificate: CDP %q, OCSP %q", leaf.CRLDistributionPoints, leaf.OCSPServer)
			}
			served := strings.Replace(crlURL, testRevocationBase, p.RevocationURL(), 1)
			if crl := fetchCRL(t, p, served); len(crl.Entries) != 0 {
				t.Fatalf("%d entries before any revocation", len(crl.Entries))
			}

			if _, err := admin.RevokeDevice(ctx, f.ids[0], "stolen"); err != nil {
				t.Fatal(err)
			}
			// The revocation itself tells the publisher (admin's
			// CertificatesChanged): the CRL changes long before the
			// publisher's own one-minute poll would notice.
			var crl *pki.CRL
			for deadline := time.Now().Add(20 * time.Second); crl == nil || len(crl.Entries) == 0; {
				if time.Now().After(deadline) {
					t.Fatal("the CRL still lists nothing 20 s after the revocation: was the publisher told?")
				}
				time.Sleep(10 * time.Millisecond)
				crl = fetchCRL(t, p, served)
			}
			entry, ok := crl.Lookup([16]byte(leaf.SerialNumber.FillBytes(make([]byte, 16))))
			if len(crl.Entries) != 1 || !ok || entry.Reason != pki.ReasonKeyCompromise {
				t.Fatalf("CRL after revoking one device: %+v", crl.Entries)
			}
			if caSuite == sigalg.ECDSAP256 {
				checkWithOpenSSL(t, p, served, leaves)
				checkOCSPWithOpenSSL(t, p, leaves)
			}
			checkOCSP(t, p, leaves)
		})
	}
}

// checkOCSP asks the served responder about both devices with the
// project's own client and verifier (every suite, ML-DSA included): the
// revoked one is revoked for key compromise, the other good, and the
// nonce is echoed.
func checkOCSP(t *testing.T, p *Platform, leaves [][]byte) {
	t.Helper()
	for i, want := range []pki.OCSPCertStatus{pki.OCSPRevoked, pki.OCSPGood} {
		leaf := mustParseCert(t, leaves[i])
		got := askOCSP(t, p, [16]byte(leaf.SerialNumber.FillBytes(make([]byte, 16))), []byte("nonce-"+strconv.Itoa(i)+"-0123456789"))
		if len(got.Responses) != 1 || got.Responses[0].Status != want ||
			(want == pki.OCSPRevoked && got.Responses[0].Reason != pki.ReasonKeyCompromise) {
			t.Fatalf("device %d: OCSP says %+v, want status %v", i, got.Responses, want)
		}
	}
}

// askOCSP POSTs a request about serial, with nonce, to the platform's
// responder and returns the answer, verified under the issuing CA with the
// project's own verifier (every suite) and echoing the nonce.
func askOCSP(t *testing.T, p *Platform, serial [16]byte, nonce []byte) *pki.OCSPResponse {
	t.Helper()
	req, err := pki.CreateOCSPRequest(p.CA.IssuingCertificate(), [][pki.SerialSize]byte{serial}, crypto.SHA256, nonce)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(p.RevocationURL()+pki.OCSPPath, "application/ocsp-request", bytes.NewReader(req))
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/ocsp-response" {
		t.Fatalf("POST %s: %s %q %v", pki.OCSPPath, resp.Status, resp.Header.Get("Content-Type"), err)
	}
	got, err := pki.VerifyOCSPResponse(body, p.CA.IssuingCertificate().Raw, time.Now(), nonce)
	if err != nil {
		t.Fatalf("served OCSP response: %v", err)
	}
	return got
}

// checkOCSPWithOpenSSL runs openssl ocsp against the served responder:
// "revoked" for the first leaf, "good" for the second, and the response
// verifies under the platform's root.
func checkOCSPWithOpenSSL(t *testing.T, p *Platform, leaves [][]byte) {
	t.Helper()
	dir := t.TempDir()
	files := map[string][]byte{
		"issuing.pem": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.CA.IssuingCertificate().Raw}),
		"root.pem":    pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.CA.RootCertificate().Raw}),
		"revoked.pem": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaves[0]}),
		"good.pem":    pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaves[1]}),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for file, want := range map[string]string{"revoked.pem": "revoked.pem: revoked", "good.pem": "good.pem: good"} {
		cmd := exec.CommandContext(t.Context(), "openssl", "ocsp", "-issuer", "issuing.pem", "-cert", file,
			"-url", p.RevocationURL()+pki.OCSPPath, "-CAfile", "root.pem")
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "Response verify OK") || !strings.Contains(string(out), want) {
			t.Errorf("openssl ocsp %s: %v\n%s", file, err, out)
		}
	}
}

func mustParseCert(t *testing.T, der []byte) *x509.Certificate {
	t.Helper()
	c, err := pki.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func getBody(t *testing.T, url string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// fetchCRL gets the CRL over plain HTTP and verifies it under the
// platform's issuing CA.
func fetchCRL(t *testing.T, p *Platform, url string) *pki.CRL {
	t.Helper()
	resp, body := getBody(t, url)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/pkix-crl" {
		t.Fatalf("GET %s: %s %q", url, resp.Status, resp.Header.Get("Content-Type"))
	}
	crl, err := pki.VerifyCRL(body, p.CA.IssuingCertificate())
	if err != nil {
		t.Fatalf("served CRL: %v", err)
	}
	if err := crl.CheckTime(time.Now()); err != nil {
		t.Fatalf("served CRL: %v", err)
	}
	return crl
}

// checkWithOpenSSL runs openssl verify -crl_check with the served CRL:
// the first (revoked) leaf is refused, the second accepted.
func checkWithOpenSSL(t *testing.T, p *Platform, url string, leaves [][]byte) {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Fatalf("openssl not found (%v): install the Debian package openssl", err)
	}
	_, der := getBody(t, url)
	dir := t.TempDir()
	files := map[string][]byte{
		"crl.pem":     pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}),
		"chain.pem":   p.CA.DeviceTrustPEM(),
		"revoked.pem": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaves[0]}),
		"good.pem":    pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaves[1]}),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	verify := func(file string) (string, error) {
		cmd := exec.CommandContext(t.Context(), "openssl", "verify", "-crl_check", "-CRLfile", "crl.pem", "-CAfile", "chain.pem", file)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := verify("revoked.pem"); err == nil || !strings.Contains(out, "certificate revoked") {
		t.Errorf("openssl verify of the revoked device: %v\n%s", err, out)
	}
	if out, err := verify("good.pem"); err != nil || !strings.Contains(out, "good.pem: OK") {
		t.Errorf("openssl verify of the other device: %v\n%s", err, out)
	}
}

// TestRevocationConfigRefused: the listener and the base URL go
// together, and the URL is http://; a refusal creates nothing.
func TestRevocationConfigRefused(t *testing.T) {
	t.Parallel()
	for name, cfg := range map[string]Config{
		"listener without URL": {RevocationListen: "127.0.0.1:0"},
		"URL without listener": {RevocationBaseURL: testRevocationBase},
		"https URL":            {RevocationListen: "127.0.0.1:0", RevocationBaseURL: "https://revocation.test"},
		"URL with a query":     {RevocationListen: "127.0.0.1:0", RevocationBaseURL: "http://revocation.test/?x=1"},
	} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			cfg.DataDir, cfg.Listen = dir, "127.0.0.1:0"
			if p, err := Start(context.Background(), cfg); err == nil {
				p.Close()
				t.Fatal("Start accepted it")
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Errorf("a refused configuration created the data directory: %v", err)
			}
		})
	}
}

// TestRevocationOffByDefault: without the options nothing listens and
// certificates carry no revocation URL.
func TestRevocationOffByDefault(t *testing.T) {
	t.Parallel()
	p := start(t, newDataDir(t), sigalg.ECDSAP256)
	if p.RevocationURL() != "" || p.CA.CRLURL() != "" {
		t.Errorf("revocation URL %q, CRL URL %q", p.RevocationURL(), p.CA.CRLURL())
	}
	p.NotifyRevocation() // harmless
}
