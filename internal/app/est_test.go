package app

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/est"
	"github.com/hallmark-iot/hallmark/internal/httpapi"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/manifest"
	"github.com/hallmark-iot/hallmark/internal/onboarding"
	"github.com/hallmark-iot/hallmark/internal/pki"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// estDevice is a device as EST sees it: an enrolment key whose
// self-signed certificate authenticates its TLS handshakes.
type estDevice struct {
	id   identity.ID
	key  crypto.Signer
	cert tls.Certificate
}

// estFleet registers a manifest of devices with the enrolment keys keys
// (ECDSA P-256 or Ed25519) on p, as a station would have recorded them.
func estFleet(t testing.TB, p *Platform, keys ...crypto.Signer) []*estDevice {
	t.Helper()
	return registerKeys(t, adminClient(t, p), keys...)
}

// registerKeys registers devices with the enrolment keys keys through
// admin, as estFleet does.
func registerKeys(t testing.TB, admin *httpapi.Client, keys ...crypto.Signer) []*estDevice {
	t.Helper()
	ed, _ := sigalg.Lookup("ed25519")
	stationKey, _ := ed.GenerateKey(rand.Reader)
	f := &fleet{}
	f.stationPEM, _ = sigalg.EncodePublicKeyPEM(stationKey.Public())
	var buf bytes.Buffer
	w, err := manifest.NewWriter(&buf, manifest.Header{Batch: "est-batch"}, stationKey)
	if err != nil {
		t.Fatal(err)
	}
	var devs []*estDevice
	for _, key := range keys {
		spki, err := sigalg.MarshalPublicKey(key.Public())
		if err != nil {
			t.Fatal(err)
		}
		_, suite, err := sigalg.ParsePublicKeyWithSuite(spki)
		if err != nil {
			t.Fatal(err)
		}
		id := identity.FromSPKI(spki)
		nonce := make([]byte, 32)
		rand.Read(nonce)
		proof, err := suite.Sign(key, identity.ProofMessage(identity.FactoryProofContext, nonce, id))
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Add(context.Background(), manifest.Record{Identity: id, Algorithm: suite.ID(), SPKI: spki,
			RootOfTrust: manifest.Keygen, Injection: manifest.NotInjected, Time: time.Now(), Nonce: nonce, Proof: proof}); err != nil {
			t.Fatal(err)
		}
		dev := &estDevice{id: id, key: key}
		if strings.HasPrefix(string(suite.ID()), "ml-dsa") {
			// Go's x509 cannot sign with ML-DSA: a CMP client's
			// certificate for the key (CMP reads only the key).
			dev.cert = tls.Certificate{Certificate: [][]byte{cmpBareCertificate(t, key)}, PrivateKey: key}
		} else {
			dev.cert = estSelfSigned(t, key)
		}
		devs = append(devs, dev)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f.manifest = buf.Bytes()
	f.register(t, admin)
	return devs
}

func estSelfSigned(t testing.TB, key crypto.Signer) tls.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "enrolment key"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func estP256(t testing.TB) crypto.Signer {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// estConn is one TLS connection to the platform, so that a request can be
// bound to it as an EST client binds it.
type estConn struct {
	conn *tls.Conn
	r    *bufio.Reader
	host string
}

func dialEST(t testing.TB, p *Platform, cert *tls.Certificate) *estConn {
	t.Helper()
	u, _ := url.Parse(p.URL())
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(p.CA.RootPEM())
	cfg := &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: roots, ServerName: "localhost"}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	conn, err := tls.Dial("tcp", u.Host, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &estConn{conn: conn, r: bufio.NewReader(conn), host: u.Host}
}

// binding is the challengePassword this connection's requests carry.
func (c *estConn) binding(t testing.TB) string {
	t.Helper()
	st := c.conn.ConnectionState()
	ekm, err := st.ExportKeyingMaterial(onboarding.ChannelBindingLabel, nil, onboarding.ChannelBindingSize)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(ekm)
}

func (c *estConn) do(t testing.TB, method, path, contentType string, body []byte) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, "https://"+c.host+path, bytes.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if err := req.Write(c.conn); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(c.r, req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// estCSR is the base64 PKCS #10 request of op naming cn, bound by
// challengePassword pw.
func estCSR(t testing.TB, op crypto.Signer, cn, pw string) []byte {
	t.Helper()
	der, err := pki.CreateCSRWith(op, pki.CSROptions{CommonName: cn, ChallengePassword: pw})
	if err != nil {
		t.Fatal(err)
	}
	return []byte(base64.StdEncoding.EncodeToString(der))
}

// estCertsOf decodes an EST certs-only answer.
func estCertsOf(t testing.TB, body []byte) [][]byte {
	t.Helper()
	der, err := base64.StdEncoding.DecodeString(strings.NewReplacer("\r", "", "\n", "").Replace(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	certs, err := est.ParseCertsOnly(der)
	if err != nil {
		t.Fatal(err)
	}
	return certs
}

// estCertificatesOf is how many certificates the registry holds for id.
func estCertificatesOf(t testing.TB, p *Platform, id identity.ID) (int, string) {
	t.Helper()
	d, err := adminClient(t, p).GetDevice(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return len(d.Certificates), d.State
}

// estEnrol enrols dev over EST with a new operational key and returns
// the key and the TLS certificate of the chain issued for it.
func estEnrol(t testing.TB, p *Platform, dev *estDevice, path string) (crypto.Signer, *tls.Certificate) {
	t.Helper()
	c := dialEST(t, p, &dev.cert)
	op := estP256(t)
	status, h, body := c.do(t, "POST", path, est.MediaPKCS10, estCSR(t, op, dev.id.String(), c.binding(t)))
	if status != http.StatusOK {
		t.Fatalf("simpleenroll: %d %s", status, body)
	}
	if ct := h.Get("Content-Type"); ct != est.MediaCerts || h.Get("Content-Transfer-Encoding") != "base64" {
		t.Fatalf("simpleenroll answered %q, %q", ct, h.Get("Content-Transfer-Encoding"))
	}
	chain := estCertsOf(t, body)
	return op, &tls.Certificate{Certificate: chain, PrivateKey: op}
}

func TestESTEnrolAndReenrol(t *testing.T) {
	t.Parallel()
	p, err := Start(context.Background(), Config{DataDir: newDataDir(t), Listen: "127.0.0.1:0", ServerName: "localhost", CASuite: sigalg.ECDSAP256})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	devs := estFleet(t, p, estP256(t), edKey)

	// cacerts and csrattrs need no client certificate.
	c := dialEST(t, p, nil)
	status, h, body := c.do(t, "GET", "/.well-known/est/cacerts", "", nil)
	if status != http.StatusOK || h.Get("Content-Type") != est.MediaCACerts {
		t.Fatalf("cacerts: %d %q %s", status, h.Get("Content-Type"), body)
	}
	cas := estCertsOf(t, body)
	if !bytes.Equal(cas[len(cas)-1], p.CA.RootCertificate().Raw) {
		t.Error("cacerts does not end with the platform's root")
	}
	if status, _, body = c.do(t, "GET", "/.well-known/est/csrattrs", "", nil); status != http.StatusOK || len(body) == 0 {
		t.Fatalf("csrattrs: %d %s", status, body)
	}
	if status, _, body = c.do(t, "GET", "/openapi.json", "", nil); status != http.StatusOK || !bytes.Contains(body, []byte(`"/.well-known/est/{label}/simplereenroll"`)) {
		t.Fatalf("the OpenAPI document lacks the EST routes: %d", status)
	}

	for i, dev := range devs {
		path := "/.well-known/est/simpleenroll"
		if i == 1 {
			path = "/.well-known/est/meter/simpleenroll" // the product's label
		}
		op, opCert := estEnrol(t, p, dev, path)
		leaf, err := x509.ParseCertificate(opCert.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		if _, id, err := p.CAs.VerifyDevice(opCert.Certificate, time.Now()); err != nil || id != dev.id {
			t.Fatalf("issued chain: identity %s, %v", id, err)
		}
		if spki, _ := sigalg.MarshalPublicKey(op.Public()); !bytes.Equal(leaf.RawSubjectPublicKeyInfo, spki) {
			t.Error("the certificate is not for the operational key of the request")
		}
		if n, state := estCertificatesOf(t, p, dev.id); n != 1 || state != "onboarded" {
			t.Fatalf("after enrolment: %d certificates, %s", n, state)
		}
		// The operational certificate works on the native device routes,
		// which hand out the cloud endpoint.
		resp, err := tlsClient(p, opCert).Get(p.URL() + "/v1/device/credentials")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "mqtts://broker.test:8883") {
			t.Fatalf("credentials with the EST certificate: %d %s", resp.StatusCode, b)
		}
		// Re-enrolment over mutual TLS with it, for a new key; under
		// another product's label it is refused and issues nothing.
		rc := dialEST(t, p, opCert)
		op2 := estP256(t)
		if status, _, body := rc.do(t, "POST", "/.well-known/est/thermostat/simplereenroll", est.MediaPKCS10, estCSR(t, op2, dev.id.String(), rc.binding(t))); status != http.StatusForbidden || !strings.Contains(string(body), "not of product") {
			t.Fatalf("simplereenroll under another product's label: %d %s", status, body)
		}
		if n, _ := estCertificatesOf(t, p, dev.id); n != 1 {
			t.Fatalf("after a refused re-enrolment: %d certificates", n)
		}
		status, _, body := rc.do(t, "POST", "/.well-known/est/simplereenroll", est.MediaPKCS10, estCSR(t, op2, dev.id.String(), rc.binding(t)))
		if status != http.StatusOK {
			t.Fatalf("simplereenroll: %d %s", status, body)
		}
		if _, id, err := p.CAs.VerifyDevice(estCertsOf(t, body), time.Now()); err != nil || id != dev.id {
			t.Fatalf("re-issued chain: %s, %v", id, err)
		}
		if n, _ := estCertificatesOf(t, p, dev.id); n != 2 {
			t.Fatalf("after re-enrolment: %d certificates", n)
		}
	}
}

// TestESTRefusals: each attempt is refused with one line of text and
// nothing is issued.
func TestESTRefusals(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p, err := Start(ctx, Config{DataDir: newDataDir(t), Listen: "127.0.0.1:0", ServerName: "localhost", CASuite: sigalg.ECDSAP256})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	devs := estFleet(t, p, estP256(t), estP256(t), estP256(t), estP256(t))
	victim, suspended, revoked, other := devs[0], devs[1], devs[2], devs[3]
	admin := adminClient(t, p)
	estEnrol(t, p, suspended, "/.well-known/est/simpleenroll") // only an onboarded device can be suspended
	if _, err := admin.TransitionDevice(ctx, suspended.id, "suspend", "quarantine"); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.RevokeDevice(ctx, revoked.id, "stolen"); err != nil {
		t.Fatal(err)
	}
	const enrol = "/.well-known/est/simpleenroll"
	stranger := &estDevice{key: estP256(t)}
	stranger.cert = estSelfSigned(t, stranger.key)

	type attempt struct {
		name   string
		cert   *tls.Certificate
		path   string
		ctype  string
		body   func(c *estConn) []byte
		status int
		says   string
	}
	bound := func(dev *estDevice, cn string) func(c *estConn) []byte {
		return func(c *estConn) []byte { return estCSR(t, estP256(t), cn, c.binding(t)) }
	}
	// A request the victim bound to a connection of its own, which an
	// attacker lifts and replays on the victim's identity's next
	// connection (or the victim's own retry).
	lifted := func() []byte {
		c := dialEST(t, p, &victim.cert)
		return estCSR(t, estP256(t), victim.id.String(), c.binding(t))
	}()
	valid := bound(victim, victim.id.String())
	for _, a := range []attempt{
		{"request from another session", &victim.cert, enrol, est.MediaPKCS10, func(*estConn) []byte { return lifted }, 400, "bound to another exchange"},
		{"request without binding", &victim.cert, enrol, est.MediaPKCS10, func(*estConn) []byte { return estCSR(t, estP256(t), victim.id.String(), "") }, 400, "no binding"},
		{"request naming another device", &other.cert, enrol, est.MediaPKCS10, bound(other, victim.id.String()), 400, "common name"},
		{"request for the enrolment key itself", &victim.cert, enrol, est.MediaPKCS10, func(c *estConn) []byte { return estCSR(t, victim.key, victim.id.String(), c.binding(t)) }, 400, "new operational key"},
		{"unregistered key", &stranger.cert, enrol, est.MediaPKCS10, bound(stranger, victim.id.String()), 403, "not a registered"},
		{"suspended device", &suspended.cert, enrol, est.MediaPKCS10, bound(suspended, suspended.id.String()), 403, "suspended"},
		{"revoked device", &revoked.cert, enrol, est.MediaPKCS10, bound(revoked, revoked.id.String()), 403, "revoked"},
		{"label of another product", &victim.cert, "/.well-known/est/thermostat/simpleenroll", est.MediaPKCS10, valid, 403, "not a registered"},
		{"no client certificate", nil, enrol, est.MediaPKCS10, valid, 401, "native protocol"},
		{"wrong content type", &victim.cert, enrol, "application/json", valid, 415, "application/pkcs10"},
		{"oversized body", &victim.cert, enrol, est.MediaPKCS10, func(*estConn) []byte { return bytes.Repeat([]byte("A"), est.MaxBody+1) }, 413, "exceeds"},
		{"truncated body", &victim.cert, enrol, est.MediaPKCS10, func(c *estConn) []byte { b := valid(c); return b[:len(b)/2] }, 400, "malformed"},
		{"malformed body", &victim.cert, enrol, est.MediaPKCS10, func(*estConn) []byte { return []byte("not base64 at all!") }, 400, "not base64"},
		{"PKCS #10 signature broken", &victim.cert, enrol, est.MediaPKCS10, func(c *estConn) []byte {
			der, _ := base64.StdEncoding.DecodeString(string(valid(c)))
			der[len(der)-3] ^= 1
			return []byte(base64.StdEncoding.EncodeToString(der))
		}, 400, "refused"},
		{"enrolment certificate on simplereenroll", &victim.cert, "/.well-known/est/simplereenroll", est.MediaPKCS10, valid, 403, "not-onboarded"},
	} {
		t.Run(a.name, func(t *testing.T) {
			c := dialEST(t, p, a.cert)
			status, h, body := c.do(t, "POST", a.path, a.ctype, a.body(c))
			if status != a.status || !strings.Contains(string(body), a.says) {
				t.Errorf("answered %d %q, want %d saying %q", status, body, a.status, a.says)
			}
			if !strings.HasPrefix(h.Get("Content-Type"), "text/plain") || strings.Count(string(body), "\n") != 1 {
				t.Errorf("not one line of text: %q %q", h.Get("Content-Type"), body)
			}
		})
	}
	for _, dev := range devs {
		want := 0
		if dev == suspended {
			want = 1 // before it was suspended
		}
		if n, _ := estCertificatesOf(t, p, dev.id); n != want {
			t.Errorf("device %s holds %d certificates, want %d", dev.id, n, want)
		}
	}
	// Counted as the native door counts refused proofs.
	resp, err := admin.HTTP.Get(p.URL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for outcome, n := range map[string]int{"bad-csr": 5, "proof-rejected": 2, "suspended": 1, "revoked": 1, "ok": 1} {
		line := fmt.Sprintf("hallmark_onboarding_step_seconds_count{outcome=%q,step=\"proof\"} %d\n", outcome, n)
		if !bytes.Contains(metrics, []byte(line)) {
			t.Errorf("/metrics lacks %q", line)
		}
	}
	// After all that the victim still enrols, on its own connection.
	estEnrol(t, p, victim, enrol)
}

// BenchmarkESTEnrolment is BenchmarkOnboarding's https case through the
// EST door: each enrolment is one new TLS connection authenticated by the
// enrolment key (the proof), one bound request, the chain back.
func BenchmarkESTEnrolment(b *testing.B) {
	p := startBench(b)
	const pool = 64
	keys := make([]crypto.Signer, pool)
	ops := make([]crypto.Signer, pool)
	for i := range keys {
		keys[i], ops[i] = estP256(b), estP256(b)
	}
	devs := estFleet(b, p, keys...)
	u, _ := url.Parse(p.URL())
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(p.CA.RootPEM())
	var next atomic.Int64
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := int(next.Add(1)) % pool
			if err := estEnrolOnce(u.Host, roots, devs[i], ops[i]); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "enrolments/s")
}

// estEnrolOnce is one EST enrolment of dev for op, without testing.TB so
// that benchmark goroutines can run it.
func estEnrolOnce(host string, roots *x509.CertPool, dev *estDevice, op crypto.Signer) error {
	conn, err := tls.Dial("tcp", host, &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: roots, ServerName: "localhost",
		Certificates: []tls.Certificate{dev.cert}})
	if err != nil {
		return err
	}
	defer conn.Close()
	st := conn.ConnectionState()
	ekm, err := st.ExportKeyingMaterial(onboarding.ChannelBindingLabel, nil, onboarding.ChannelBindingSize)
	if err != nil {
		return err
	}
	der, err := pki.CreateCSRWith(op, pki.CSROptions{CommonName: dev.id.String(), ChallengePassword: base64.StdEncoding.EncodeToString(ekm)})
	if err != nil {
		return err
	}
	req, _ := http.NewRequest("POST", "https://"+host+"/.well-known/est/simpleenroll", strings.NewReader(base64.StdEncoding.EncodeToString(der)))
	req.Header.Set("Content-Type", est.MediaPKCS10)
	if err := req.Write(conn); err != nil {
		return err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("simpleenroll: %d %s", resp.StatusCode, body)
	}
	return nil
}
