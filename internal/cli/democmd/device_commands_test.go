package democmd_test

import (
	"context"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/app"
	"github.com/hallmark-iot/hallmark/internal/cli/clitest"
	"github.com/hallmark-iot/hallmark/internal/cli/cmdline"
	"github.com/hallmark-iot/hallmark/internal/cli/democmd"
	"github.com/hallmark-iot/hallmark/internal/httpapi"
	"github.com/hallmark-iot/hallmark/internal/identity"
)

// TestDeviceOnboardThroughCLI onboards a factory-made device with
// `hallmark device onboard`, then fetches and renews its credentials over
// mutual TLS with `hallmark device credentials`.
func TestDeviceOnboardThroughCLI(t *testing.T) {
	e := newCLIPlatform(t, false)
	p, batch, dir, server := e.p, e.batch, e.dir, e.server
	state := filepath.Join(batch.Dir(), "devices", "device-0000003.json") // puf, ml-dsa-65

	got := clitest.MustRun(t, nil, append([]string{"device", "onboard", "--state", state}, server...)...)
	if !strings.HasPrefix(got, "onboarded ") || !strings.Contains(got, "mqtts://localhost:8883") {
		t.Fatalf("device onboard printed %q", got)
	}
	before, _ := os.ReadFile(state)
	clitest.MustRun(t, nil, append([]string{"device", "credentials", "--state", state}, server...)...)
	clitest.MustRun(t, nil, append([]string{"device", "credentials", "--state", state, "--renew"}, server...)...)
	after, _ := os.ReadFile(state)
	if string(before) == string(after) {
		t.Fatal("renewal did not store a new certificate")
	}
	// A platform the device cannot authenticate: one line, nothing stored.
	code, _, errOut := clitest.Run(t, nil, "device", "onboard", "--state", state, "--server", p.URL(), "--ca-file", state)
	if code != 1 || strings.Count(errOut, "\n") != 1 {
		t.Fatalf("onboard with a bad CA file: exit %d, %q", code, errOut)
	}
	if again, _ := os.ReadFile(state); string(again) != string(after) {
		t.Fatal("a failed onboarding changed the device state")
	}
	// A device the platform never registered is refused.
	stranger := filepath.Join(dir, "stranger.json")
	clitest.MustRun(t, nil, "keys", "generate", "--alg", "ed25519", "-o", filepath.Join(dir, "v.pem"), "--pub-out", filepath.Join(dir, "v.pub"))
	clitest.MustRun(t, nil, "device", "new", "--class", "keygen", "--alg", "ed25519", "--root", filepath.Join(dir, "v.pub"), "-o", stranger)
	payload := filepath.Join(dir, "ief.bin")
	clitest.MustRun(t, nil, "device", "ief-payload", "-o", payload)
	clitest.MustRun(t, nil, "firmware", "sign", "--type", "ief", "--in", payload, "--key", filepath.Join(dir, "v.pem"), "-o", filepath.Join(dir, "ief.hmfw"))
	clitest.MustRun(t, nil, "device", "program", "--state", stranger, "--image", filepath.Join(dir, "ief.hmfw"))
	code, _, errOut = clitest.Run(t, nil, append([]string{"device", "onboard", "--state", stranger}, server...)...)
	if code != 1 || !strings.Contains(errOut, "proof-rejected") {
		t.Fatalf("unregistered device: exit %d, %q", code, errOut)
	}
}

