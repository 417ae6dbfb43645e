package app

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/device"
	"github.com/hallmark-iot/hallmark/internal/firmware"
	"github.com/hallmark-iot/hallmark/internal/httpapi"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/keys/softkms"
	"github.com/hallmark-iot/hallmark/internal/manifest"
	"github.com/hallmark-iot/hallmark/internal/onboarding"
	"github.com/hallmark-iot/hallmark/internal/onboarding/onboardpki"
	"github.com/hallmark-iot/hallmark/internal/pki"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store/sqlite"
)

// fleet is a small factory output: devices, their IEF and a signed
// manifest, made with the real packages.
type fleet struct {
	ief        []byte
	devices    []*device.Device
	ids        []identity.ID
	pubs       []crypto.PublicKey
	locks      []sync.Mutex
	manifest   []byte
	stationPEM []byte
}

func newFleet(t testing.TB, algs ...sigalg.ID) *fleet {
	t.Helper()
	return newFleetBatch(t, "batch-1", algs...)
}

// newFleetBatch is newFleet with its own batch name, so that a second
// fleet can be imported beside the first.
func newFleetBatch(t testing.TB, batch string, algs ...sigalg.ID) *fleet {
	t.Helper()
	specs := make([]devSpec, len(algs))
	for i, alg := range algs {
		specs[i] = devSpec{class: device.ClassKeygen, alg: alg}
	}
	return buildFleet(t, batch, specs)
}

// devSpec is one device of a fleet: its root of trust and enrolment suite.
type devSpec struct {
	class device.Class
	alg   sigalg.ID
}

// buildFleet makes the devices of specs with one vendor's IEF, enrols
// them and writes their signed manifest, as a station would.
func buildFleet(t testing.TB, batch string, specs []devSpec) *fleet {
	t.Helper()
	ed, _ := sigalg.Lookup("ed25519")
	vendor, _ := ed.GenerateKey(rand.Reader)
	img, _ := firmware.New(firmware.Metadata{Type: firmware.TypeIEF}, device.IEFPayload())
	img.Sign(vendor)
	f := &fleet{}
	f.ief, _ = img.MarshalBinary()
	spki, _ := sigalg.MarshalPublicKey(vendor.Public())
	stationKey, _ := ed.GenerateKey(rand.Reader)
	f.stationPEM, _ = sigalg.EncodePublicKeyPEM(stationKey.Public())
	var buf bytes.Buffer
	w, err := manifest.NewWriter(&buf, manifest.Header{Batch: batch}, stationKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, spec := range specs {
		d, err := device.New(device.Config{Class: spec.class, Algorithm: spec.alg, RootKeyHashes: [][32]byte{sha256.Sum256(spki)}})
		if err != nil {
			t.Fatal(err)
		}
		d.Program(f.ief)
		if err := d.Boot(); err != nil {
			t.Fatal(err)
		}
		nonce := make([]byte, 32)
		rand.Read(nonce)
		enr, err := d.Enrol(nonce)
		if err != nil {
			t.Fatal(err)
		}
		rot := manifest.Keygen
		if spec.class == device.ClassPUF {
			rot = manifest.PUF
		}
		if err := w.Add(context.Background(), manifest.Record{Identity: enr.Identity, Algorithm: spec.alg, SPKI: enr.PublicKey,
			RootOfTrust: rot, Injection: manifest.NotInjected, Time: time.Now(), Nonce: nonce, Proof: enr.Proof}); err != nil {
			t.Fatal(err)
		}
		pub, _ := sigalg.ParsePublicKey(enr.PublicKey)
		f.devices, f.ids, f.pubs = append(f.devices, d), append(f.ids, enr.Identity), append(f.pubs, pub)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f.manifest = buf.Bytes()
	f.locks = make([]sync.Mutex, len(f.devices))
	return f
}

// newDataDir returns a new data directory laid out as a first Start lays
// it out before it makes the CA: a migrated, empty SQLite registry and an
// empty CA key store beside its development passphrase. Start then makes
// the CA, the bootstrap token and the rest as on any first start.
//
// It spares each test two costs that every first Start would repeat and
// that tests of their own cover: applying the migrations (a third of a
// second under the race detector; here the registry is a copy of one
// migrated once per test binary, opened by Start as on a restart) and the
// key store's production PBKDF2 count (here the explicit
// softkms.InsecureKDFIterations, the option that exists for tests). Tests
// of the first start itself (TestPlatformEndToEnd, cakey_test.go) and of
// refused starts start from an empty directory.
func newDataDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	db, err := migratedRegistry()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, DatabaseFile), db, 0o600); err != nil {
		t.Fatal(err)
	}
	seedCAKeys(t, dir)
	return dir
}

