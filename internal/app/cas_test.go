package app

import (
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/httpapi"
	"github.com/hallmark-iot/hallmark/internal/onboarding"
	"github.com/hallmark-iot/hallmark/internal/pki"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// TestSeveralCAs: a platform with an ECDSA P-256 first CA and an
// ML-DSA-65 CA added by --ca-suites, and two products, one on each.
// Devices get certificates from their product's CA (issuer, signature
// algorithm, chain and trust bundle), authenticate with them in mutual
// TLS, renew under the same CA; the ECDSA product moved to the ML-DSA CA
// renews under it; a revocation appears on the right CRL and OCSP
// responder only; GET /v1/admin/cas lists both; a bad issuing CA changes
// nothing; and a restart without the flag keeps everything.
func TestSeveralCAs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := newDataDir(t)
	clock := &testClock{}
	cfg := Config{DataDir: dir, Listen: "127.0.0.1:0", ServerName: "localhost", CASuite: sigalg.ECDSAP256,
		CASuites: []sigalg.ID{sigalg.MLDSA65}, RevocationListen: "127.0.0.1:0", RevocationBaseURL: testRevocationBase, Now: clock.now}
	p, err := Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			p.Close()
		}
	})
	first := p.CA
	pq, err := p.CAs.Get("ml-dsa-65")
	if err != nil {
		t.Fatal(err)
	}
	admin := adminClient(t, p)

	cas, err := admin.ListCAs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(cas) != 2 || cas[0].Name != "ecdsa-p256" || !cas[0].First || cas[1].Name != "ml-dsa-65" || cas[1].First ||
		cas[1].Suite != "ml-dsa-65" || cas[1].Subject != "Hallmark ml-dsa-65 Issuing CA" || cas[1].CRLURL != pq.CRLURL() ||
		cas[1].OCSPURL != testRevocationBase+"/ocsp/ml-dsa-65" || cas[0].OCSPURL != testRevocationBase+pki.OCSPPath ||
		!cas[1].NotAfter.Equal(pq.IssuingCertificate().NotAfter) || cas[1].SKI == cas[0].SKI {
		t.Fatalf("GET /v1/admin/cas = %+v", cas)
	}

	// Product "meter" (first CA) and "pq-meter" (ML-DSA-65), a device each.
	ecFleet, pqFleet := newFleet(t, sigalg.ECDSAP256), newFleetBatch(t, "pq-batch", sigalg.ECDSAP256)
	ecFleet.register(t, admin)
	if _, err := admin.CreateStation(ctx, httpapi.StationRequest{Name: "line-2", PublicKey: string(pqFleet.stationPEM)}); err != nil {
		t.Fatal(err)
	}
	// A CA the platform lacks is refused, and no product is made.
	_, err = admin.CreateProduct(ctx, httpapi.ProductRequest{ID: "pq-meter", Name: "PQ meter", CertValidity: "720h",
		CloudEndpoint: "mqtts://broker.test:8883", IssuingCA: "ml-dsa-87"})
	if !isProblem(err, "malformed-request") || !strings.Contains(err.Error(), "issuing_ca") {
		t.Fatalf("product on a missing CA: %v", err)
	}
	if _, err := admin.GetProduct(ctx, "pq-meter"); !isProblem(err, "not-found") {
		t.Fatalf("refused product exists: %v", err)
	}
	prod, err := admin.CreateProduct(ctx, httpapi.ProductRequest{ID: "pq-meter", Name: "PQ meter", CertValidity: "720h",
		CloudEndpoint: "mqtts://broker.test:8883", IssuingCA: "ml-dsa-65"})
	if err != nil || prod.IssuingCA != "ml-dsa-65" {
		t.Fatalf("CreateProduct on ml-dsa-65: %+v, %v", prod, err)
	}
	if _, err := admin.ImportManifest(ctx, "pq-meter", bytes.NewReader(pqFleet.manifest)); err != nil {
		t.Fatal(err)
	}

	ecCreds, ecCert, err := onboard(t, p, ecFleet.devices[0], ecFleet.ids[0])
	if err != nil {
		t.Fatal(err)
	}
	pqCreds, pqCert, err := onboard(t, p, pqFleet.devices[0], pqFleet.ids[0])
	if err != nil {
		t.Fatal(err)
	}
	checkIssuedBy(t, "onboarded meter", ecCreds, first, p)
	checkIssuedBy(t, "onboarded pq-meter", pqCreds, pq, p)

	// Mutual TLS with either CA's certificate; renewal keeps the CA.
	for _, c := range []struct {
		name  string
		f     *fleet
		cert  *tls.Certificate
		ca    *pki.CA
		creds **onboarding.Credentials
	}{{"meter", ecFleet, ecCert, first, &ecCreds}, {"pq-meter", pqFleet, pqCert, pq, &pqCreds}} {
		mtls := deviceClient(p.URL(), tlsClient(p, c.cert))
		again, err := mtls.Credentials(ctx)
		if err != nil || again.CertificateChain[0] != (*c.creds).CertificateChain[0] || again.TrustBundle != (*c.creds).TrustBundle {
			t.Fatalf("%s: credentials over mutual TLS: %v", c.name, err)
		}
		op, _ := c.f.devices[0].OperationalKey(sigalg.ECDSAP256)
		renewed, err := mtls.RenewWithKey(ctx, c.f.ids[0], op)
		if err != nil {
			t.Fatalf("%s: renew: %v", c.name, err)
		}
		checkIssuedBy(t, c.name+" renewed", renewed, c.ca, p)
		*c.creds = renewed
	}
	ecCert, pqCert = chainCert(t, ecFleet, ecCreds), chainCert(t, pqFleet, pqCreds)

	// Moving "meter" to the ML-DSA CA: a bad name first changes nothing.
	bad := "nope"
	if _, err := admin.UpdateProduct(ctx, "meter", httpapi.ProductUpdateRequest{IssuingCA: &bad}); !isProblem(err, "malformed-request") {
		t.Fatalf("update to an unknown CA: %v", err)
	}
	if got, _ := admin.GetProduct(ctx, "meter"); got.IssuingCA != "" {
		t.Fatalf("refused update changed the product to %q", got.IssuingCA)
	}
	target := "ml-dsa-65"
	if got, err := admin.UpdateProduct(ctx, "meter", httpapi.ProductUpdateRequest{IssuingCA: &target}); err != nil || got.IssuingCA != target {
		t.Fatalf("move meter to ml-dsa-65: %+v, %v", got, err)
	}
	clock.advance(time.Minute) // past the onboarding service's product cache
	// Its certificate from the first CA stays valid until the renewal.
	mtls := deviceClient(p.URL(), tlsClient(p, ecCert))
	if _, err := mtls.Credentials(ctx); err != nil {
		t.Fatalf("meter's first-CA certificate after the move: %v", err)
	}
	op, _ := ecFleet.devices[0].OperationalKey(sigalg.ECDSAP256)
	moved, err := mtls.RenewWithKey(ctx, ecFleet.ids[0], op)
	if err != nil {
		t.Fatal(err)
	}
	checkIssuedBy(t, "meter renewed after the move", moved, pq, p)
	ecCert = chainCert(t, ecFleet, moved)
	if _, err := deviceClient(p.URL(), tlsClient(p, ecCert)).Credentials(ctx); err != nil {
		t.Fatalf("mutual TLS with the moved device's ML-DSA-CA certificate: %v", err)
	}

	// Revoking the pq-meter device: on the ML-DSA CA's CRL and OCSP, not
	// on the first CA's CRL. The moved device's superseded first-CA
	// certificate is on the first CA's CRL, not the other.
	pqLeaf := mustParseCert(t, pqCert.Certificate[0])
	if _, err := admin.RevokeDevice(ctx, pqFleet.ids[0], "key compromise"); err != nil {
		t.Fatal(err)
	}
	p.NotifyRevocation()
	pqCRL, firstCRL := waitCRL(t, p, pq, pqLeaf, true), fetchCRLOf(t, p, first)
	if _, listed := firstCRL.Lookup(serialOf(pqLeaf)); listed {
		t.Fatal("the ML-DSA CA's revoked certificate is on the first CA's CRL")
	}
	oldLeaf := mustParseCert(t, chainCert(t, ecFleet, ecCreds).Certificate[0])
	if _, listed := pqCRL.Lookup(serialOf(oldLeaf)); listed {
		t.Fatal("a first-CA certificate is on the ML-DSA CA's CRL")
	}
	if got := askOCSPOf(t, p, pq, serialOf(pqLeaf)); got.Responses[0].Status != pki.OCSPRevoked {
		t.Fatalf("OCSP of the ML-DSA CA: %+v, want revoked", got.Responses)
	}
	if got := askOCSPOf(t, p, pq, serialOf(mustParseCert(t, ecCert.Certificate[0]))); got.Responses[0].Status != pki.OCSPGood {
		t.Fatalf("OCSP of the moved device: %+v, want good", got.Responses)
	}

	// A restart without --ca-suites: both CAs, the product's CA, and the
	// moved device's ML-DSA-CA certificate in mutual TLS.
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	closed = true
	cfg.CASuites = nil
	p2, err := Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p2.Close() })
	if len(p2.CAs.All()) != 2 || !bytes.Equal(p2.CAs.All()[1].IssuingCertificate().Raw, pq.IssuingCertificate().Raw) ||
		!bytes.Equal(p2.CA.IssuingCertificate().Raw, first.IssuingCertificate().Raw) {
		t.Fatal("the CA set changed across a restart")
	}
	admin2 := adminClient(t, p2)
	if got, err := admin2.GetProduct(ctx, "meter"); err != nil || got.IssuingCA != "ml-dsa-65" {
		t.Fatalf("meter after restart: %+v, %v", got, err)
	}
	if cas, err := admin2.ListCAs(ctx); err != nil || len(cas) != 2 {
		t.Fatalf("CAs after restart: %v, %v", cas, err)
	}
	if _, err := deviceClient(p2.URL(), tlsClient(p2, ecCert)).Credentials(ctx); err != nil {
		t.Fatalf("mutual TLS after restart: %v", err)
	}
}

