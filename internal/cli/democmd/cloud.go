package democmd

import (
	"context"
	"crypto/tls"
	"crypto/x509"
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
	"github.com/hallmark-iot/hallmark/internal/httpapi"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/pki"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// demoCloud is the demo's customer cloud: a Mosquitto the demo starts,
// trusting the platform's CA, and the connector that manages it.
type demoCloud struct {
	broker    *broker.Broker
	connector *mosquitto.Connector
	roots     *x509.CertPool
}

// startDemoCloud starts a broker for the platform whose data directory
// dataDir holds a CA (made by a first start of the platform). It returns
// nil and says why when Mosquitto is not installed.
func startDemoCloud(ctx context.Context, s *cmdline.Streams, dir, dataDir string) (*demoCloud, error) {
	if err := broker.Installed(); err != nil {
		fmt.Fprintf(s.Out, "\nCloud registration: skipped: %v.\n", err)
		return nil, nil
	}
	p, err := app.Start(ctx, app.Config{DataDir: dataDir, Listen: "127.0.0.1:0", ServerName: "localhost"})
	if err != nil {
		return nil, err
	}
	serverCert, err := p.CA.IssueServer(ctx, []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)}, 24*time.Hour)
	trust, rootPEM := p.CA.DeviceTrustPEM(), p.CA.RootPEM()
	p.Close()
	if err != nil {
		return nil, err
	}
	brokerDir := filepath.Join(dir, "mosquitto")
	if err := os.Mkdir(brokerDir, 0o700); err != nil {
		return nil, err
	}
	b, err := broker.Start(ctx, broker.Options{Dir: brokerDir, CAPEM: trust, ServerCert: serverCert})
	if err != nil {
		return nil, err
	}
	roots, err := pki.ParseTrustBundle(rootPEM)
	if err != nil {
		b.Stop()
		return nil, err
	}
	conn, err := mosquitto.New(mosquitto.Config{BrokerURL: b.AdminURL(), TLS: pki.ClientTLSConfig(roots, nil),
		AdminUser: b.AdminUser, AdminPassword: b.AdminPassword})
	if err != nil {
		b.Stop()
		return nil, err
	}
	return &demoCloud{broker: b, connector: conn, roots: roots}, nil
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
		c.broker.Stop()
	}
}

// demoConnected is an onboarded device, ready to connect to the cloud.
type demoConnected struct {
	id   identity.ID
	cert tls.Certificate
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
