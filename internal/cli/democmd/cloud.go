package democmd

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/hallmark-iot/hallmark/internal/app"
	"github.com/hallmark-iot/hallmark/internal/cli/cmdline"
	"github.com/hallmark-iot/hallmark/internal/connector"
	"github.com/hallmark-iot/hallmark/internal/connector/mosquitto"
	"github.com/hallmark-iot/hallmark/internal/connector/mosquitto/broker"
	"github.com/hallmark-iot/hallmark/internal/connector/mosquitto/crlsync"
	"github.com/hallmark-iot/hallmark/internal/httpapi"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/pki"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// demoSyncInterval is how often the demo's CRL synchroniser polls the
// platform: it bounds the time from a transition to the broker's refusal.
const demoSyncInterval = 100 * time.Millisecond

// demoCloud is the demo's customer cloud: a Mosquitto the demo starts,
// trusting the platform's CA and refusing what its CRL lists, the
// connector that manages it, and the CRL synchroniser that keeps the
// broker's CRL file current from the platform's revocation listener.
type demoCloud struct {
	broker    *broker.Broker
	connector *mosquitto.Connector
	roots     *x509.CertPool
	// revocationListen is the platform's revocation listener address;
	// crlURL and ocspURL are what it serves, issuing the CA that signs.
	revocationListen, crlURL, ocspURL string
	issuing                           *x509.Certificate
	stopSync                          context.CancelFunc
	syncDone                          chan struct{}
}

// startDemoCloud starts a broker for the platform whose data directory
// dataDir holds a CA (made by a first start of the platform, with its keys
// where caKeyURI says; "" is the data directory). It returns nil and says
// why when Mosquitto is not installed.
func startDemoCloud(ctx context.Context, s *cmdline.Streams, dir, dataDir, caKeyURI string) (*demoCloud, error) {
	if err := broker.Installed(); err != nil {
		fmt.Fprintf(s.Out, "\nCloud registration: skipped: %v.\n", err)
		return nil, nil
	}
	listen, err := freeAddr()
	if err != nil {
		return nil, err
	}
	// The first start makes the CA and its first CRL, which the broker
	// needs before it starts.
	p, err := app.Start(ctx, app.Config{DataDir: dataDir, Listen: "127.0.0.1:0", ServerName: "localhost", CAKeyURI: caKeyURI,
		RevocationListen: listen, RevocationBaseURL: "http://" + listen})
	if err != nil {
		return nil, err
	}
	c := &demoCloud{revocationListen: listen, crlURL: p.CA.CRLURL(), ocspURL: p.CA.OCSPURL(), issuing: p.CA.IssuingCertificate()}
	crlDER, crlErr := demoGet(ctx, c.crlURL, nil)
	serverCert, err := p.CA.IssueServer(ctx, []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)}, 24*time.Hour)
	trust, rootPEM := p.CA.DeviceTrustPEM(), p.CA.RootPEM()
	p.Close()
	if err = errors.Join(err, crlErr); err != nil {
		return nil, err
	}
	brokerDir := filepath.Join(dir, "mosquitto")
	if err := os.Mkdir(brokerDir, 0o700); err != nil {
		return nil, err
	}
	b, err := broker.Start(ctx, broker.Options{Dir: brokerDir, CAPEM: trust, ServerCert: serverCert,
		CRLPEM: pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: crlDER})})
	if err != nil {
		return nil, err
	}
	c.broker = b
	if c.roots, err = pki.ParseTrustBundle(rootPEM); err != nil {
		b.Stop()
		return nil, err
	}
	if c.connector, err = mosquitto.New(mosquitto.Config{BrokerURL: b.AdminURL(), TLS: pki.ClientTLSConfig(c.roots, nil),
		AdminUser: b.AdminUser, AdminPassword: b.AdminPassword}); err != nil {
		b.Stop()
		return nil, err
	}
	if err := c.startSync(); err != nil {
		b.Stop()
		return nil, err
	}
	return c, nil
}

