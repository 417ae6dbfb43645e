package mosquitto_test

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/connector"
	"github.com/hallmark-iot/hallmark/internal/connector/mosquitto"
	"github.com/hallmark-iot/hallmark/internal/connector/mosquitto/crlsync"
	"github.com/hallmark-iot/hallmark/internal/connector/mosquittotest"
	"github.com/hallmark-iot/hallmark/internal/pki"
)

// crlServer serves the CA's CRL, with an ETag, as the platform's
// revocation listener does; revoke and release change what it lists.
type crlServer struct {
	t      testing.TB
	ca     *pki.CA
	mu     sync.Mutex
	number int64
	held   map[[pki.SerialSize]byte]bool
	der    []byte
	srv    *httptest.Server
}

func newCRLServer(t testing.TB, ca *pki.CA) *crlServer {
	s := &crlServer{t: t, ca: ca, held: map[[pki.SerialSize]byte]bool{}}
	s.sign()
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		der := s.der
		s.mu.Unlock()
		sum := sha256.Sum256(der)
		w.Header().Set("ETag", `"`+hex.EncodeToString(sum[:8])+`"`)
		http.ServeContent(w, r, "", time.Time{}, strings.NewReader(string(der)))
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *crlServer) url() string { return s.srv.URL + "/crl/issuing.crl" }

func (s *crlServer) sign() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.number++
	now := time.Now().Add(-time.Second)
	var entries []pki.CRLEntry
	for serial := range s.held {
		entries = append(entries, pki.CRLEntry{Serial: serial, RevokedAt: now, Reason: pki.ReasonCertificateHold})
	}
	der, err := s.ca.CreateCRL(context.Background(), pki.CRLRequest{Number: big.NewInt(s.number),
		ThisUpdate: now, NextUpdate: now.Add(time.Hour), Entries: entries})
	if err != nil {
		s.t.Fatal(err)
	}
	s.der = der
}

func (s *crlServer) hold(d device, on bool) {
	if on {
		s.held[serialOf(s.t, d)] = true
	} else {
		delete(s.held, serialOf(s.t, d))
	}
	s.sign()
}

func (s *crlServer) pem() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: s.der})
}

