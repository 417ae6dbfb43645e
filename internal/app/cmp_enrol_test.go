package app

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/cmp"
	"github.com/hallmark-iot/hallmark/internal/httpapi"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/pki"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store/postgres/pgtest"
)

// cmpKey makes a P-256 key with openssl and, if cert, its self-signed
// certificate; it returns the key as the platform reads it.
func cmpKey(t *testing.T, dir, name string, cert bool) crypto.Signer {
	t.Helper()
	if out, ok := cmpOpenSSL(t, dir, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", name+".key"); !ok {
		t.Fatalf("genpkey: %s", out)
	}
	if cert {
		if out, ok := cmpOpenSSL(t, dir, "req", "-x509", "-new", "-key", name+".key", "-subj", "/CN="+name, "-days", "1", "-out", name+".crt"); !ok {
			t.Fatalf("self-signed certificate: %s", out)
		}
	}
	pemKey, err := os.ReadFile(filepath.Join(dir, name+".key"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := sigalg.ParsePrivateKeyPEM(pemKey)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// cmpRegister registers the enrolment keys as a station would, in a
// signed manifest of product "meter", and returns their identities.
func cmpRegister(t *testing.T, admin *httpapi.Client, keys ...crypto.Signer) []identity.ID {
	t.Helper()
	var ids []identity.ID
	for _, d := range registerKeys(t, admin, keys...) {
		ids = append(ids, d.id)
	}
	return ids
}

// TestCMPEnrolmentOpenSSL onboards, renews and confirms over the CMP
// door of a running platform with OpenSSL's CMP client, revokes the
// device's certificate at its own request (rr), and checks the attacks
// on it: a replayed request, protection by the wrong key, an unregistered
// identity, another product's label, another device's certificate, a
// revoked certificate used again.
func TestCMPEnrolmentOpenSSL(t *testing.T) {
	t.Parallel()
	p := start(t, newDataDir(t), sigalg.ECDSAP256)
	admin := adminClient(t, p)
	ctx := context.Background()
	dir := cmpDir(t, p)
	ids := cmpRegister(t, admin, cmpKey(t, dir, "enrolment", true), cmpKey(t, dir, "enrolment2", true))
	cmpKey(t, dir, "operational", false)
	cmpKey(t, dir, "operational2", false)
	cmpKey(t, dir, "operational3", false)
	cmpKey(t, dir, "stranger", true)
	run := func(args ...string) (string, bool) {
		return cmpOpenSSL(t, dir, append(cmpServer(p, cmp.Path), args...)...)
	}
	exists := func(name string) bool { _, err := os.Stat(filepath.Join(dir, name)); return err == nil }

	// An unregistered key, and a registered identity's certificate
	// with another key's protection: refused, nothing issued.
	out, ok := run("-cmd", "ir", "-key", "stranger.key", "-cert", "stranger.crt", "-extracerts", "stranger.crt",
		"-newkey", "operational.key", "-subject", "/CN=device", "-certout", "stranger.pem")
	if ok || !strings.Contains(out, "signerNotTrusted") || exists("stranger.pem") {
		t.Fatalf("ir by an unregistered key: ok=%v\n%s", ok, out)
	}
	out, ok = run("-cmd", "ir", "-key", "stranger.key", "-cert", "stranger.crt", "-extracerts", "enrolment.crt",
		"-newkey", "operational.key", "-subject", "/CN=device", "-certout", "forged.pem")
	if ok || !strings.Contains(out, "badMessageCheck") || exists("forged.pem") {
		t.Fatalf("ir protected by another key: ok=%v\n%s", ok, out)
	}
	if dev, err := admin.GetDevice(ctx, ids[0]); err != nil || dev.State != "registered" {
		t.Fatalf("device after refused requests: %+v, %v", dev, err)
	}

	// ir, with certConf and pkiConf; the request is kept to replay.
	out, ok = run("-cmd", "ir", "-key", "enrolment.key", "-cert", "enrolment.crt", "-extracerts", "enrolment.crt",
		"-newkey", "operational.key", "-subject", "/CN=device", "-certout", "device.pem", "-chainout", "chain.pem",
		"-reqout", "ir.der,certconf.der")
	if !ok || !strings.Contains(out, "received PKICONF") {
		t.Fatalf("ir: %s", out)
	}
	if out, ok := cmpOpenSSL(t, dir, "verify", "-CAfile", "ca.pem", "-untrusted", "chain.pem", "device.pem"); !ok {
		t.Fatalf("verify the issued chain: %s", out)
	}
	if dev, err := admin.GetDevice(ctx, ids[0]); err != nil || dev.State != "onboarded" {
		t.Fatalf("device after ir: %+v, %v", dev, err)
	}

	// The same ir again: its transactionID is in use.
	for _, name := range []string{"ir.der", "certconf.der"} {
		der, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if bit := cmpPost(t, p, der); bit != cmp.FailTransactionIDInUse && bit != cmp.FailBadRequest && bit != cmp.FailBadRecipientNonce {
			t.Fatalf("replayed %s: failInfo bit %d", name, bit)
		}
	}

	// p10cr with implicit confirmation, protected by the second
	// device's enrolment key.
	if out, ok := cmpOpenSSL(t, dir, "req", "-new", "-key", "operational2.key", "-subj", "/CN=device2", "-out", "op2.csr"); !ok {
		t.Fatal(out)
	}
	out, ok = run("-cmd", "p10cr", "-key", "enrolment2.key", "-cert", "enrolment2.crt", "-extracerts", "enrolment2.crt",
		"-csr", "op2.csr", "-implicit_confirm", "-certout", "device2.pem", "-chainout", "chain2.pem")
	if !ok || strings.Contains(out, "sending CERTCONF") {
		t.Fatalf("p10cr with implicit confirmation: %s", out)
	}
	if out, ok := cmpOpenSSL(t, dir, "verify", "-CAfile", "ca.pem", "-untrusted", "chain2.pem", "device2.pem"); !ok {
		t.Fatalf("verify the p10cr chain: %s", out)
	}

	// kur, protected by the current operational certificate.
	out, ok = run("-cmd", "kur", "-key", "operational.key", "-cert", "device.pem", "-newkey", "operational3.key",
		"-certout", "renewed.pem", "-chainout", "chain3.pem")
	if !ok || !strings.Contains(out, "received PKICONF") {
		t.Fatalf("kur: %s", out)
	}
	if out, ok := cmpOpenSSL(t, dir, "verify", "-CAfile", "ca.pem", "-untrusted", "chain3.pem", "renewed.pem"); !ok {
		t.Fatalf("verify the renewed chain: %s", out)
	}
	// kur by a certificate this platform did not issue.
	out, ok = run("-cmd", "kur", "-key", "stranger.key", "-cert", "stranger.crt", "-extracerts", "stranger.crt",
		"-newkey", "operational3.key", "-certout", "nope.pem")
	if ok || !strings.Contains(out, "signerNotTrusted") || exists("nope.pem") {
		t.Fatalf("kur by a foreign certificate: ok=%v\n%s", ok, out)
	}

	// Under another product's label: refused, nothing issued.
	out, ok = cmpOpenSSL(t, dir, append(cmpServer(p, "/.well-known/cmp/p/thermostat"), "-cmd", "kur", "-key", "operational3.key",
		"-cert", "renewed.pem", "-newkey", "operational.key", "-certout", "elsewhere.pem")...)
	if ok || !strings.Contains(out, "notAuthorized") || exists("elsewhere.pem") {
		t.Fatalf("kur under another product's label: ok=%v\n%s", ok, out)
	}

	// rr: a device may revoke only the certificate that protects the
	// request, not another device's.
	out, ok = run("-cmd", "rr", "-key", "operational3.key", "-cert", "renewed.pem", "-oldcert", "device2.pem", "-revreason", "1")
	if ok || !strings.Contains(out, "notAuthorized") {
		t.Fatalf("rr of another device's certificate: ok=%v\n%s", ok, out)
	}
	certOf := func(id identity.ID, pemFile string) httpapi.Certificate {
		t.Helper()
		dev, err := admin.GetDevice(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		serial := cmpSerial(t, dir, pemFile)
		for _, c := range dev.Certificates {
			if c.Serial == serial {
				return c
			}
		}
		t.Fatalf("certificate %s of %s not in the registry: %+v", serial, id, dev.Certificates)
		return httpapi.Certificate{}
	}
	if c := certOf(ids[1], "device2.pem"); c.RevokedAt != nil {
		t.Fatalf("the other device's certificate after a refused rr: %+v", c)
	}
	out, ok = run("-cmd", "rr", "-key", "operational3.key", "-cert", "renewed.pem", "-oldcert", "renewed.pem", "-revreason", "1")
	if !ok || !strings.Contains(out, "received RP") {
		t.Fatalf("rr: ok=%v\n%s", ok, out)
	}
	if c := certOf(ids[0], "renewed.pem"); c.RevokedAt == nil || c.RevocationReason != "key-compromise" {
		t.Fatalf("certificate after rr: %+v, want revoked for key-compromise", c)
	}
	if dev, err := admin.GetDevice(ctx, ids[0]); err != nil || dev.State != "onboarded" {
		t.Fatalf("device after revoking its own certificate: %+v, %v; want onboarded still", dev, err)
	}
	// The revoked certificate authenticates nothing more: neither a
	// second rr nor a kur.
	out, ok = run("-cmd", "kur", "-key", "operational3.key", "-cert", "renewed.pem", "-newkey", "operational.key", "-certout", "after-rr.pem")
	if ok || !strings.Contains(out, "notAuthorized") || exists("after-rr.pem") {
		t.Fatalf("kur with a revoked certificate: ok=%v\n%s", ok, out)
	}
	// The device enrols again with its enrolment key, as a device with
	// no usable certificate does.
	cmpKey(t, dir, "operational4", false)
	out, ok = run("-cmd", "ir", "-key", "enrolment.key", "-cert", "enrolment.crt", "-extracerts", "enrolment.crt",
		"-newkey", "operational4.key", "-subject", "/CN=device", "-certout", "again.pem", "-implicit_confirm")
	if !ok || !exists("again.pem") {
		t.Fatalf("ir after rr: ok=%v\n%s", ok, out)
	}
	events, err := admin.ListAudit(ctx, httpapi.AuditQuery{Action: "device.revoke-certificate"})
	if err != nil {
		t.Fatal(err)
	}
	var okEvents int
	for _, e := range events.Events {
		if e.Outcome == "ok" && strings.HasSuffix(e.Subject, ids[0].String()) && e.Detail == "key-compromise" {
			okEvents++
		}
	}
	if okEvents != 1 {
		t.Fatalf("audit events of the holder's revocation: %+v, want one ok for %s", events, ids[0])
	}
}

// cmpSerial is the serial of the certificate in pemFile, as the admin API
// writes it (32 hex digits).
func cmpSerial(t *testing.T, dir, pemFile string) string {
	t.Helper()
	out, ok := cmpOpenSSL(t, dir, "x509", "-in", pemFile, "-noout", "-serial")
	if !ok {
		t.Fatalf("serial of %s: %s", pemFile, out)
	}
	hex := strings.ToLower(strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(out), "serial=")))
	return strings.Repeat("0", max(0, 32-len(hex))) + hex
}

// cmpPost posts der to p's door and returns the failInfo bit of the
// error it answers, -1 for an answer that is not an error.
func cmpPost(t *testing.T, p *Platform, der []byte) int {
	t.Helper()
	resp, err := tlsClient(p, nil).Post(p.URL()+cmp.Path, cmp.ContentType, bytes.NewReader(der))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body bytes.Buffer
	body.ReadFrom(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %s", resp.Status)
	}
	m, err := cmp.Parse(body.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if m.Type() != cmp.TypeError {
		return -1
	}
	c, _ := m.Content()
	var e cmp.ErrorContent
	if _, err := asn1.Unmarshal(c, &e); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < e.Status.FailInfo.BitLength; i++ {
		if e.Status.FailInfo.At(i) == 1 {
			return i
		}
	}
	return -1
}

// TestCMPReplayAcrossReplicas: an ir that enrolled a device through one
// replica, captured and posted to another replica on the same
// PostgreSQL within its time window, is refused there (transactionIdInUse)
// and issues nothing: the record of the exchange is the store's, not the
// answering process's.
func TestCMPReplayAcrossReplicas(t *testing.T) {
	t.Parallel()
	database := pgtest.NewDatabase(t)
	dataDir := t.TempDir()
	seedCAKeys(t, dataDir)
	var replicas []*Platform
	for range 2 {
		p, err := Start(context.Background(), Config{DataDir: dataDir, Database: database, Listen: "127.0.0.1:0",
			ServerName: "localhost", CASuite: sigalg.ECDSAP256})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		replicas = append(replicas, p)
	}
	admin := adminClient(t, replicas[0])
	dir := cmpDir(t, replicas[0])
	ids := cmpRegister(t, admin, cmpKey(t, dir, "enrolment", true))
	cmpKey(t, dir, "operational", false)
	out, ok := cmpOpenSSL(t, dir, append(cmpServer(replicas[0], cmp.Path), "-cmd", "ir", "-key", "enrolment.key", "-cert", "enrolment.crt",
		"-extracerts", "enrolment.crt", "-newkey", "operational.key", "-subject", "/CN=device", "-implicit_confirm",
		"-certout", "device.pem", "-reqout", "ir.der")...)
	if !ok {
		t.Fatalf("ir: %s", out)
	}
	der, err := os.ReadFile(filepath.Join(dir, "ir.der"))
	if err != nil {
		t.Fatal(err)
	}
	if bit := cmpPost(t, replicas[1], der); bit != cmp.FailTransactionIDInUse {
		t.Fatalf("the ir replayed to another replica: failInfo bit %d, want transactionIdInUse (%d)", bit, cmp.FailTransactionIDInUse)
	}
	dev, err := adminClient(t, replicas[1]).GetDevice(context.Background(), ids[0])
	if err != nil || len(dev.Certificates) != 1 {
		t.Fatalf("device after the replay: %+v, %v; want the one certificate of the first ir", dev, err)
	}
}

// BenchmarkCMPEnrolment is BenchmarkESTEnrolment through the CMP door:
// each enrolment is one p10cr protected by the enrolment key with
// implicit confirmation, POSTed over a kept-alive TLS connection (CMP
// signs the message, not the handshake), and its signed ip read back.
func BenchmarkCMPEnrolment(b *testing.B) {
	p := startBench(b)
	const pool = 64
	keys := make([]crypto.Signer, pool)
	csrs := make([][]byte, pool)
	for i := range keys {
		keys[i] = estP256(b)
		der, err := pki.CreateCSRWith(estP256(b), pki.CSROptions{CommonName: "device"})
		if err != nil {
			b.Fatal(err)
		}
		csrs[i] = der
	}
	devs := estFleet(b, p, keys...)
	client := tlsClient(p, nil)
	var next atomic.Int64
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := int(next.Add(1)) % pool
			if err := cmpEnrolOnce(client, p.URL()+cmp.Path, devs[i], csrs[i]); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "enrolments/s")
}

// cmpEnrolOnce is one p10cr of dev for the request csr, without
// testing.TB so that benchmark goroutines can run it.
func cmpEnrolOnce(client *http.Client, url string, dev *estDevice, csr []byte) error {
	der, err := cmpP10CR(dev, csr)
	if err != nil {
		return err
	}
	resp, err := client.Post(url, cmp.ContentType, bytes.NewReader(der))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	answer, err := cmp.Parse(raw)
	if err != nil {
		return err
	}
	if answer.Type() != cmp.TypeCP {
		return fmt.Errorf("p10cr answered with %s", cmp.BodyName(answer.Type()))
	}
	return nil
}

// cmpRequest is cmpP10CR for a test.
func cmpRequest(t testing.TB, dev *estDevice, csr []byte) []byte {
	t.Helper()
	der, err := cmpP10CR(dev, csr)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// cmpP10CR is a p10cr for csr protected by dev's enrolment key, its
// certificate in extraCerts, asking for implicit confirmation.
func cmpP10CR(dev *estDevice, csr []byte) ([]byte, error) {
	body, err := cmp.NewBody(cmp.TypeP10CR, asn1.RawValue{FullBytes: csr})
	if err != nil {
		return nil, err
	}
	tid, nonce := make([]byte, 16), make([]byte, 16)
	rand.Read(tid)
	rand.Read(nonce)
	suite, err := sigalg.SuiteOf(dev.key)
	if err != nil {
		return nil, err
	}
	dn := asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 4, IsCompound: true, Bytes: []byte{0x30, 0}}
	m := &cmp.Message{Header: cmp.Header{PVNO: 2, Sender: dn, Recipient: dn, MessageTime: time.Now().UTC().Truncate(time.Second),
		ProtectionAlg: pkix.AlgorithmIdentifier{Algorithm: suite.OID()}, TransactionID: tid, SenderNonce: nonce,
		GeneralInfo: []cmp.InfoTypeAndValue{{Type: cmp.OIDImplicitConfirm, Value: asn1.NullRawValue}}}, Body: body}
	part, err := m.ProtectedPart()
	if err != nil {
		return nil, err
	}
	sig, err := suite.Sign(dev.key, part)
	if err != nil {
		return nil, err
	}
	m.Protection = asn1.BitString{Bytes: sig, BitLength: 8 * len(sig)}
	m.ExtraCerts = []asn1.RawValue{{FullBytes: dev.cert.Certificate[0]}}
	return m.Marshal()
}

// cmpBareCertificate is a certificate for key, named "enrolment", as a
// CMP client carries its enrolment key in extraCerts: the door reads only
// the key, so the signature, which Go's x509 cannot make with ML-DSA, is
// a placeholder.
func cmpBareCertificate(t testing.TB, key crypto.Signer) []byte {
	t.Helper()
	spki, err := sigalg.MarshalPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	suite, err := sigalg.SuiteOf(key)
	if err != nil {
		t.Fatal(err)
	}
	name, _ := asn1.Marshal(pkix.Name{CommonName: "enrolment"}.ToRDNSequence())
	alg := pkix.AlgorithmIdentifier{Algorithm: suite.OID()}
	type validity struct{ NotBefore, NotAfter time.Time }
	tbs := struct {
		Version  int `asn1:"explicit,tag:0"`
		Serial   int
		Alg      pkix.AlgorithmIdentifier
		Issuer   asn1.RawValue
		Validity validity
		Subject  asn1.RawValue
		SPKI     asn1.RawValue
	}{2, 1, alg, asn1.RawValue{FullBytes: name},
		validity{time.Now().Add(-time.Hour).UTC().Truncate(time.Second), time.Now().Add(time.Hour).UTC().Truncate(time.Second)},
		asn1.RawValue{FullBytes: name}, asn1.RawValue{FullBytes: spki}}
	der, err := asn1.Marshal(struct {
		TBS any
		Alg pkix.AlgorithmIdentifier
		Sig asn1.BitString
	}{tbs, alg, asn1.BitString{Bytes: []byte{0}, BitLength: 8}})
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// TestCMPEnrolmentMLDSA: a device whose enrolment key is ML-DSA-65, which
// no TLS handshake here can carry (EST refuses it), enrols through the
// CMP door of a running platform by a p10cr its key protects; a request
// protected by another ML-DSA key presenting its certificate is refused.
func TestCMPEnrolmentMLDSA(t *testing.T) {
	t.Parallel()
	p := start(t, newDataDir(t), sigalg.ECDSAP256)
	suite, err := sigalg.MLDSA65.Suite()
	if err != nil {
		t.Fatal(err)
	}
	enrolment, _ := suite.GenerateKey(rand.Reader)
	impostor, _ := suite.GenerateKey(rand.Reader)
	devs := estFleet(t, p, enrolment)
	csr, err := pki.CreateCSRWith(estP256(t), pki.CSROptions{CommonName: "device"})
	if err != nil {
		t.Fatal(err)
	}
	client := tlsClient(p, nil)
	forged := &estDevice{id: devs[0].id, key: impostor, cert: devs[0].cert}
	if err := cmpEnrolOnce(client, p.URL()+cmp.Path, forged, csr); err == nil || !strings.Contains(err.Error(), "error") {
		t.Fatalf("p10cr protected by another key: %v, want an error answer", err)
	}
	if dev, err := adminClient(t, p).GetDevice(context.Background(), devs[0].id); err != nil || dev.State != "registered" {
		t.Fatalf("device after the forged request: %+v, %v", dev, err)
	}
	if err := cmpEnrolOnce(client, p.URL()+cmp.Path, devs[0], csr); err != nil {
		t.Fatalf("p10cr protected by the ML-DSA-65 enrolment key: %v", err)
	}
	if dev, err := adminClient(t, p).GetDevice(context.Background(), devs[0].id); err != nil || dev.State != "onboarded" || len(dev.Certificates) != 1 {
		t.Fatalf("device after its ML-DSA enrolment: %+v, %v", dev, err)
	}
}

// TestCMPRefusesDeviceStanding: over the CMP door of a running platform,
// a suspended and a revoked device are refused (notAuthorized) although
// their requests are well protected, a truncated request is badDataFormat,
// and none of them is issued anything.
func TestCMPRefusesDeviceStanding(t *testing.T) {
	t.Parallel()
	p := start(t, newDataDir(t), sigalg.ECDSAP256)
	admin := adminClient(t, p)
	ctx := context.Background()
	keys := []crypto.Signer{estP256(t), estP256(t)}
	devs := registerKeys(t, admin, keys...)
	suspended, revoked := devs[0], devs[1]
	client := tlsClient(p, nil)
	csr := func() []byte {
		der, err := pki.CreateCSRWith(estP256(t), pki.CSROptions{CommonName: "device"})
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	if err := cmpEnrolOnce(client, p.URL()+cmp.Path, suspended, csr()); err != nil { // only an onboarded device can be suspended
		t.Fatal(err)
	}
	if _, err := admin.TransitionDevice(ctx, suspended.id, "suspend", "quarantine"); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.RevokeDevice(ctx, revoked.id, "stolen"); err != nil {
		t.Fatal(err)
	}
	for _, d := range []*estDevice{suspended, revoked} {
		before, err := admin.GetDevice(ctx, d.id)
		if err != nil {
			t.Fatal(err)
		}
		err = cmpEnrolOnce(client, p.URL()+cmp.Path, d, csr())
		if err == nil || !strings.Contains(err.Error(), "error") {
			t.Fatalf("%s device: %v, want an error answer", before.State, err)
		}
		after, err := admin.GetDevice(ctx, d.id)
		if err != nil || len(after.Certificates) != len(before.Certificates) || after.State != before.State {
			t.Fatalf("%s device after a refused request: %+v, %v", before.State, after, err)
		}
	}
	// The failInfo bit says why, and a truncated request is refused as
	// unreadable.
	der := cmpRequest(t, suspended, csr())
	if bit := cmpPost(t, p, der); bit != cmp.FailNotAuthorized {
		t.Errorf("suspended device: failInfo bit %d, want notAuthorized (%d)", bit, cmp.FailNotAuthorized)
	}
	if bit := cmpPost(t, p, der[:len(der)/2]); bit != cmp.FailBadDataFormat {
		t.Errorf("truncated request: failInfo bit %d, want badDataFormat (%d)", bit, cmp.FailBadDataFormat)
	}
}
