package devicecmd_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/app"
	"github.com/hallmark-iot/hallmark/internal/cli/clitest"
	"github.com/hallmark-iot/hallmark/internal/device"
	"github.com/hallmark-iot/hallmark/internal/firmware"
	"github.com/hallmark-iot/hallmark/internal/httpapi"
	"github.com/hallmark-iot/hallmark/internal/manifest"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// runPlatform is a platform with a station, and what a device's user
// holds: its root certificate file and the connection flags.
type runPlatform struct {
	admin   *httpapi.Client
	dir     string
	server  []string
	ief     []byte
	roots   [][32]byte
	station crypto.Signer
}

func newRunPlatform(t *testing.T) *runPlatform {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	p, err := app.Start(ctx, app.Config{DataDir: filepath.Join(dir, "platform"), Listen: "127.0.0.1:0", ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	rootFile := filepath.Join(dir, "root.pem")
	if err := os.WriteFile(rootFile, p.CA.RootPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	token, _ := os.ReadFile(p.AdminTokenPath())
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(p.CA.RootPEM())
	e := &runPlatform{dir: dir, server: []string{"--server", p.URL(), "--ca-file", rootFile}}
	if e.admin, err = httpapi.NewClient(p.URL(), strings.TrimSpace(string(token)), roots); err != nil {
		t.Fatal(err)
	}
	ed, _ := sigalg.Lookup("ed25519")
	e.station, _ = ed.GenerateKey(rand.Reader)
	stationPEM, _ := sigalg.EncodePublicKeyPEM(e.station.Public())
	if _, err := e.admin.CreateStation(ctx, httpapi.StationRequest{Name: "line", PublicKey: string(stationPEM)}); err != nil {
		t.Fatal(err)
	}
	vendor, _ := ed.GenerateKey(rand.Reader)
	img, _ := firmware.New(firmware.Metadata{Type: firmware.TypeIEF}, device.IEFPayload())
	if err := img.Sign(vendor); err != nil {
		t.Fatal(err)
	}
	e.ief, _ = img.MarshalBinary()
	spki, _ := sigalg.MarshalPublicKey(vendor.Public())
	e.roots = [][32]byte{sha256.Sum256(spki)}
	return e
}

// deviceOf makes a device, imports it into a new product of validity
// and renewal window, and returns its state file.
func (e *runPlatform) deviceOf(t *testing.T, product, validity, window string) string {
	t.Helper()
	ctx := context.Background()
	if _, err := e.admin.CreateProduct(ctx, httpapi.ProductRequest{ID: product, Name: product, CertValidity: validity,
		CloudEndpoint: "mqtts://broker.test:8883", RenewalWindow: window}); err != nil {
		t.Fatal(err)
	}
	d, err := device.New(device.Config{Class: device.ClassKeygen, Algorithm: sigalg.Ed25519, RootKeyHashes: e.roots})
	if err != nil {
		t.Fatal(err)
	}
	d.Program(e.ief)
	if err := d.Boot(); err != nil {
		t.Fatal(err)
	}
	nonce := make([]byte, 32)
	rand.Read(nonce)
	enr, err := d.Enrol(nonce)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w, err := manifest.NewWriter(&buf, manifest.Header{Batch: "batch-" + product}, e.station)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Add(ctx, manifest.Record{Identity: enr.Identity, Algorithm: sigalg.Ed25519, SPKI: enr.PublicKey,
		RootOfTrust: manifest.Keygen, Injection: manifest.NotInjected, Time: time.Now(), Nonce: nonce, Proof: enr.Proof}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.admin.ImportManifest(ctx, product, &buf); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(e.dir, product+".json")
	if err := d.Save(state); err != nil {
		t.Fatal(err)
	}
	return state
}

// TestDeviceRunRenewsWhenDue runs `hallmark device run --once` end to
// end with one-hour certificates: a device whose product lets it renew
// only in the last ten minutes is told when and keeps its certificate; a
// device whose window is the whole validity renews on its own and stores
// the new certificate. A device not onboarded is told so.
func TestDeviceRunRenewsWhenDue(t *testing.T) {
	e := newRunPlatform(t)
	notYet := e.deviceOf(t, "late", "1h", "10m")
	due := e.deviceOf(t, "anytime", "1h", "1h")
	code, _, errOut := clitest.Run(t, nil, append([]string{"device", "run", "--state", notYet, "--once"}, e.server...)...)
	if code != 1 || !strings.Contains(errOut, "not onboarded") {
		t.Fatalf("run before onboarding: exit %d, %q", code, errOut)
	}
	for _, state := range []string{notYet, due} {
		clitest.MustRun(t, nil, append([]string{"device", "onboard", "--state", state}, e.server...)...)
	}

	before, _ := os.ReadFile(notYet)
	out := clitest.MustRun(t, nil, append([]string{"device", "run", "--state", notYet, "--once"}, e.server...)...)
	if !strings.Contains(out, "renewal due at ") || strings.Contains(out, "renewed") {
		t.Fatalf("run before the window printed %q", out)
	}
	if after, _ := os.ReadFile(notYet); !bytes.Equal(before, after) {
		t.Fatal("run before the window changed the device's credentials")
	}
	code, _, errOut = clitest.Run(t, nil, append([]string{"device", "credentials", "--state", notYet, "--renew"}, e.server...)...)
	if code != 1 || !strings.Contains(errOut, "renewal-not-due") {
		t.Fatalf("credentials --renew before the window: exit %d, %q", code, errOut)
	}

	before, _ = os.ReadFile(due)
	out = clitest.MustRun(t, nil, append([]string{"device", "run", "--state", due, "--once"}, e.server...)...)
	if !strings.Contains(out, "renewed; next renewal due at ") {
		t.Fatalf("run in the window printed %q", out)
	}
	if after, _ := os.ReadFile(due); bytes.Equal(before, after) {
		t.Fatal("run in the window did not store a new certificate")
	}
	// The new certificate works: fetching credentials with it succeeds.
	clitest.MustRun(t, nil, append([]string{"device", "credentials", "--state", due}, e.server...)...)
	code, _, errOut = clitest.Run(t, nil, append([]string{"device", "run", "--state", due, "--interval", "0s"}, e.server...)...)
	if code != 2 || !strings.Contains(errOut, "--interval") {
		t.Fatalf("run --interval 0s: exit %d, %q", code, errOut)
	}
}