func serialOf(t testing.TB, d device) [pki.SerialSize]byte {
	c, err := x509.ParseCertificate(d.cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	var s [pki.SerialSize]byte
	c.SerialNumber.FillBytes(s[:])
	return s
}

// enforcedEnv is a broker with a CRL file, kept current by a Syncer.
type enforcedEnv struct {
	*env
	crls   *crlServer
	broker *mosquittotest.Broker
	sync   *crlsync.Syncer
}

func newEnforcedEnv(t *testing.T, pattern bool) *enforcedEnv {
	e := &enforcedEnv{env: newEnv(t)}
	e.crls = newCRLServer(t, e.ca)
	e.broker = mosquittotest.Start(t, mosquittotest.Options{CAPEM: e.ca.DeviceTrustPEM(), ServerCert: e.serverCert(t),
		CRLPEM: e.crls.pem(), Pattern: pattern})
	var err error
	e.sync, err = crlsync.New(crlsync.Config{URL: e.crls.url(), Issuers: []*x509.Certificate{e.ca.IssuingCertificate()},
		File: e.broker.CRLFile(), Reloader: crlsync.PIDFile(e.broker.PIDFile())})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// syncCRL installs the served CRL in the broker and waits until the broker
// has read it: SIGHUP is asynchronous, and Mosquitto reloads at its next
// loop turn. The wait is a handshake that shows the reload, never a
// sleep.
func (e *enforcedEnv) syncCRL(t *testing.T, d device, wantRefused bool) error {
	t.Helper()
	if res, err := e.sync.Sync(t.Context()); err != nil || !res.Changed {
		t.Fatalf("sync: %+v, %v", res, err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for {
		s, err := mosquitto.Connect(ctx, e.broker.DeviceURL(), d.cert, e.roots)
		refused := errors.Is(err, mosquitto.ErrCertificateRefused)
		if err == nil {
			s.Close()
		}
		// A refusal may also arrive as a connection reset (TLS 1.3: the
		// broker may close before the CONNECT reaches it); only a TLS
		// alert counts, anything else is tried again.
		if refused == wantRefused && (refused || err == nil) {
			return err
		}
		if ctx.Err() != nil {
			t.Fatalf("broker did not apply the CRL: connect %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (e *enforcedEnv) connect(t *testing.T, d device) *mosquitto.Session {
	t.Helper()
	s, err := mosquitto.Connect(t.Context(), e.broker.DeviceURL(), d.cert, e.roots)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func waitDropped(t *testing.T, s *mosquitto.Session) {
	t.Helper()
	select {
	case <-s.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the broker did not drop the open connection")
	}
}

// TestDynsecDeregisterLeavesHandshake shows what the issue observed and
// why: deleting the device's dynamic-security client kicks its open
// connection, but the device listener authenticates by certificate, so a
// new connection is accepted (only its publishes are refused) until the
// broker's CRL lists the certificate.
func TestDynsecDeregisterLeavesHandshake(t *testing.T) {
	e := newEnforcedEnv(t, false)
	conn := e.dynsecConnector(t)
	a := e.newDevice(t)
	ctx := t.Context()
	if err := conn.Register(ctx, connector.Device{Identity: a.id}); err != nil {
		t.Fatal(err)
	}
	open := e.connect(t, a)
	if err := open.Publish(ctx, telemetry(a), []byte("up")); err != nil {
		t.Fatalf("publish while registered: %v", err)
	}
	if err := conn.Deregister(ctx, a.id); err != nil {
		t.Fatal(err)
	}
	waitDropped(t, open)

	again := e.connect(t, a) // accepted: the certificate is all it takes
	wantRefused(t, again.Publish(ctx, telemetry(a), []byte("up")))

	e.crls.hold(a, true)
	if err := e.syncCRL(t, a, true); !strings.Contains(err.Error(), "revoked certificate") {
		t.Fatalf("connect with a held certificate: %v, want refused as revoked", err)
	}

	e.crls.hold(a, false)
	if err := conn.Register(ctx, connector.Device{Identity: a.id}); err != nil {
		t.Fatal(err)
	}
	e.syncCRL(t, a, false)
	if err := mosquitto.Publish(ctx, e.broker.DeviceURL(), a.cert, e.roots, telemetry(a), []byte("up")); err != nil {
		t.Fatalf("publish after release: %v", err)
	}
}

func (e *enforcedEnv) dynsecConnector(t *testing.T) *mosquitto.Connector {
	return e.connector(t, mosquitto.ModeDynsec, 0)
}

func (e *enforcedEnv) connector(t *testing.T, mode mosquitto.Mode, rekick time.Duration) *mosquitto.Connector {
	t.Helper()
	c, err := mosquitto.New(mosquitto.Config{Mode: mode, BrokerURL: e.broker.AdminURL(), TLS: e.adminTLS(),
		AdminUser: e.broker.AdminUser, AdminPassword: e.broker.AdminPassword, RekickAfter: rekick})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestPatternMode: no per-device broker state; the pattern ACL confines
// each device to its own tree; deregistering kicks the open connection;
// the CRL refuses the next handshake; and a device that reconnected in
// between is kicked again once the CRL is in place.
func TestPatternMode(t *testing.T) {
	e := newEnforcedEnv(t, true)
	conn := e.connector(t, mosquitto.ModePattern, 200*time.Millisecond)
	a, b := e.newDevice(t), e.newDevice(t)
	ctx := t.Context()
	for _, d := range []device{a, b} {
		if err := conn.Register(ctx, connector.Device{Identity: d.id, Certificate: d.cert.Certificate[0]}); err != nil {
			t.Fatalf("register: %v", err)
		}
	}
	if err := mosquitto.Publish(ctx, e.broker.DeviceURL(), a.cert, e.roots, telemetry(a), []byte("up")); err != nil {
		t.Fatalf("publish to own topic: %v", err)
	}
	wantRefused(t, mosquitto.Publish(ctx, e.broker.DeviceURL(), a.cert, e.roots, telemetry(b), []byte("spoof")))
	wantRefused(t, mosquitto.Publish(ctx, e.broker.DeviceURL(), a.cert, e.roots, "devices/"+a.id.String()+"x/t", []byte("spoof")))
	data, err := os.ReadFile(e.broker.DynsecFile())
	if err != nil || strings.Contains(string(data), a.id.String()) {
		t.Fatalf("the broker holds state of a device in pattern mode (%v)", err)
	}

	open := e.connect(t, a)
	if err := conn.Deregister(ctx, a.id); err != nil {
		t.Fatal(err)
	}
	waitDropped(t, open)
	reconnected := e.connect(t, a) // before the CRL lists it
	e.crls.hold(a, true)
	e.syncCRL(t, a, true)
	waitDropped(t, reconnected) // the second kick
	if err := mosquitto.Publish(ctx, e.broker.DeviceURL(), b.cert, e.roots, telemetry(b), []byte("up")); err != nil {
		t.Fatalf("another device after the revocation: %v", err)
	}
	data, _ = os.ReadFile(e.broker.DynsecFile())
	if strings.Contains(string(data), a.id.String()) {
		t.Fatal("kicking left the device's client in the dynamic-security file")
	}
}

func TestPatternRegisterChecksCertificate(t *testing.T) {
	e := newEnv(t)
	c, err := mosquitto.New(mosquitto.Config{Mode: mosquitto.ModePattern})
	if err != nil {
		t.Fatal(err)
	}
	a, b := e.newDevice(t), e.newDevice(t)
	for name, d := range map[string]connector.Device{
		"no certificate":        {Identity: a.id},
		"another's certificate": {Identity: a.id, Certificate: b.cert.Certificate[0]},
	} {
		if err := c.Register(t.Context(), d); !errors.Is(err, connector.ErrPermanent) {
			t.Errorf("%s: %v, want a permanent error", name, err)
		}
	}
	// Without an admin listener there is nothing to kick through.
	if err := c.Deregister(t.Context(), a.id); err != nil {
		t.Fatal(err)
	}
	if _, err := mosquitto.New(mosquitto.Config{Mode: "acl"}); err == nil {
		t.Fatal("New accepted an unknown mode")
	}
}