// TestDeviceConnectThroughCLI runs the whole path with the CLI: a platform
// with a Mosquitto connector, `hallmark device onboard`, the registration
// shown by `hallmark admin device get`, then `hallmark device connect`
// publishing to the device's own topic and refused another's.
func TestDeviceConnectThroughCLI(t *testing.T) {
	ctx := context.Background()
	e := newCLIPlatform(t, true)
	p, batch, cloud, admin, server, rootFile := e.p, e.batch, e.cloud, e.admin, e.server, e.rootFile
	state := filepath.Join(batch.Dir(), "devices", "device-0000002.json")
	other := filepath.Join(batch.Dir(), "devices", "device-0000004.json")

	// Not onboarded: connect says what to do.
	code, _, errOut := clitest.Run(t, nil, "device", "connect", "--state", state)
	if code != 1 || !strings.Contains(errOut, "not onboarded") || strings.Count(errOut, "\n") != 1 {
		t.Fatalf("connect before onboarding: exit %d, %q", code, errOut)
	}
	got := clitest.MustRun(t, nil, append([]string{"device", "onboard", "--state", state}, server...)...)
	if !strings.Contains(got, cloud.Endpoint()) {
		t.Fatalf("the credentials do not name the broker: %q", got)
	}
	id := strings.Fields(strings.SplitN(got, "\n", 2)[0])[1]
	parsed, err := identity.Parse(id)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := democmd.WaitRegistered(ctx, admin, parsed); err != nil {
		t.Fatal(err)
	}
	adminArgs := []string{"admin", "--server", p.URL(), "--ca-file", rootFile, "--token-file", p.AdminTokenPath()}
	shown := clitest.MustRun(t, nil, append(adminArgs, "device", "get", id)...)
	if !strings.Contains(shown, "cloud:") || !strings.Contains(shown, "registered") || !strings.Contains(shown, "register mosquitto: done after 1 attempts") {
		t.Fatalf("admin device get:\n%s", shown)
	}
	got = clitest.MustRun(t, nil, "device", "connect", "--state", state, "--message", "hello")
	if !strings.HasPrefix(got, "published 5 bytes to devices/"+id+"/status") {
		t.Fatalf("device connect printed %q", got)
	}
	code, _, errOut = clitest.Run(t, nil, "device", "connect", "--state", state, "--topic", "devices/"+strings.Repeat("ab", 32)+"/status")
	if code != 1 || !strings.Contains(errOut, "not authorised") || strings.Count(errOut, "\n") != 1 {
		t.Fatalf("publish to another device's topic: exit %d, %q", code, errOut)
	}
	code, _, errOut = clitest.Run(t, nil, "device", "connect", "--state", state, "--topic", "devices/#")
	if code != 2 {
		t.Fatalf("wildcard topic: exit %d, %q", code, errOut)
	}
	// Revoked: the platform deregisters it and the broker refuses it.
	got = clitest.MustRun(t, nil, append([]string{"device", "onboard", "--state", other}, server...)...)
	otherID := strings.Fields(strings.SplitN(got, "\n", 2)[0])[1]
	clitest.MustRun(t, nil, append(adminArgs, "device", "revoke", otherID, "--reason", "returned")...)
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(clitest.MustRun(t, nil, append(adminArgs, "device", "get", otherID)...), "deregistered") {
		if time.Now().After(deadline) {
			t.Fatal("the revoked device was not deregistered within a minute")
		}
		time.Sleep(50 * time.Millisecond)
	}
	code, _, errOut = clitest.Run(t, nil, "device", "connect", "--state", other)
	if code != 1 || !strings.Contains(errOut, "not authorised") {
		t.Fatalf("revoked device connecting: exit %d, %q", code, errOut)
	}
}

// cliPlatform is a factory batch and a platform in-process that imported
// it, with (withCloud) a Mosquitto registering its devices.
type cliPlatform struct {
	dir, rootFile string
	batch         *democmd.Batch
	p             *app.Platform
	cloud         *democmd.Cloud
	admin         *httpapi.Client
	server        []string // --server and --ca-file for device commands
}

func newCLIPlatform(t *testing.T, withCloud bool) *cliPlatform {
	t.Helper()
	ctx := context.Background()
	e := &cliPlatform{dir: t.TempDir()}
	var out strings.Builder
	var err error
	if e.batch, err = democmd.Factory(ctx, &cmdline.Streams{Out: &out}, e.dir); err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(e.dir, "platform")
	if withCloud {
		if e.cloud, err = democmd.StartCloud(ctx, &cmdline.Streams{Out: &out}, e.dir, dataDir); err != nil || e.cloud == nil {
			t.Fatalf("start broker: %v %s", err, out.String())
		}
		t.Cleanup(e.cloud.Stop)
	}
	e.p, err = app.Start(ctx, app.Config{DataDir: dataDir, Listen: "127.0.0.1:0", ServerName: "localhost",
		Connectors: e.cloud.Connectors()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.p.Close() })
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(e.p.CA.RootPEM())
	token, _ := os.ReadFile(e.p.AdminTokenPath())
	e.admin, _ = httpapi.NewClient(e.p.URL(), strings.TrimSpace(string(token)), roots)
	if err := democmd.Import(ctx, e.admin, e.batch, e.cloud.Endpoint()); err != nil {
		t.Fatal(err)
	}
	e.rootFile = filepath.Join(e.dir, "root.pem")
	if err := os.WriteFile(e.rootFile, e.p.CA.RootPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	e.server = []string{"--server", e.p.URL(), "--ca-file", e.rootFile}
	return e
}
