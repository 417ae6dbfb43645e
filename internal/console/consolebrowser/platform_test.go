package consolebrowser

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/device"
	"github.com/hallmark-iot/hallmark/internal/firmware"
	"github.com/hallmark-iot/hallmark/internal/httpapi"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/manifest"
	"github.com/hallmark-iot/hallmark/internal/monitoring"
	"github.com/hallmark-iot/hallmark/internal/onboarding/onboardpki"
	"github.com/hallmark-iot/hallmark/internal/pki"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// hostile is markup that a name or a reason may carry: the console must
// show it as text, never as an element (an <img> whose handler would run
// if CSP did not stop it).
const hostile = `<img src=x onerror=alert(1)>`

// The fleet the tests look at: one product, one station (both named with
// markup), a first batch imported through the API and a second batch the
// browser uploads.
const (
	productID     = "meter"
	productName   = "Meter " + hostile
	stationName   = "Line 1 " + hostile
	firstBatch    = "line1-0001"
	uploadBatch   = "line1-0002"
	firstDevices  = 8
	uploadDevices = 3
	// onboardedDevices of the first batch are onboarded; the first of them
	// sends a status report.
	onboardedDevices = 3
	statusFirmware   = "1.4.2"
)

// platform is a `hallmark serve` process with its own data directory.
type platform struct {
	url     string // https://localhost:PORT
	dataDir string
	token   string // the bootstrap admin token
	roots   *x509.CertPool
	admin   *httpapi.Client
	cmd     *exec.Cmd
	stderr  *syncBuffer
}

// buildHallmark builds the hallmark binary into a temporary directory, as
// an operator installs it.
func buildHallmark(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "hallmark")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/hallmark-iot/hallmark/cmd/hallmark").CombinedOutput()
	if err != nil {
		t.Fatalf("go build hallmark: %v\n%s", err, out)
	}
	return bin
}

// startPlatform runs `hallmark serve` on a free loopback port with a new
// data directory, waits for the line that gives its URL, and stops it
// with SIGTERM when the test ends.
func startPlatform(t *testing.T, bin string) *platform {
	t.Helper()
	p := &platform{dataDir: filepath.Join(t.TempDir(), "data"), stderr: &syncBuffer{}}
	p.cmd = exec.Command(bin, "serve", "--data-dir", p.dataDir, "--listen", "127.0.0.1:0", "--log-format", "text", "--log-level", "warn")
	p.cmd.Env = withoutHallmarkVariables(os.Environ())
	p.cmd.Stderr = p.stderr
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.stop)
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("hallmark serve: %v\n%s", err, p.stderr.String())
	}
	var tokenFile string
	if _, err := fmt.Sscanf(line, "hallmark serving at %s (admin token in %s", &p.url, &tokenFile); err != nil {
		t.Fatalf("hallmark serve printed %q", line)
	}
	token, err := os.ReadFile(strings.TrimSuffix(tokenFile, ")"))
	if err != nil {
		t.Fatal(err)
	}
	p.token = strings.TrimSpace(string(token))
	trust, err := os.ReadFile(filepath.Join(p.dataDir, pki.TLSTrustFile))
	if err != nil {
		t.Fatal(err)
	}
	if p.roots, err = pki.ParseTrustBundle(trust); err != nil {
		t.Fatal(err)
	}
	if p.admin, err = httpapi.NewClient(p.url, p.token, p.roots); err != nil {
		t.Fatal(err)
	}
	return p
}

// stop ends serve as an operator would, and waits for it.
func (p *platform) stop() {
	if p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
}

// withoutHallmarkVariables drops the developer's HALLMARK_* settings, so
// that serve runs on its defaults and the flags given.
func withoutHallmarkVariables(env []string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, "HALLMARK_") {
			out = append(out, kv)
		}
	}
	return out
}

