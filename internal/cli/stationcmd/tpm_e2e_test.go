package stationcmd_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/app"
	"github.com/hallmark-iot/hallmark/internal/cli/clitest"
	"github.com/hallmark-iot/hallmark/internal/connector/mosquittotest"
	"github.com/hallmark-iot/hallmark/internal/httpapi"
	"github.com/hallmark-iot/hallmark/internal/pki"
	"github.com/hallmark-iot/hallmark/internal/tpm/tpmtest"
)

// newGatewayFactory makes the vendor key, the IEF and the station key of a
// gateway line with the CLI: ECDSA P-256 throughout, as the TPM is.
func newGatewayFactory(t *testing.T) factoryFiles {
	t.Helper()
	t.Setenv("HALLMARK_KEYSTORE_PASSPHRASE", factoryPassphrase)
	d := t.TempDir()
	f := factoryFiles{dir: d, vendor: filepath.Join(d, "vendor.pem"), vendorPub: filepath.Join(d, "vendor.pub"),
		ief: filepath.Join(d, "ief.hmfw"), keystore: filepath.Join(d, "keystore"), stationPub: filepath.Join(d, "station.pub")}
	clitest.MustRun(t, nil, "keys", "generate", "--alg", "ecdsa-p256", "-o", f.vendor, "--pub-out", f.vendorPub)
	payload := filepath.Join(d, "ief.bin")
	clitest.MustRun(t, nil, "device", "ief-payload", "-o", payload)
	clitest.MustRun(t, nil, "firmware", "sign", "--type", "ief", "--in", payload, "--key", f.vendor, "-o", f.ief)
	clitest.MustRun(t, nil, "station", "key", "create", "--keystore", f.keystore, "--alg", "ecdsa-p256", "--pub-out", f.stationPub)
	return f
}

// TestTPMGatewayFromStationToBroker takes a tpm-class gateway, whose keys
// live in a real TPM 2.0 simulator, through the whole chain with the CLI:
// the station enrols it into a signed manifest, the platform imports it,
// `device onboard` proves possession with the TPM and gets a certificate
// for a second key made in the TPM, `device credentials` renews it over
// mutual TLS with that key, and `device connect` publishes to a Mosquitto
// that authenticates the gateway by the same key. The state file never
// holds a private key.
func TestTPMGatewayFromStationToBroker(t *testing.T) {
	ctx := t.Context()
	sim := tpmtest.Start(t)
	f := newGatewayFactory(t)
	batch := filepath.Join(f.dir, "batch")
	out := clitest.MustRun(t, nil, "station", "run", "--dir", batch, "--count", "2", "--ief", f.ief, "--root", f.vendorPub,
		"--keystore", f.keystore, "--classes", "tpm", "--algs", "ecdsa-p256", "--tpm", sim.String())
	if !strings.Contains(out, "2 enrolled, 0 rejected") || !strings.Contains(out, "tpm/ecdsa-p256") {
		t.Fatalf("station output:\n%s", out)
	}
	manifestPath := filepath.Join(batch, "manifest.jsonl")
	clitest.MustRun(t, nil, "manifest", "verify", "--station", f.stationPub, "--in", manifestPath)

	p, err := app.Start(ctx, app.Config{DataDir: filepath.Join(f.dir, "platform"), Listen: "127.0.0.1:0", ServerName: "localhost",
		Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	brokerCert, err := p.CA.IssueServer(ctx, []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	broker := mosquittotest.Start(t, mosquittotest.Options{CAPEM: p.CA.DeviceTrustPEM(), ServerCert: brokerCert, Pattern: true})

	roots, err := pki.ParseTrustBundle(p.CA.RootPEM())
	if err != nil {
		t.Fatal(err)
	}
	token, _ := os.ReadFile(p.AdminTokenPath())
	admin, err := httpapi.NewClient(p.URL(), strings.TrimSpace(string(token)), roots)
	if err != nil {
		t.Fatal(err)
	}
	stationPEM, _ := os.ReadFile(f.stationPub)
	if _, err := admin.CreateStation(ctx, httpapi.StationRequest{Name: "gateway line", PublicKey: string(stationPEM)}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CreateProduct(ctx, httpapi.ProductRequest{ID: "gateway", Name: "Gateway", CertValidity: "24h",
		CloudEndpoint: broker.DeviceURL()}); err != nil {
		t.Fatal(err)
	}
	manifestData, _ := os.ReadFile(manifestPath)
	res, err := admin.ImportManifest(ctx, "gateway", bytes.NewReader(manifestData))
	if err != nil {
		t.Fatal(err)
	}
	if res.Imported != 2 {
		t.Fatalf("import: %+v", res)
	}

	rootFile := filepath.Join(f.dir, "root.pem")
	os.WriteFile(rootFile, p.CA.RootPEM(), 0o644)
	server := []string{"--server", p.URL(), "--ca-file", rootFile}
	state := filepath.Join(batch, "devices", "device-0000000.json")
	got := clitest.MustRun(t, nil, append([]string{"device", "onboard", "--state", state}, server...)...)
	if !strings.HasPrefix(got, "onboarded ") || !strings.Contains(got, broker.DeviceURL()) {
		t.Fatalf("device onboard printed %q", got)
	}
	id := strings.Fields(got)[1]
	before, _ := os.ReadFile(state)
	clitest.MustRun(t, nil, append([]string{"device", "credentials", "--state", state, "--renew"}, server...)...)
	if after, _ := os.ReadFile(state); bytes.Equal(before, after) {
		t.Fatal("renewal over mutual TLS did not store a new certificate")
	}
	got = clitest.MustRun(t, nil, "device", "connect", "--state", state, "--message", "hello from a TPM")
	if !strings.HasPrefix(got, "published 16 bytes to devices/"+id+"/status") {
		t.Fatalf("device connect printed %q", got)
	}

	// The state: the TPM's address and wrapped blobs, an empty key store.
	var st struct {
		Class    string                     `json:"class"`
		KeyStore map[string]json.RawMessage `json:"protected_key_store"`
		TPM      struct {
			Address        string          `json:"address"`
			EnrolmentKey   json.RawMessage `json:"enrolment_key"`
			OperationalKey json.RawMessage `json:"operational_key"`
		} `json:"tpm"`
	}
	raw, _ := os.ReadFile(state)
	if err := json.Unmarshal(raw, &st); err != nil {
		t.Fatal(err)
	}
	if st.Class != "tpm" || st.TPM.Address != sim.String() || st.TPM.EnrolmentKey == nil || st.TPM.OperationalKey == nil {
		t.Fatalf("state: class %s, tpm %+v", st.Class, st.TPM)
	}
	for name := range st.KeyStore {
		t.Errorf("key store of a tpm gateway holds %s", name)
	}

	// The second gateway of the batch, moved to a TPM that never held its
	// keys, is refused and left as it was.
	other := filepath.Join(batch, "devices", "device-0000001.json")
	code, _, errOut := clitest.Run(t, nil, "device", "tpm", "--state", other, "--tpm", tpmtest.Start(t).String())
	if code != 1 || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "does not belong to this TPM") {
		t.Fatalf("device tpm to a foreign TPM: exit %d, %q", code, errOut)
	}
	if got := clitest.MustRun(t, nil, "device", "tpm", "--state", other); strings.TrimSpace(got) != sim.String() {
		t.Fatalf("device tpm printed %q", got)
	}
}