// startSync runs a CRL synchroniser until stop: while the platform is
// down its fetches fail and are tried again.
func (c *demoCloud) startSync() error {
	syncer, err := crlsync.New(crlsync.Config{URL: c.crlURL, Issuers: []*x509.Certificate{c.issuing},
		File: c.broker.CRLFile(), Reloader: c.broker, Interval: demoSyncInterval})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.stopSync, c.syncDone = cancel, make(chan struct{})
	go func() { defer close(c.syncDone); _ = syncer.Run(ctx) }()
	return nil
}

// revocation is the platform's revocation listener and base URL, none
// without a cloud.
func (c *demoCloud) revocation() (listen, baseURL string) {
	if c == nil {
		return "", ""
	}
	return c.revocationListen, "http://" + c.revocationListen
}

// freeAddr is a free loopback address: the revocation base URL goes into
// certificates, so its port must be known before the platform starts.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func (c *demoCloud) connectors() []connector.Connector {
	if c == nil {
		return nil
	}
	return []connector.Connector{c.connector}
}

func (c *demoCloud) endpoint() string {
	if c == nil {
		return ""
	}
	return c.broker.DeviceURL()
}

func (c *demoCloud) stop() {
	if c != nil {
		c.stopSync()
		<-c.syncDone
		c.broker.Stop()
	}
}

// demoConnected is an onboarded device, ready to connect to the cloud.
type demoConnected struct {
	id   identity.ID
	cert tls.Certificate
	// num is its number in the onboarding table; class its class label
	// (inject-clear for an inject chip without a channel); alg its
	// enrolment suite; path its state file.
	num   int
	class string
	alg   sigalg.ID
	path  string
}

// publishAll waits until the platform has registered every device with the
// broker, then has each publish to its own topic and try another device's.
func (c *demoCloud) publishAll(ctx context.Context, s *cmdline.Streams, admin *httpapi.Client, devices []demoConnected) error {
	fmt.Fprintf(s.Out, "\nCloud: Mosquitto %s (mutual TLS, dynamic security); the platform registers each device in the background:\n\n", c.broker.DeviceURL())
	tw := tabwriter.NewWriter(s.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DEVICE\tIDENTITY\tCLOUD\tOWN TOPIC\tNEXT DEVICE'S TOPIC")
	for i, d := range devices {
		state, err := waitRegistered(ctx, admin, d.id)
		if err != nil {
			return fmt.Errorf("device %d: %w", i+1, err)
		}
		own := "devices/" + d.id.String() + "/status"
		if err := mosquitto.Publish(ctx, c.broker.DeviceURL(), d.cert, c.roots, own, []byte(`{"status":"online"}`)); err != nil {
			return fmt.Errorf("device %d publishing to its own topic: %w", i+1, err)
		}
		other := "devices/" + devices[(i+1)%len(devices)].id.String() + "/status"
		err = mosquitto.Publish(ctx, c.broker.DeviceURL(), d.cert, c.roots, other, []byte(`{"status":"spoofed"}`))
		if !errors.Is(err, mosquitto.ErrNotAuthorized) {
			return fmt.Errorf("device %d publishing to another device's topic: want refused, got %v", i+1, err)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\tpublished\trefused (not authorized)\n", i+1, d.id.Short(), state)
	}
	tw.Flush()
	_, err := fmt.Fprintf(s.Out, "\nEvery device published through the broker with its own certificate and was refused another device's topic.\n")
	return err
}

// waitRegistered polls the admin API until the device's cloud state is
// registered; a failed job or a minute without progress is an error.
func waitRegistered(ctx context.Context, admin *httpapi.Client, id identity.ID) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		d, err := admin.GetDevice(ctx, id)
		if err != nil {
			return "", err
		}
		switch d.Cloud.State {
		case store.CloudActive:
			return d.Cloud.State, nil
		case store.CloudFailed:
			return "", fmt.Errorf("cloud registration failed: %s", d.Cloud.LastError)
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("not registered with the broker after a minute (state %s, last error %q)", d.Cloud.State, d.Cloud.LastError)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
