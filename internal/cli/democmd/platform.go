package democmd

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hallmark-iot/hallmark/internal/app"
	"github.com/hallmark-iot/hallmark/internal/cli/cmdline"
	"github.com/hallmark-iot/hallmark/internal/connector"
	"github.com/hallmark-iot/hallmark/internal/device"
	"github.com/hallmark-iot/hallmark/internal/httpapi"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/onboarding"
	"github.com/hallmark-iot/hallmark/internal/onboarding/onboardpki"
	"github.com/hallmark-iot/hallmark/internal/pki"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// demoPlatform starts the platform in-process on a free port, imports the
// factory's manifest through the admin API and onboards every device of
// the batch over TLS.
//
// When Mosquitto is installed, the platform's first start only makes its
// CA; the demo then starts a broker that trusts it, starts the platform
// again with a connector for that broker, and has every device publish.
//
// With hw (demo --hsm) the platform keeps its keys in hw's token, which
// the demo checks and shows, and the batch holds a TPM gateway.
//
// With keep (demo --keep-running) the platform, and the broker, serve
// after the last step until ctx ends.
func demoPlatform(ctx context.Context, s *cmdline.Streams, dir string, batch *demoBatch, hw *demoHardware, keep bool) error {
	dataDir := filepath.Join(dir, "platform")
	cloud, err := startDemoCloud(ctx, s, dir, dataDir, hw.keyURI())
	if err != nil {
		return fmt.Errorf("cloud: %w", err)
	}
	defer cloud.stop()
	revocationListen, revocationBase := cloud.revocation()
	p, err := app.Start(ctx, app.Config{DataDir: dataDir, Listen: "127.0.0.1:0", ServerName: "localhost", CAKeyURI: hw.keyURI(),
		Connectors: cloud.connectors(), Worker: connector.WorkerConfig{Poll: 20 * time.Millisecond},
		RevocationListen: revocationListen, RevocationBaseURL: revocationBase})
	if err != nil {
		return err
	}
	defer p.Close()
	roots, err := pki.ParseTrustBundle(p.CA.RootPEM())
	if err != nil {
		return err
	}
	token, err := os.ReadFile(p.AdminTokenPath())
	if err != nil {
		return err
	}
	admin, err := httpapi.NewClient(p.URL(), strings.TrimSpace(string(token)), roots)
	if err != nil {
		return err
	}
	if err := demoImport(ctx, admin, batch, cloud.endpoint()); err != nil {
		return err
	}
	fmt.Fprintf(s.Out, "\nPlatform: %s (CA %s, TLS 1.3); manifest imported.\n", p.URL(), p.CA.Suite())
	showConsole(s, p, keep)
	if hw != nil {
		if err := hw.showCAKeys(ctx, s, p, dataDir, roots); err != nil {
			return err
		}
	}
	fmt.Fprintf(s.Out, "Onboarding every device:\n\n")
	rootPath := filepath.Join(dir, "root.pem")
	if err := os.WriteFile(rootPath, p.CA.RootPEM(), 0o644); err != nil {
		return err
	}
	client, err := httpapi.NewOnboardingClient(p.URL(), cmdline.PlatformHTTPClient(roots, nil), onboardpki.CSRs{})
	if err != nil {
		return err
	}
	states, _ := filepath.Glob(filepath.Join(batch.dir, "devices", "device-*.json"))
	tw := tabwriter.NewWriter(s.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DEVICE\tCLASS\tALGORITHM\tIDENTITY\tSTATE\tCERTIFICATE\tTIME")
	var onboarded []demoConnected
	for i, path := range states {
		row, dev, err := demoOnboard(ctx, client, admin, path, batch.ief, p.CA)
		if err != nil {
			return fmt.Errorf("onboard device %d: %w", i+1, err)
		}
		dev.num = i + 1
		onboarded = append(onboarded, dev)
		fmt.Fprintf(tw, "%d\t%s\n", i+1, row)
	}
	tw.Flush()
	if _, err = fmt.Fprintf(s.Out, "\nEvery device proved its identity to a fresh challenge and holds a certificate chain that verifies to the platform's root.\n"); err != nil {
		return err
	}
	if hw != nil {
		if err := hw.showTPMDevice(ctx, s, onboarded); err != nil {
			return err
		}
	}
	if cloud != nil {
		if err := cloud.publishAll(ctx, s, admin, onboarded); err != nil {
			return err
		}
		// The lifecycle takes a device the over-the-air part leaves alone.
		if err := cloud.demoLifecycle(ctx, s, admin, lifecycleDevice(onboarded)); err != nil {
			return err
		}
	}
	if err := demoOTA(ctx, s, p, admin, roots, batch, cloud, onboarded, hw); err != nil || !keep {
		return err
	}
	return keepRunning(ctx, s, p, dataDir)
}

// lifecycleDevice is the first device not enrolled with ECDSA P-256: the
// over-the-air part migrates ECDSA P-256 devices.
func lifecycleDevice(devices []demoConnected) demoConnected {
	for _, d := range devices {
		if d.alg != sigalg.ECDSAP256 {
			return d
		}
	}
	return devices[0]
}

func demoImport(ctx context.Context, admin *httpapi.Client, batch *demoBatch, endpoint string) error {
	if endpoint == "" {
		endpoint = "mqtts://localhost:8883"
	}
	pubPEM, err := sigalg.EncodePublicKeyPEM(batch.stationPub)
	if err != nil {
		return err
	}
	if _, err := admin.CreateStation(ctx, httpapi.StationRequest{Name: "demo line 1", PublicKey: string(pubPEM)}); err != nil {
		return fmt.Errorf("register station: %w", err)
	}
	if _, err := admin.CreateProduct(ctx, httpapi.ProductRequest{ID: "demo-sensor", Name: "Demo sensor",
		CertValidity: "8760h", CloudEndpoint: endpoint}); err != nil {
		return fmt.Errorf("create product: %w", err)
	}
	f, err := os.Open(batch.manifest)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := admin.ImportManifest(ctx, "demo-sensor", f); err != nil {
		return fmt.Errorf("import manifest: %w", err)
	}
	return nil
}

// demoOnboard onboards one device and returns its table row.
func demoOnboard(ctx context.Context, client *onboarding.Client, admin *httpapi.Client, path string, ief []byte, ca *pki.CA) (string, demoConnected, error) {
	var none demoConnected
	start := time.Now()
	dev, err := device.Load(path, nil)
	if err != nil {
		return "", none, err
	}
	dev.Program(ief)
	if err := dev.Boot(); err != nil {
		return "", none, err
	}
	got, err := client.OnboardDevice(ctx, dev, sigalg.ECDSAP256, nil)
	if err != nil {
		return "", none, err
	}
	took := time.Since(start)
	if err := got.Verify(caVerifier(ca)); err != nil {
		return "", none, err
	}
	// The device keeps its credentials, as its firmware would: its update
	// agent presents them later.
	dev.SetCredentials(device.Credentials{CertificateChain: got.Credentials.CertificateChain, TrustBundle: got.Credentials.TrustBundle,
		CloudEndpoint: got.Credentials.CloudEndpoint, OperationalAlg: sigalg.ECDSAP256})
	if err := dev.Save(path); err != nil {
		return "", none, err
	}
	registered, err := admin.GetDevice(ctx, got.Identity)
	if err != nil {
		return "", none, err
	}
	class := string(dev.Class())
	if dev.Class() == device.ClassInject && !dev.HasChannel() {
		class = "inject-clear"
	}
	cert := tls.Certificate{Certificate: got.Chain, PrivateKey: got.Operational}
	return fmt.Sprintf("%s\t%s\t%s\t%s\tverified\t%s", class, dev.Algorithm(), got.Identity.Short(), registered.State,
		took.Round(100*time.Microsecond)), demoConnected{id: got.Identity, cert: cert, class: class, alg: dev.Algorithm(), path: path}, nil
}

// caVerifier verifies an issued chain against the platform's CA and checks
// that the leaf names the device.
func caVerifier(ca *pki.CA) onboarding.ChainVerifier {
	return func(chain [][]byte, id identity.ID) (*x509.Certificate, error) {
		leaf, got, err := ca.VerifyDevice(chain, time.Now())
		if err == nil && got != id {
			err = fmt.Errorf("the leaf names %s, not %s", got, id)
		}
		return leaf, err
	}
}
