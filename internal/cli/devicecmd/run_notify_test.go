package devicecmd_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/app"
	"github.com/hallmark-iot/hallmark/internal/cli/clitest"
	"github.com/hallmark-iot/hallmark/internal/cli/devicecmd"
	"github.com/hallmark-iot/hallmark/internal/connector"
	"github.com/hallmark-iot/hallmark/internal/connector/mosquitto"
	"github.com/hallmark-iot/hallmark/internal/connector/mosquittotest"
	"github.com/hallmark-iot/hallmark/internal/device"
	"github.com/hallmark-iot/hallmark/internal/firmware"
	"github.com/hallmark-iot/hallmark/internal/httpapi"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/manifest"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// syncBuffer is an output the run loop writes while the test reads it.
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

// waitFor waits until cond holds (a hang guard fails the test, it is not
// a timing assertion).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDeviceRunPollsOnHint: `device run --interval 1h` with the
// platform's Mosquitto connector and a real broker. The loop polls once
// at start (nothing assigned: the platform asks it back in about 15
// minutes), subscribes to its update topic, and when a campaign is
// created it is hinted and polls at once: the platform records the
// device offered. With an hour's interval and a quarter of an hour's
// Retry-After, only the hint explains that poll.
func TestDeviceRunPollsOnHint(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dir := t.TempDir()
	pdir := filepath.Join(dir, "platform")
	// The CA first, then a broker trusting it, then the platform with
	// the connector, as an operator would.
	first, err := app.Start(ctx, app.Config{DataDir: pdir, Listen: "127.0.0.1:0", ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	server, err := first.CA.IssueServer(ctx, []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	trust, rootPEM := first.CA.DeviceTrustPEM(), first.CA.RootPEM()
	first.Close()
	broker := mosquittotest.Start(t, mosquittotest.Options{CAPEM: trust, ServerCert: server})
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(rootPEM)
	conn, err := mosquitto.New(mosquitto.Config{BrokerURL: broker.AdminURL(), TLS: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS13},
		AdminUser: broker.AdminUser, AdminPassword: broker.AdminPassword})
	if err != nil {
		t.Fatal(err)
	}
	p, err := app.Start(ctx, app.Config{DataDir: pdir, Listen: "127.0.0.1:0", ServerName: "localhost",
		Connectors: []connector.Connector{conn}, Worker: connector.WorkerConfig{Poll: 20 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	rootFile := filepath.Join(dir, "root.pem")
	if err := os.WriteFile(rootFile, rootPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	token, _ := os.ReadFile(p.AdminTokenPath())
	admin, err := httpapi.NewClient(p.URL(), strings.TrimSpace(string(token)), roots)
	if err != nil {
		t.Fatal(err)
	}
	serverFlags := []string{"--server", p.URL(), "--ca-file", rootFile}

	// One device of a product whose cloud endpoint is the broker.
	state, id := hintedDevice(t, admin, dir, broker.DeviceURL())
	clitest.MustRun(t, nil, append([]string{"device", "onboard", "--state", state}, serverFlags...)...)
	waitFor(t, "the device registered with the broker", func() bool {
		d, err := admin.GetDevice(ctx, id)
		return err == nil && d.Cloud.State == store.CloudActive
	})
	digest := sha256.Sum256([]byte("meter image 2.0.0"))
	if _, _, err := p.Store.PutFirmwareImage(ctx, store.FirmwareImage{Digest: digest, ProductID: "hinted",
		Type: "app", Version: "2.0.0", SecurityCounter: 2, Size: 4096, UploadedAt: time.Now(), UploadedBy: "token:test"}); err != nil {
		t.Fatal(err)
	}

	var out, errOut syncBuffer
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- devicecmd.RunDevice(runCtx, &out, &errOut, append([]string{"--state", state, "--interval", "1h", "--notify", "on"}, serverFlags...)...)
	}()
	t.Cleanup(func() { stop(); <-done })
	waitFor(t, "the first cycle and the subscription", func() bool {
		o := out.String()
		return strings.Contains(o, "no update assigned") && strings.Contains(o, "listening for update hints on devices/"+id.String()+"/update")
	})

	c, err := admin.CreateCampaign(ctx, httpapi.CampaignRequest{Product: "hinted", Image: hex.EncodeToString(digest[:])})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the hint and the poll it causes", func() bool {
		row, err := p.Store.GetCampaignDevice(ctx, c.ID, id)
		return strings.Contains(out.String(), "update hint for campaign "+c.ID+": polling now") && err == nil && row.State != "pending"
	})
	// One cycle (its renewal check) before the hint, the next after it.
	o := out.String()
	hint := strings.Index(o, "update hint for campaign")
	if before := strings.Count(o[:hint], "renewal due at"); before != 1 || !strings.Contains(o[hint:], "renewal due at") {
		t.Fatalf("want one cycle before the hint and the next after it:\n%s\n%s", o, errOut.String())
	}
}

// hintedDevice makes a keygen device of a new product "hinted" whose
// cloud endpoint is brokerURL, imports it and returns its state file.
func hintedDevice(t *testing.T, admin *httpapi.Client, dir, brokerURL string) (string, identity.ID) {
	t.Helper()
	ctx := context.Background()
	ed, _ := sigalg.Lookup("ed25519")
	station, _ := ed.GenerateKey(rand.Reader)
	stationPEM, _ := sigalg.EncodePublicKeyPEM(station.Public())
	if _, err := admin.CreateStation(ctx, httpapi.StationRequest{Name: "line", PublicKey: string(stationPEM)}); err != nil {
		t.Fatalf("station: %v", err)
	}
	if _, err := admin.CreateProduct(ctx, httpapi.ProductRequest{ID: "hinted", Name: "Hinted", CertValidity: "720h", CloudEndpoint: brokerURL}); err != nil {
		t.Fatalf("product: %v", err)
	}
	vendor, _ := ed.GenerateKey(rand.Reader)
	spki, _ := sigalg.MarshalPublicKey(vendor.Public())
	d, err := device.New(device.Config{Class: device.ClassKeygen, Algorithm: sigalg.ECDSAP256, RootKeyHashes: [][32]byte{sha256.Sum256(spki)}})
	if err != nil {
		t.Fatal(err)
	}
	d.Program(signedIEF(t, vendor))
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
	w, err := manifest.NewWriter(&buf, manifest.Header{Batch: "batch-hinted"}, station)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Add(ctx, manifest.Record{Identity: enr.Identity, Algorithm: sigalg.ECDSAP256, SPKI: enr.PublicKey,
		RootOfTrust: manifest.Keygen, Injection: manifest.NotInjected, Time: time.Now(), Nonce: nonce, Proof: enr.Proof}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.ImportManifest(ctx, "hinted", &buf); err != nil {
		t.Fatalf("import: %v", err)
	}
	state := filepath.Join(dir, "hinted.json")
	if err := d.Save(state); err != nil {
		t.Fatal(err)
	}
	return state, enr.Identity
}

// signedIEF is the initial firmware, signed by vendor.
func signedIEF(t *testing.T, vendor crypto.Signer) []byte {
	t.Helper()
	img, err := firmware.New(firmware.Metadata{Type: firmware.TypeIEF}, device.IEFPayload())
	if err != nil {
		t.Fatal(err)
	}
	if err := img.Sign(vendor); err != nil {
		t.Fatal(err)
	}
	data, err := img.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return data
}