// spkiPin is the base64 SHA-256 of the platform's TLS certificate's
// SubjectPublicKeyInfo, what Chromium's
// --ignore-certificate-errors-spki-list takes. The handshake that reads
// it verifies the certificate against the platform's TLS root first, so
// the pin is of the server the tests talk to and of nothing else.
func (p *platform) spkiPin(t *testing.T) string {
	t.Helper()
	conn, err := tls.Dial("tcp", strings.TrimPrefix(p.url, "https://"), pki.ClientTLSConfig(p.roots, nil))
	if err != nil {
		t.Fatalf("TLS to the platform: %v", err)
	}
	defer conn.Close()
	leaf := conn.ConnectionState().PeerCertificates[0]
	sum := sha256.Sum256(leaf.RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// fleet is what the tests import: devices made and enrolled with the real
// packages, as a station makes them, and the station's signed manifests.
type fleet struct {
	stationKey crypto.Signer
	stationPEM []byte
	ief        []byte
	rootHash   [32]byte
	devices    []*device.Device // of the first batch
	ids        []identity.ID
	// uploadFile is the second batch's manifest, for the browser.
	uploadFile string
	uploadIDs  []identity.ID
}

// newFleet makes a station key, a vendor-signed IEF and the two batches'
// manifests; the second is written to a file in dir.
func newFleet(t *testing.T, dir string) *fleet {
	t.Helper()
	ed, _ := sigalg.Lookup("ed25519")
	vendor, err := ed.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	img, err := firmware.New(firmware.Metadata{Type: firmware.TypeIEF}, device.IEFPayload())
	if err != nil {
		t.Fatal(err)
	}
	if err := img.Sign(vendor); err != nil {
		t.Fatal(err)
	}
	f := &fleet{}
	if f.ief, err = img.MarshalBinary(); err != nil {
		t.Fatal(err)
	}
	spki, err := sigalg.MarshalPublicKey(vendor.Public())
	if err != nil {
		t.Fatal(err)
	}
	f.rootHash = sha256.Sum256(spki)
	if f.stationKey, err = ed.GenerateKey(rand.Reader); err != nil {
		t.Fatal(err)
	}
	if f.stationPEM, err = sigalg.EncodePublicKeyPEM(f.stationKey.Public()); err != nil {
		t.Fatal(err)
	}
	suites := []sigalg.ID{sigalg.ECDSAP256, sigalg.Ed25519, sigalg.MLDSA44}
	f.devices, f.ids = f.enrol(t, firstDevices, suites)
	var uploads []*device.Device
	uploads, f.uploadIDs = f.enrol(t, uploadDevices, suites)
	f.uploadFile = filepath.Join(dir, uploadBatch+".manifest")
	if err := os.WriteFile(f.uploadFile, f.manifest(t, uploadBatch, uploads), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// enrol makes n keygen devices, their suites taken in turn from suites.
func (f *fleet) enrol(t *testing.T, n int, suites []sigalg.ID) ([]*device.Device, []identity.ID) {
	t.Helper()
	var devs []*device.Device
	var ids []identity.ID
	for i := range n {
		d, err := device.New(device.Config{Class: device.ClassKeygen, Algorithm: suites[i%len(suites)], RootKeyHashes: [][32]byte{f.rootHash}})
		if err != nil {
			t.Fatal(err)
		}
		d.Program(f.ief)
		if err := d.Boot(); err != nil {
			t.Fatal(err)
		}
		id, err := d.Identity()
		if err != nil {
			t.Fatal(err)
		}
		devs, ids = append(devs, d), append(ids, id)
	}
	return devs, ids
}

// manifest is the station-signed manifest of devs: each device proves
// possession of its key to a fresh nonce, as at the station.
func (f *fleet) manifest(t *testing.T, batch string, devs []*device.Device) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := manifest.NewWriter(&buf, manifest.Header{Batch: batch}, f.stationKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range devs {
		nonce := make([]byte, 32)
		if _, err := rand.Read(nonce); err != nil {
			t.Fatal(err)
		}
		enr, err := d.Enrol(nonce)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Add(context.Background(), manifest.Record{Identity: enr.Identity, Algorithm: d.Algorithm(), SPKI: enr.PublicKey,
			RootOfTrust: manifest.Keygen, Injection: manifest.NotInjected, Time: time.Now(), Nonce: nonce, Proof: enr.Proof}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// register registers the station and the product, imports the first
// batch through the admin API, onboards its first devices and has the
// first of them report its status.
func (f *fleet) register(t *testing.T, p *platform) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := p.admin.CreateStation(ctx, httpapi.StationRequest{Name: stationName, PublicKey: string(f.stationPEM)}); err != nil {
		t.Fatalf("register the station: %v", err)
	}
	if _, err := p.admin.CreateProduct(ctx, httpapi.ProductRequest{ID: productID, Name: productName, CertValidity: "720h",
		CloudEndpoint: "mqtts://broker.example:8883"}); err != nil {
		t.Fatalf("create the product: %v", err)
	}
	if _, err := p.admin.ImportManifest(ctx, productID, bytes.NewReader(f.manifest(t, firstBatch, f.devices))); err != nil {
		t.Fatalf("import the first batch: %v", err)
	}
	client, err := httpapi.NewOnboardingClient(p.url, platformHTTPClient(p.roots, nil), onboardpki.CSRs{})
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range f.devices[:onboardedDevices] {
		got, err := client.OnboardDevice(ctx, d, sigalg.ECDSAP256, nil)
		if err != nil {
			t.Fatalf("onboard device %d: %v", i, err)
		}
		if i != 0 {
			continue
		}
		cert := tls.Certificate{Certificate: got.Chain, PrivateKey: got.Operational}
		status := &httpapi.OnboardingTransport{BaseURL: p.url, HTTP: platformHTTPClient(p.roots, &cert)}
		if _, err := status.ReportStatus(ctx, monitoring.StatusReport{FirmwareVersion: statusFirmware, SecurityCounter: 3, BootResult: "ok",
			EnrolmentAlgorithm: d.Algorithm(), OperationalAlgorithm: sigalg.ECDSAP256, UptimeSeconds: 120}); err != nil {
			t.Fatalf("status report: %v", err)
		}
	}
}

// platformHTTPClient trusts the platform's TLS root and presents cert
// when given.
func platformHTTPClient(roots *x509.CertPool, cert *tls.Certificate) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: pki.ClientTLSConfig(roots, cert)}}
}

// syncBuffer collects a process's output while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