// checkIssuedBy checks credentials from the platform: a leaf issued by
// ca's issuing CA and signed with its suite, the chain that CA's, and the
// trust bundle its root then the platform's TLS anchor.
func checkIssuedBy(t *testing.T, what string, creds *onboarding.Credentials, ca *pki.CA, p *Platform) {
	t.Helper()
	var ders [][]byte
	for _, c := range creds.CertificateChain {
		b, _ := pem.Decode([]byte(c))
		ders = append(ders, b.Bytes)
	}
	leaf := mustParseCert(t, ders[0])
	if !bytes.Equal(leaf.RawIssuer, ca.IssuingCertificate().RawSubject) || !bytes.Equal(leaf.AuthorityKeyId, ca.IssuingCertificate().SubjectKeyId) {
		t.Fatalf("%s: issued by %s, want %s", what, leaf.Issuer, ca.IssuingCertificate().Subject)
	}
	want := map[sigalg.ID]x509.SignatureAlgorithm{sigalg.ECDSAP256: x509.ECDSAWithSHA256,
		sigalg.MLDSA65: x509.UnknownSignatureAlgorithm}[ca.Suite()] // crypto/x509 does not know ML-DSA
	if leaf.SignatureAlgorithm != want {
		t.Fatalf("%s: signature algorithm %v", what, leaf.SignatureAlgorithm)
	}
	chain := ca.Chain()
	if len(ders) != 2 || !bytes.Equal(ders[1], chain[0]) {
		t.Fatalf("%s: chain is not the CA's", what)
	}
	if _, err := pki.VerifyChain(ders[0], chain[:1], chain[1:], time.Now(), x509.ExtKeyUsageClientAuth); err != nil {
		t.Fatalf("%s: chain does not verify under its CA: %v", what, err)
	}
	if !bytes.Equal([]byte(creds.TrustBundle), p.CAs.TrustBundle(ca)) {
		t.Fatalf("%s: trust bundle is not its CA's", what)
	}
	// The bundle anchors the platform's TLS whatever the CA.
	roots, err := pki.ParseTrustBundle([]byte(creds.TrustBundle))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Transport: &http.Transport{TLSClientConfig: pki.ClientTLSConfig(roots, nil)}}).Get(p.URL() + "/readyz")
	if err != nil {
		t.Fatalf("%s: the trust bundle does not verify the platform: %v", what, err)
	}
	resp.Body.Close()
}

