package democmd_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/app"
	"github.com/hallmark-iot/hallmark/internal/cli/clitest"
	"github.com/hallmark-iot/hallmark/internal/cli/cmdline"
	"github.com/hallmark-iot/hallmark/internal/cli/democmd"
	"github.com/hallmark-iot/hallmark/internal/device"
	"github.com/hallmark-iot/hallmark/internal/httpapi"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/onboarding/onboardpki"
	"github.com/hallmark-iot/hallmark/internal/pki"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// TestDeviceOnboardThroughCLI onboards a factory-made device with
// `hallmark device onboard`, then fetches and renews its credentials over
// mutual TLS with `hallmark device credentials`.
func TestDeviceOnboardThroughCLI(t *testing.T) {
	e := newCLIPlatform(t, false)
	p, batch, dir, server := e.p, e.batch, e.dir, e.server
	state := filepath.Join(batch.Dir(), "devices", "device-0000003.json") // puf, ml-dsa-65

	got := clitest.MustRun(t, nil, append([]string{"device", "onboard", "--state", state}, server...)...)
	if !strings.HasPrefix(got, "onboarded ") || !strings.Contains(got, "cloud endpoint "+e.endpoint+"\n") {
		t.Fatalf("device onboard printed %q", got)
	}
	// No broker there: connect says where the endpoint came from.
	code, _, errOut := clitest.Run(t, nil, "device", "connect", "--state", state)
	if code != 1 || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "the endpoint "+e.endpoint+" comes from the product's --cloud-endpoint") ||
		!strings.Contains(errOut, "must name a reachable MQTT broker") {
		t.Fatalf("connect to no broker: exit %d, %q", code, errOut)
	}
	before, _ := os.ReadFile(state)
	clitest.MustRun(t, nil, append([]string{"device", "credentials", "--state", state}, server...)...)
	clitest.MustRun(t, nil, append([]string{"device", "credentials", "--state", state, "--renew"}, server...)...)
	after, _ := os.ReadFile(state)
	if string(before) == string(after) {
		t.Fatal("renewal did not store a new certificate")
	}
	// A platform the device cannot authenticate: one line, nothing stored.
	code, _, errOut = clitest.Run(t, nil, "device", "onboard", "--state", state, "--server", p.URL(), "--ca-file", state)
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
	if !regexp.MustCompile(`(?m)^cloud:\s+active$`).MatchString(shown) || !strings.Contains(shown, "register mosquitto: done after 1 attempts") {
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
	endpoint      string // the product's cloud endpoint
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
	roots, err := pki.ParseTrustBundle(e.p.CA.RootPEM())
	if err != nil {
		t.Fatal(err)
	}
	token, _ := os.ReadFile(e.p.AdminTokenPath())
	e.admin, _ = httpapi.NewClient(e.p.URL(), strings.TrimSpace(string(token)), roots)
	e.endpoint = e.cloud.Endpoint()
	if e.endpoint == "" {
		e.endpoint = closedEndpoint(t)
	}
	if err := democmd.Import(ctx, e.admin, e.batch, e.endpoint); err != nil {
		t.Fatal(err)
	}
	e.rootFile = filepath.Join(e.dir, "root.pem")
	if err := os.WriteFile(e.rootFile, e.p.CA.RootPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	e.server = []string{"--server", e.p.URL(), "--ca-file", e.rootFile}
	return e
}

// TestDeviceOnboardOperationalSuites: the operational key is the device's
// TLS client key, so device onboard refuses ML-DSA suites (which TLS cannot
// sign with) with one usage line and changes nothing, while Ed25519, which
// TLS 1.3 signs with, works end to end. A device that already holds
// ML-DSA credentials (onboarded before the refusal) is told why it cannot
// use them, not that the platform does not recognise it.
func TestDeviceOnboardOperationalSuites(t *testing.T) {
	e := newCLIPlatform(t, false)
	state := filepath.Join(e.batch.Dir(), "devices", "device-0000001.json")
	before, _ := os.ReadFile(state)
	for _, alg := range []string{"ml-dsa-65", "mldsa44", "ML-DSA-87"} {
		code, out, errOut := clitest.Run(t, nil, append([]string{"device", "onboard", "--state", state, "--op-alg", alg}, e.server...)...)
		if code != 2 || out != "" || strings.Count(errOut, "\n") != 1 ||
			!strings.Contains(errOut, "TLS cannot sign with") || !strings.Contains(errOut, "use ecdsa-p256 or ed25519") {
			t.Errorf("--op-alg %s: exit %d, %q, %q", alg, code, out, errOut)
		}
	}
	if after, _ := os.ReadFile(state); string(after) != string(before) {
		t.Fatal("a refused onboarding changed the device state")
	}
	clitest.MustRun(t, nil, append([]string{"device", "onboard", "--state", state, "--op-alg", "ed25519"}, e.server...)...)
	clitest.MustRun(t, nil, append([]string{"device", "credentials", "--state", state, "--renew"}, e.server...)...)

	// Credentials for an ML-DSA operational key, as device onboard once
	// stored them.
	old := filepath.Join(e.batch.Dir(), "devices", "device-0000002.json")
	onboardWithOperationalSuite(t, e, old, sigalg.MLDSA65)
	code, _, errOut := clitest.Run(t, nil, append([]string{"device", "credentials", "--state", old}, e.server...)...)
	if code != 1 || strings.Count(errOut, "\n") != 1 || strings.Contains(errOut, "not recognised") ||
		!strings.Contains(errOut, "operational key is ml-dsa-65, which TLS cannot sign with") || !strings.Contains(errOut, "--op-alg ecdsa-p256 or ed25519") {
		t.Fatalf("credentials of an ML-DSA operational key: exit %d, %q", code, errOut)
	}
	// Onboarding again, as the message says, gives usable credentials.
	clitest.MustRun(t, nil, append([]string{"device", "onboard", "--state", old}, e.server...)...)
	clitest.MustRun(t, nil, append([]string{"device", "credentials", "--state", old}, e.server...)...)
}

// onboardWithOperationalSuite onboards the device in state with an
// operational key of suite and stores the credentials, through the
// library, as the CLI did before it refused suites TLS cannot use.
func onboardWithOperationalSuite(t *testing.T, e *cliPlatform, state string, suite sigalg.ID) {
	t.Helper()
	dev, err := device.Load(state, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := dev.Boot(); err != nil {
		t.Fatal(err)
	}
	roots, err := pki.ParseTrustBundle(e.p.CA.RootPEM())
	if err != nil {
		t.Fatal(err)
	}
	client, err := httpapi.NewOnboardingClient(e.p.URL(), cmdline.PlatformHTTPClient(roots, nil), onboardpki.CSRs{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := client.OnboardDevice(context.Background(), dev, suite, nil)
	if err != nil {
		t.Fatal(err)
	}
	dev.SetCredentials(device.Credentials{CertificateChain: got.Credentials.CertificateChain, TrustBundle: got.Credentials.TrustBundle,
		CloudEndpoint: got.Credentials.CloudEndpoint, OperationalAlg: suite})
	if err := dev.Save(state); err != nil {
		t.Fatal(err)
	}
}

// closedEndpoint is a broker URL on which nothing listens: a port of
// this machine just released.
func closedEndpoint(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "mqtts://" + addr
}