// testKDFRounds is the PBKDF2 count of the tests' CA key stores: the least
// softkms accepts, 1/600 of the production count.
const testKDFRounds = 1_000

// seedCAKeys makes the empty CA key store of the data directory dir and
// its development passphrase file, as a first Start would but with
// testKDFRounds. It suits a data directory whose registry is PostgreSQL.
func seedCAKeys(t testing.TB, dir string) {
	t.Helper()
	raw := make([]byte, 32)
	rand.Read(raw)
	pass := []byte(hex.EncodeToString(raw))
	if err := os.WriteFile(filepath.Join(dir, CAPassphraseFile), append(pass, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	ks, err := softkms.Open(context.Background(), filepath.Join(dir, KeysDir), pass, softkms.InsecureKDFIterations(testKDFRounds))
	if err != nil {
		t.Fatal(err)
	}
	if err := ks.Close(); err != nil {
		t.Fatal(err)
	}
}

var (
	registryOnce     sync.Once
	registryTemplate []byte
	registryErr      error
)

// migratedRegistry returns the bytes of an SQLite registry with every
// migration applied and nothing else, made once per test binary.
func migratedRegistry() ([]byte, error) {
	registryOnce.Do(func() {
		dir, err := os.MkdirTemp("", "hallmark-registry-")
		if err != nil {
			registryErr = err
			return
		}
		defer os.RemoveAll(dir)
		path := filepath.Join(dir, DatabaseFile)
		s, err := sqlite.Open(context.Background(), path)
		if err != nil {
			registryErr = err
			return
		}
		// Close checkpoints the write-ahead log into the file and removes
		// it, so that the file alone is the database.
		if err := s.Close(); err != nil {
			registryErr = err
			return
		}
		if _, err := os.Stat(path + "-wal"); err == nil {
			registryErr = fmt.Errorf("registry template: %s-wal left after Close", path)
			return
		}
		registryTemplate, registryErr = os.ReadFile(path)
	})
	return registryTemplate, registryErr
}

func start(t *testing.T, dir string, suite sigalg.ID) *Platform {
	t.Helper()
	p, err := Start(context.Background(), Config{DataDir: dir, Listen: "127.0.0.1:0", ServerName: "localhost", CASuite: suite})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func adminClient(t testing.TB, p *Platform) *httpapi.Client {
	t.Helper()
	return adminClientAt(t, p.URL(), p.AdminTokenPath(), p.CA.RootPEM())
}

// adminClientAt is an admin client of a platform at url, perhaps in
// another process.
func adminClientAt(t testing.TB, url, tokenFile string, rootPEM []byte) *httpapi.Client {
	t.Helper()
	token, err := os.ReadFile(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(rootPEM)
	c, err := httpapi.NewClient(url, strings.TrimSpace(string(token)), roots)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (f *fleet) register(t testing.TB, admin *httpapi.Client) {
	t.Helper()
	ctx := context.Background()
	if _, err := admin.CreateStation(ctx, httpapi.StationRequest{Name: "line", PublicKey: string(f.stationPEM)}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CreateProduct(ctx, httpapi.ProductRequest{ID: "meter", Name: "Meter", CertValidity: "720h", CloudEndpoint: "mqtts://broker.test:8883"}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.ImportManifest(ctx, "meter", bytes.NewReader(f.manifest)); err != nil {
		t.Fatal(err)
	}
}

// clientFromSource is an HTTPS client of p whose connections leave from
// source, a loopback address (Linux routes all of 127.0.0.0/8 to lo), so
// that the platform sees that client address.
func clientFromSource(p *Platform, source string) *http.Client {
	c := tlsClient(p, nil)
	tr := c.Transport.(*http.Transport)
	tr.DialContext = (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(source)}, Timeout: 5 * time.Second}).DialContext
	tr.MaxIdleConnsPerHost = 16
	c.Timeout = 20 * time.Second
	return c
}

// testClock is a platform clock the tests move forward.
type testClock struct{ offset atomic.Int64 }

func (c *testClock) now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }

func (c *testClock) advance(d time.Duration) { c.offset.Add(int64(d)) }

// tlsClient trusts the platform's root and presents cert if given.
func tlsClient(p *Platform, cert *tls.Certificate) *http.Client {
	return tlsClientFor(p.CA.RootPEM(), cert)
}

func tlsClientFor(rootPEM []byte, cert *tls.Certificate) *http.Client {
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(rootPEM)
	cfg := &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: roots}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
}

func onboard(t *testing.T, p *Platform, d *device.Device, id identity.ID) (*onboarding.Credentials, *tls.Certificate, error) {
	t.Helper()
	return onboardAt(t, p.URL(), p.CA.RootPEM(), d, id)
}

// onboardAt onboards d at a platform at url, perhaps in another process.
func onboardAt(t *testing.T, url string, rootPEM []byte, d *device.Device, id identity.ID) (*onboarding.Credentials, *tls.Certificate, error) {
	t.Helper()
	op, err := d.OperationalKey(sigalg.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	c := deviceClient(url, tlsClientFor(rootPEM, nil))
	creds, err := c.OnboardWithKey(context.Background(), d, id, op)
	if err != nil {
		return nil, nil, err
	}
	cert := &tls.Certificate{PrivateKey: op}
	for _, c := range creds.CertificateChain {
		block, _ := pem.Decode([]byte(c))
		cert.Certificate = append(cert.Certificate, block.Bytes)
	}
	return creds, cert, nil
}

func TestPlatformEndToEnd(t *testing.T) {
	t.Parallel()
	for _, caSuite := range []sigalg.ID{sigalg.ECDSAP256, sigalg.MLDSA65} {
		t.Run("ca-"+string(caSuite), func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			p := start(t, dir, caSuite)
			f := newFleet(t, sigalg.ECDSAP256, sigalg.Ed25519, sigalg.MLDSA65)
			admin := adminClient(t, p)
			f.register(t, admin)

			resp, err := tlsClient(p, nil).Get(p.URL() + "/readyz")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.TLS.Version != tls.VersionTLS13 || resp.TLS.CurveID != tls.X25519MLKEM768 {
				t.Fatalf("TLS version %x, key exchange %v; want TLS 1.3 with X25519MLKEM768", resp.TLS.Version, resp.TLS.CurveID)
			}

			for i, d := range f.devices {
				creds, cert, err := onboard(t, p, d, f.ids[i])
				if err != nil {
					t.Fatalf("onboard %s: %v", d.Algorithm(), err)
				}
				if _, _, err := p.CA.VerifyDevice(cert.Certificate, time.Now()); err != nil || creds.CloudEndpoint != "mqtts://broker.test:8883" {
					t.Fatalf("credentials: %v", err)
				}
				// Mutual TLS with the new certificate: fetch, then renew.
				mtls := deviceClient(p.URL(), tlsClient(p, cert))
				again, err := mtls.Credentials(ctx)
				if err != nil || again.CertificateChain[0] != creds.CertificateChain[0] {
					t.Fatalf("credentials over mutual TLS: %v", err)
				}
				op, _ := d.OperationalKey(sigalg.ECDSAP256)
				renewed, err := mtls.RenewWithKey(ctx, f.ids[i], op)
				if err != nil || renewed.CertificateChain[0] == creds.CertificateChain[0] {
					t.Fatalf("renew over mutual TLS: %v", err)
				}
				got, _ := admin.GetDevice(ctx, f.ids[i])
				if got.State != "onboarded" {
					t.Fatalf("device state %s", got.State)
				}
			}
			// Without a certificate the device routes refuse.
			if _, err := deviceClient(p.URL(), tlsClient(p, nil)).Credentials(ctx); !isProblem(err, "not-onboarded") {
				t.Fatalf("credentials without a certificate: %v", err)
			}
		})
	}
}

func TestPlatformRefusals(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := start(t, newDataDir(t), sigalg.ECDSAP256)
	f := newFleet(t, sigalg.Ed25519, sigalg.ECDSAP256)
	admin := adminClient(t, p)
	f.register(t, admin)
	httpc := tlsClient(p, nil)

	// A malformed request: a problem, nothing recorded.
	resp, err := httpc.Post(p.URL()+httpapi.PathOnboardChallenge, "application/json", strings.NewReader(`{"identity":"xyz","extra":1}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 || resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("malformed challenge: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	// An unknown identity gets a challenge like any other, then proof-rejected.
	var unknown identity.ID
	rand.Read(unknown[:])
	impostor := deviceClient(p.URL(), httpc)
	csr, _ := pki.CreateCSR(mustKey(t), unknown.String())
	if _, err := impostor.Onboard(ctx, foreignProver{f.devices[1], unknown}, unknown, csr); !isProblem(err, "proof-rejected") {
		t.Fatalf("unknown identity: %v", err)
	}
	// A revoked device: refused after its proof holds.
	if _, err := admin.RevokeDevice(ctx, f.ids[0], "lost in transit"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := onboard(t, p, f.devices[0], f.ids[0]); !isProblem(err, "device-revoked") {
		t.Fatalf("revoked device: %v", err)
	}
	// A replayed proof: the same body twice.
	body := replayableProof(t, p, f.devices[1], f.ids[1])
	for i, want := range []int{200, 401} {
		resp, err := httpc.Post(p.URL()+httpapi.PathOnboardProof, "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		var prob struct{ Code string }
		json.NewDecoder(resp.Body).Decode(&prob)
		resp.Body.Close()
		if resp.StatusCode != want || (i == 1 && prob.Code != "challenge-used") {
			t.Fatalf("proof %d: %d %q, want %d", i+1, resp.StatusCode, prob.Code, want)
		}
	}
	// The audit log shows each attempt.
	events, err := admin.ListAudit(ctx, httpapi.AuditQuery{Action: "device.onboard", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	outcomes := map[string]int{}
	for _, e := range events.Events {
		outcomes[e.Outcome]++
	}
	if outcomes["ok"] != 1 || outcomes["denied"] != 3 {
		t.Fatalf("audit outcomes %v, want 1 ok and 3 denied", outcomes)
	}
}

// TestRestartKeepsEverything stops the platform and starts it again on the
// same data directory.
func TestRestartKeepsEverything(t *testing.T) {
	t.Parallel()
	dir := newDataDir(t)
	p := start(t, dir, sigalg.MLDSA65)
	f := newFleet(t, sigalg.MLDSA44)
	f.register(t, adminClient(t, p))
	if _, _, err := onboard(t, p, f.devices[0], f.ids[0]); err != nil {
		t.Fatal(err)
	}
	root := p.CA.RootPEM()
	p.Close()
	p2 := start(t, dir, "")
	if !bytes.Equal(p2.CA.RootPEM(), root) || p2.CA.Suite() != sigalg.MLDSA65 {
		t.Fatal("the CA changed across a restart")
	}
	got, err := adminClient(t, p2).GetDevice(context.Background(), f.ids[0])
	if err != nil || got.State != "onboarded" {
		t.Fatalf("after restart: %+v, %v", got, err)
	}
	if _, err := Start(context.Background(), Config{DataDir: dir, Listen: "127.0.0.1:0", CASuite: sigalg.ECDSAP256}); err == nil {
		t.Fatal("a start asking for another CA suite than the data directory's succeeded")
	}
}

// replayableProof builds one proof request body for d.
func replayableProof(t *testing.T, p *Platform, d *device.Device, id identity.ID) []byte {
	t.Helper()
	httpc := tlsClient(p, nil)
	resp, err := httpc.Post(p.URL()+httpapi.PathOnboardChallenge, "application/json", strings.NewReader(`{"identity":"`+id.String()+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	var ch onboarding.ChallengeResponse
	json.NewDecoder(resp.Body).Decode(&ch)
	resp.Body.Close()
	op, _ := d.OperationalKey(sigalg.ECDSAP256)
	var chID [onboarding.ChallengeIDSize]byte
	raw, _ := hex.DecodeString(ch.ChallengeID)
	copy(chID[:], raw)
	csr, _ := pki.CreateCSRWith(op, pki.CSROptions{CommonName: id.String(),
		ChallengePassword: onboarding.CSRBinding(chID, ch.Nonce, ch.ServerName)})
	_, sig, err := d.Prove(onboarding.ProofContext, onboarding.Transcript(chID, ch.Nonce, ch.ServerName, csr))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(onboarding.ProofRequest{ChallengeID: ch.ChallengeID, Identity: id, CSR: csr, Signature: sig})
	return body
}

// foreignProver signs with a real device's key but claims another identity.
type foreignProver struct {
	d     *device.Device
	claim identity.ID
}

func (f foreignProver) Prove(ctx string, nonce []byte) (identity.ID, []byte, error) {
	_, sig, err := f.d.Prove(ctx, nonce)
	return f.claim, sig, err
}

// deviceClient is the device side of the platform at url over hc.
func deviceClient(url string, hc *http.Client) *onboarding.Client {
	c, err := httpapi.NewOnboardingClient(url, hc, onboardpki.CSRs{})
	if err != nil {
		panic(err) // the tests' URLs parse
	}
	return c
}

func isProblem(err error, code string) bool {
	var p *httpapi.Problem
	return errors.As(err, &p) && p.Code == code
}

func mustKey(t *testing.T) crypto.Signer {
	t.Helper()
	suite, _ := sigalg.Lookup("ecdsa-p256")
	key, err := suite.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// TestStartWithUnreachableDatabase: a PostgreSQL that cannot be reached is
// one clear error, without the URL's password, and nothing half-started.
func TestStartWithUnreachableDatabase(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	for _, db := range []string{"postgres://hallmark:s3cret-pw@" + addr + "/x?connect_timeout=2", "mysql://x"} {
		_, err := Start(t.Context(), Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0", Database: db})
		if err == nil || strings.Contains(err.Error(), "s3cret-pw") {
			t.Errorf("Start with %s: %v; want an error without the password", db, err)
		}
	}
}
