package app

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/connector"
	"github.com/hallmark-iot/hallmark/internal/connector/mosquitto"
	"github.com/hallmark-iot/hallmark/internal/connector/mosquitto/crlsync"
	"github.com/hallmark-iot/hallmark/internal/connector/mosquittotest"
	"github.com/hallmark-iot/hallmark/internal/httpapi"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/pki"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// brokerSyncInterval is how often the tests' CRL synchroniser polls: the
// bound on the time from a transition to the broker's refusal, measured
// below.
const brokerSyncInterval = 250 * time.Millisecond

// enforcedCloud is a platform serving revocation, a Mosquitto with a
// crlfile, and a CRL synchroniser between them, as an operator runs them.
type enforcedCloud struct {
	p      *Platform
	broker *mosquittotest.Broker
	roots  *x509.CertPool
	admin  *httpapi.Client
}

func newEnforcedCloud(t *testing.T, mode mosquitto.Mode) *enforcedCloud {
	t.Helper()
	dir := newDataDir(t)
	cfg := Config{DataDir: dir, Listen: "127.0.0.1:0", ServerName: "localhost",
		RevocationListen: "127.0.0.1:0", RevocationBaseURL: testRevocationBase, Worker: fastWorker}
	// A first start makes the CA and its first CRL, for the broker.
	first, err := Start(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	server, err := first.CA.IssueServer(t.Context(), []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	_, crlDER := getBody(t, first.RevocationURL()+pki.CRLPath+first.CA.CRLName()+".crl")
	trust := first.CA.DeviceTrustPEM()
	first.Close()
	c := &enforcedCloud{roots: x509.NewCertPool()}
	c.broker = mosquittotest.Start(t, mosquittotest.Options{CAPEM: trust, ServerCert: server,
		CRLPEM: pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: crlDER}), Pattern: mode == mosquitto.ModePattern})
	c.roots.AddCert(first.CA.RootCertificate())
	conn, err := mosquitto.New(mosquitto.Config{Mode: mode, BrokerURL: c.broker.AdminURL(),
		TLS:       &tls.Config{RootCAs: c.roots, MinVersion: tls.VersionTLS13},
		AdminUser: c.broker.AdminUser, AdminPassword: c.broker.AdminPassword, RekickAfter: 4 * brokerSyncInterval})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Connectors = []connector.Connector{conn}
	if c.p, err = Start(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.p.Close() })
	c.admin = adminClient(t, c.p)
	syncer, err := crlsync.New(crlsync.Config{URL: c.p.RevocationURL() + pki.CRLPath + c.p.CA.CRLName() + ".crl",
		Issuers: []*x509.Certificate{c.p.CA.IssuingCertificate()}, File: c.broker.CRLFile(),
		Reloader: crlsync.PIDFile(c.broker.PIDFile()), Interval: brokerSyncInterval})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = syncer.Run(t.Context()) }()
	t.Cleanup(func() { <-done }) // t.Context ends first
	return c
}

// handshake connects as the device: nil, or an error wrapping
// mosquitto.ErrCertificateRefused when the broker refuses its certificate.
func (c *enforcedCloud) handshake(t *testing.T, cert *tls.Certificate) error {
	t.Helper()
	s, err := mosquitto.Connect(t.Context(), c.broker.DeviceURL(), *cert, c.roots)
	if err == nil {
		s.Close()
	}
	return err
}

// transition makes the admin call and measures what the broker does: the
// time until the open connection is dropped and until a new handshake is
// refused (wantRefused) or accepted and publishing works again.
func (c *enforcedCloud) transition(t *testing.T, id identity.ID, cert *tls.Certificate, name string, wantRefused bool) {
	t.Helper()
	var open *mosquitto.Session
	if wantRefused {
		var err error
		if open, err = mosquitto.Connect(t.Context(), c.broker.DeviceURL(), *cert, c.roots); err != nil {
			t.Fatalf("%s: connect before: %v", name, err)
		}
		defer open.Close()
	}
	start := time.Now()
	if _, err := c.admin.TransitionDevice(t.Context(), id, name, "broker enforcement test"); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	var dropped, decided time.Duration
	deadline := time.Now().Add(30 * time.Second)
	for dropped == 0 || decided == 0 {
		if open != nil && dropped == 0 {
			select {
			case <-open.Done():
				dropped = time.Since(start)
			default:
			}
		} else if open == nil {
			dropped = -1
		}
		if decided == 0 {
			// A refusal may also arrive as a connection reset (TLS 1.3: the
			// broker can close before the CONNECT reaches it); only a TLS
			// alert counts as refused, anything else is tried again.
			err := c.handshake(t, cert)
			refused := errors.Is(err, mosquitto.ErrCertificateRefused)
			if (wantRefused && refused) || (!wantRefused && err == nil && c.publishes(t, id, cert)) {
				decided = time.Since(start)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: after 30s: connection dropped after %v, handshake decided after %v (0: not yet)", name, dropped, decided)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if wantRefused {
		t.Logf("%s: open connection dropped %v after the admin call; new handshake refused after %v", name,
			dropped.Round(time.Millisecond), decided.Round(time.Millisecond))
	} else {
		t.Logf("%s: device connects and publishes again %v after the admin call", name, decided.Round(time.Millisecond))
	}
}

func (c *enforcedCloud) publishes(t *testing.T, id identity.ID, cert *tls.Certificate) bool {
	t.Helper()
	err := mosquitto.Publish(t.Context(), c.broker.DeviceURL(), *cert, c.roots, "devices/"+id.String()+"/status", []byte("up"))
	return err == nil
}

// TestBrokerEnforcesLifecycle: in both broker modes, a device onboarded
// and connected is suspended through the admin API: its open connection
// is dropped (the connector's kick) and its next TLS handshake refused
// (the platform's CRL, synchronised into the broker's crlfile); resumed,
// it connects and publishes again; revoked, it is refused again. The log
// holds the measured times.
func TestBrokerEnforcesLifecycle(t *testing.T) {
	for _, mode := range []mosquitto.Mode{mosquitto.ModeDynsec, mosquitto.ModePattern} {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			c := newEnforcedCloud(t, mode)
			f := newFleet(t, sigalg.ECDSAP256, sigalg.Ed25519)
			f.register(t, c.admin)
			certs := make([]*tls.Certificate, len(f.ids))
			for i, d := range f.devices {
				var err error
				if _, certs[i], err = onboard(t, c.p, d, f.ids[i]); err != nil {
					t.Fatal(err)
				}
			}
			waitCloud(t, c.admin, f.ids, store.CloudActive)
			for i, id := range f.ids {
				if !c.publishes(t, id, certs[i]) {
					t.Fatalf("device %s cannot publish once onboarded", id.Short())
				}
			}
			c.transition(t, f.ids[0], certs[0], "suspend", true)
			c.transition(t, f.ids[0], certs[0], "resume", false)
			c.transition(t, f.ids[0], certs[0], "revoke", true)
			c.transition(t, f.ids[1], certs[1], "decommission", true)
		})
	}
}
