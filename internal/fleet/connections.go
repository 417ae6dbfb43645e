package fleet

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/hallmark-iot/hallmark/internal/httpapi"
	"github.com/hallmark-iot/hallmark/internal/onboarding"
	"github.com/hallmark-iot/hallmark/internal/onboarding/onboardpki"
	"github.com/hallmark-iot/hallmark/internal/pki"
)

// Connections is how the load generator's devices reach the platform.
type Connections string

const (
	// Fresh gives each device a TCP connection and a full TLS 1.3
	// handshake of its own, used for its challenge and its proof and then
	// closed: what a device does when it onboards. There is no session
	// resumption, since a device onboarding for the first time holds no
	// ticket.
	Fresh Connections = "fresh"
	// KeepAlive shares one keep-alive connection per concurrent
	// onboarding across devices, so the handshakes are paid once per
	// connection: what a gateway or a proxy in front of many devices
	// does, and the figure issue 6 measured.
	KeepAlive Connections = "keep-alive"
)

// ParseConnections reads a mode's name.
func ParseConnections(s string) (Connections, error) {
	switch c := Connections(s); c {
	case Fresh, KeepAlive:
		return c, nil
	}
	return "", fmt.Errorf("connections %q: want %s or %s", s, Fresh, KeepAlive)
}

// DialStats counts the TLS connections a load generator opened.
type DialStats struct {
	// Handshakes counts completed TLS handshakes, Resumed those of them
	// that resumed an earlier session (a full handshake has none).
	Handshakes, Resumed int64
}

// tlsDialer opens and counts the load generator's TLS connections. It
// does the handshake itself (http.Transport.DialTLSContext) so that each
// one is seen, and whether it resumed.
type tlsDialer struct {
	dialer             tls.Dialer
	handshakes, resume atomic.Int64
}

func (d *tlsDialer) DialTLSContext(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := d.dialer.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	d.handshakes.Add(1)
	if c.(*tls.Conn).ConnectionState().DidResume {
		d.resume.Add(1)
	}
	return c, nil
}

func (d *tlsDialer) stats() DialStats {
	return DialStats{Handshakes: d.handshakes.Load(), Resumed: d.resume.Load()}
}

// Clients are the load generator's HTTPS clients of one platform, for
// OnboardConfig: TLS 1.3 to the roots only (pki.ClientTLSConfig, whose
// key exchange offers X25519MLKEM768 first, as the platform prefers), and
// HTTP/1.1, since one multiplexed HTTP/2 connection would not load the
// server as many devices do.
type Clients struct {
	server  string
	mode    Connections
	timeout time.Duration
	dial    *tlsDialer
	shared  *http.Client // KeepAlive only
}

// NewClients makes the clients of the platform at server for mode, with
// concurrency keep-alive connections in KeepAlive mode and timeout on each
// request.
func NewClients(server string, roots *x509.CertPool, mode Connections, concurrency int, timeout time.Duration) (*Clients, error) {
	if _, err := ParseConnections(string(mode)); err != nil {
		return nil, err
	}
	// No ClientSessionCache: no session is ever resumed, which is a
	// device's first onboarding; keep-alive connections need none either.
	cfg := pki.ClientTLSConfig(roots, nil)
	c := &Clients{server: server, mode: mode, timeout: timeout,
		dial: &tlsDialer{dialer: tls.Dialer{NetDialer: &net.Dialer{Timeout: timeout}, Config: cfg}}}
	if mode == KeepAlive {
		c.shared = &http.Client{Timeout: timeout, Transport: c.transport(concurrency)}
		if _, err := c.client(c.shared); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func (c *Clients) transport(idle int) *http.Transport {
	return &http.Transport{
		DialTLSContext:      c.dial.DialTLSContext,
		MaxIdleConns:        idle,
		MaxIdleConnsPerHost: idle,
		IdleConnTimeout:     90 * time.Second,
		// A non-nil empty map keeps HTTP/2 off.
		TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{},
	}
}

func (c *Clients) client(hc *http.Client) (*onboarding.Client, error) {
	return httpapi.NewOnboardingClient(c.server, hc, onboardpki.CSRs{})
}

// Configure sets cfg's Client (KeepAlive) or DeviceClient (Fresh) and
// Dials.
func (c *Clients) Configure(cfg *OnboardConfig) error {
	cfg.Connections, cfg.Dials = c.mode, c.dial.stats
	if c.mode == KeepAlive {
		oc, err := c.client(c.shared)
		if err != nil {
			return err
		}
		cfg.Client = oc
		return nil
	}
	cfg.DeviceClient = func() (*onboarding.Client, func(), error) {
		// A transport of its own: its one connection serves the
		// device's two requests and is closed with it, never reused by
		// another device.
		tr := c.transport(1)
		oc, err := c.client(&http.Client{Timeout: c.timeout, Transport: tr})
		if err != nil {
			return nil, nil, err
		}
		return oc, tr.CloseIdleConnections, nil
	}
	return nil
}

// Close closes the idle keep-alive connections.
func (c *Clients) Close() {
	if c.shared != nil {
		c.shared.CloseIdleConnections()
	}
}
