package mosquitto_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/connector"
	"github.com/hallmark-iot/hallmark/internal/connector/mosquitto"
	"github.com/hallmark-iot/hallmark/internal/connector/mosquittotest"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/keys/softkms"
	"github.com/hallmark-iot/hallmark/internal/pki"
)

type env struct {
	ca     *pki.CA
	roots  *x509.CertPool
	broker *mosquittotest.Broker
	conn   *mosquitto.Connector
	server tls.Certificate
}

func (e *env) serverCert(testing.TB) tls.Certificate { return e.server }

func (e *env) adminTLS() *tls.Config {
	return &tls.Config{RootCAs: e.roots, MinVersion: tls.VersionTLS13}
}

func newEnv(t testing.TB) *env {
	t.Helper()
	ctx := context.Background()
	km, err := softkms.Open(ctx, filepath.Join(t.TempDir(), "keys"), []byte("test passphrase"), softkms.InsecureKDFIterations(1000))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { km.Close() })
	ca, err := pki.Open(ctx, km, t.TempDir(), pki.Config{})
	if err != nil {
		t.Fatal(err)
	}
	server, err := ca.IssueServer(ctx, []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	bundle := append(append([]byte{}, ca.RootPEM()...), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.IssuingCertificate().Raw})...)
	broker := mosquittotest.Start(t, mosquittotest.Options{CAPEM: bundle, ServerCert: server})
	roots := x509.NewCertPool()
	roots.AddCert(ca.RootCertificate())
	conn, err := mosquitto.New(mosquitto.Config{
		BrokerURL: broker.AdminURL(),
		TLS:       &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS13},
		AdminUser: broker.AdminUser, AdminPassword: broker.AdminPassword,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &env{ca: ca, roots: roots, broker: broker, conn: conn, server: server}
}

type device struct {
	id   identity.ID
	cert tls.Certificate
}

// newDevice issues a real device certificate, CN = identity, for a fresh
// ECDSA key.
func (e *env) newDevice(t testing.TB) device {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := identity.FromPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	iss, err := e.ca.IssueDevice(context.Background(), pki.DeviceRequest{Identity: id, PublicKey: &key.PublicKey, Validity: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return device{id: id, cert: tls.Certificate{Certificate: [][]byte{iss.DER, e.ca.IssuingCertificate().Raw}, PrivateKey: key}}
}

func (e *env) publish(t *testing.T, d device, topic string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return mosquitto.Publish(ctx, e.broker.DeviceURL(), d.cert, e.roots, topic, []byte(`{"t":21.5}`))
}

func (e *env) register(t *testing.T, d device) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.conn.Register(ctx, connector.Device{Identity: d.id}); err != nil {
		t.Fatalf("register: %v", err)
	}
}

func (e *env) deregister(t *testing.T, id identity.ID) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.conn.Deregister(ctx, id); err != nil {
		t.Fatalf("deregister: %v", err)
	}
}

func telemetry(d device) string { return "devices/" + d.id.String() + "/telemetry" }

func wantRefused(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, mosquitto.ErrNotAuthorized) {
		t.Fatalf("publish: got %v, want ErrNotAuthorized", err)
	}
}

func TestAccessControl(t *testing.T) {
	e := newEnv(t)
	a, b, stranger := e.newDevice(t), e.newDevice(t), e.newDevice(t)
	e.register(t, a)
	e.register(t, b)

	t.Run("own topic", func(t *testing.T) {
		if err := e.publish(t, a, telemetry(a)); err != nil {
			t.Fatalf("publish to own topic: %v", err)
		}
	})
	t.Run("other device's topic", func(t *testing.T) {
		wantRefused(t, e.publish(t, a, telemetry(b)))
	})
	t.Run("outside the device tree", func(t *testing.T) {
		wantRefused(t, e.publish(t, a, "devices/"+a.id.String()+"x/telemetry"))
	})
	t.Run("unregistered device", func(t *testing.T) {
		wantRefused(t, e.publish(t, stranger, telemetry(stranger)))
	})
	t.Run("register twice", func(t *testing.T) {
		e.register(t, a)
		if err := e.publish(t, a, telemetry(a)); err != nil {
			t.Fatalf("publish after second register: %v", err)
		}
	})
	t.Run("deregister", func(t *testing.T) {
		e.deregister(t, b.id)
		wantRefused(t, e.publish(t, b, telemetry(b)))
		e.deregister(t, b.id)
	})
	t.Run("deregister unknown", func(t *testing.T) {
		e.deregister(t, stranger.id)
	})
	t.Run("state in dynsec file", func(t *testing.T) {
		data, err := os.ReadFile(e.broker.DynsecFile())
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(data), mosquitto.RolePrefix+a.id.String()) || strings.Contains(string(data), b.id.String()) {
			t.Fatalf("dynsec file does not hold exactly device a's role")
		}
	})
}

func TestConcurrentRegister(t *testing.T) {
	e := newEnv(t)
	devs := make([]device, 8)
	errs := make(chan error, len(devs))
	for i := range devs {
		devs[i] = e.newDevice(t)
		go func(d device) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			errs <- e.conn.Register(ctx, connector.Device{Identity: d.id})
		}(devs[i])
	}
	for range devs {
		if err := <-errs; err != nil {
			t.Fatalf("register: %v", err)
		}
	}
	for _, d := range devs {
		if err := e.publish(t, d, telemetry(d)); err != nil {
			t.Fatalf("publish: %v", err)
		}
	}
}

func TestBrokerDown(t *testing.T) {
	e := newEnv(t)
	a, b := e.newDevice(t), e.newDevice(t)
	e.register(t, a)
	e.broker.Stop()

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	start := time.Now()
	err := e.conn.Register(ctx, connector.Device{Identity: b.id})
	if err == nil || errors.Is(err, connector.ErrPermanent) {
		t.Fatalf("register with the broker down: got %v, want a retryable error", err)
	}
	if time.Since(start) > 3*time.Second+500*time.Millisecond {
		t.Fatalf("register took %v with a 3s deadline", time.Since(start))
	}

	e.broker.Restart()
	e.register(t, b)
	for _, d := range []device{a, b} {
		if err := e.publish(t, d, telemetry(d)); err != nil {
			t.Fatalf("publish after restart: %v", err)
		}
	}
	wantRefused(t, e.publish(t, a, telemetry(b)))
}

func TestNewRejectsBadURL(t *testing.T) {
	for _, u := range []string{"", "mqtt://h:1883", "tcp://h:1", "mqtts://"} {
		t.Run(u, func(t *testing.T) {
			if _, err := mosquitto.New(mosquitto.Config{BrokerURL: u}); err == nil {
				t.Fatalf("New accepted %q", u)
			}
		})
	}
}

// BenchmarkRegister measures registrations through one connector (one
// MQTT connection, one command batch at a time) against a real broker,
// and the deregistrations that undo them: what one worker can do.
func BenchmarkRegister(b *testing.B) {
	e := newEnv(b)
	ctx := context.Background()
	ids := make([]identity.ID, b.N)
	for i := range ids {
		ids[i] = identity.FromSPKI([]byte(fmt.Sprintf("bench device %d", i)))
	}
	b.ResetTimer()
	for i := range b.N {
		if err := e.conn.Register(ctx, connector.Device{Identity: ids[i]}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "registrations/s")
	b.StopTimer()
	start := time.Now()
	for _, id := range ids {
		if err := e.conn.Deregister(ctx, id); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "deregistrations/s")
}