// chainCert is the device's TLS certificate from its credentials.
func chainCert(t *testing.T, f *fleet, creds *onboarding.Credentials) *tls.Certificate {
	t.Helper()
	op, err := f.devices[0].OperationalKey(sigalg.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	cert := &tls.Certificate{PrivateKey: op}
	for _, c := range creds.CertificateChain {
		b, _ := pem.Decode([]byte(c))
		cert.Certificate = append(cert.Certificate, b.Bytes)
	}
	return cert
}

func serialOf(c *x509.Certificate) (s [pki.SerialSize]byte) {
	c.SerialNumber.FillBytes(s[:])
	return s
}

// fetchCRLOf gets ca's CRL from the listener and verifies it under ca.
func fetchCRLOf(t *testing.T, p *Platform, ca *pki.CA) *pki.CRL {
	t.Helper()
	url := p.RevocationURL() + pki.CRLPath + ca.CRLName() + ".crl"
	resp, body := getBody(t, url)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	crl, err := pki.VerifyCRL(body, ca.IssuingCertificate())
	if err != nil {
		t.Fatalf("CRL of %s: %v", ca.Name(), err)
	}
	return crl
}

// waitCRL fetches ca's CRL until leaf's listing is want (the publisher
// regenerates in the background).
func waitCRL(t *testing.T, p *Platform, ca *pki.CA, leaf *x509.Certificate, want bool) *pki.CRL {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; {
		crl := fetchCRLOf(t, p, ca)
		if _, listed := crl.Lookup(serialOf(leaf)); listed == want {
			return crl
		}
		if time.Now().After(deadline) {
			t.Fatalf("CRL of %s: serial listed %v, want %v", ca.Name(), !want, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// askOCSPOf asks ca's responder, at its own URL, about serial.
func askOCSPOf(t *testing.T, p *Platform, ca *pki.CA, serial [16]byte) *pki.OCSPResponse {
	t.Helper()
	req, err := pki.CreateOCSPRequest(ca.IssuingCertificate(), [][pki.SerialSize]byte{serial}, crypto.SHA256, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(p.RevocationURL()+ca.OCSPPath(), "application/ocsp-request", bytes.NewReader(req))
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: %s %v", ca.OCSPPath(), resp.Status, err)
	}
	got, err := pki.VerifyOCSPResponse(body, ca.IssuingCertificate().Raw, time.Now(), nil)
	if err != nil || len(got.Responses) != 1 {
		t.Fatalf("OCSP of %s: %v", ca.Name(), err)
	}
	return got
}

// TestCASuitesRefused: a further CA suite the platform does not offer, or
// one named twice, stops the start before anything is created.
func TestCASuitesRefused(t *testing.T) {
	t.Parallel()
	for _, suites := range [][]sigalg.ID{{sigalg.Ed25519}, {sigalg.MLDSA65, "ML-DSA-65"}, {"rsa-2048"}} {
		dir := t.TempDir()
		_, err := Start(context.Background(), Config{DataDir: dir, Listen: "127.0.0.1:0", CASuites: suites})
		if err == nil {
			t.Fatalf("CASuites %v accepted", suites)
		}
		if _, statErr := os.Stat(filepath.Join(dir, CADir)); !errors.Is(statErr, os.ErrNotExist) {
			t.Fatalf("CASuites %v: refused (%v) after creating a CA", suites, err)
		}
	}
}
