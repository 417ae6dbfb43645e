package app

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	fleetgen "github.com/hallmark-iot/hallmark/internal/fleet"
	"github.com/hallmark-iot/hallmark/internal/httpapi"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/sigalg/sigalgtest"
)

// Attacks on the transport (issue 10, item 9): slow bodies, many
// connections from one address, stalled handshakes, stalled uploads
// holding the import slots. Every limit is set short here (a window of one
// second) so the tests take seconds; each test allows several times the
// configured bound before it calls the server wrong.

// startTransport starts a platform with the given transport limits.
func startTransport(t *testing.T, lim TransportLimits) *Platform {
	t.Helper()
	p, err := Start(context.Background(), Config{DataDir: newDataDir(t), Listen: "127.0.0.1:0", ServerName: "localhost",
		CASuite: sigalg.ECDSAP256, Transport: lim})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// transportTLS is a TLS 1.3 client configuration trusting p, speaking
// HTTP/1.1 unless told otherwise.
func transportTLS(p *Platform) *tls.Config {
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(p.CA.RootPEM())
	return &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: roots, ServerName: "localhost", NextProtos: []string{"http/1.1"}}
}

// dialFrom opens a TLS connection to p from the loopback address src
// (Linux routes all of 127/8 to the loopback interface).
func dialFrom(p *Platform, src string) (*tls.Conn, error) {
	d := tls.Dialer{NetDialer: &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second},
		Config: transportTLS(p)}
	c, err := d.DialContext(context.Background(), "tcp", p.listener.Addr().String())
	if err != nil {
		return nil, err
	}
	return c.(*tls.Conn), nil
}

// clientFrom is an HTTPS client of p whose connections come from src.
func clientFrom(p *Platform, src string, http2 bool) *http.Client {
	cfg := transportTLS(p)
	if http2 {
		cfg.NextProtos = nil
	}
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: http2,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, p.listener.Addr().String())
		}}}
}

// closedWithin reads from c until the server closes it or d passes; it
// returns what the server sent and whether it closed the connection.
func closedWithin(c net.Conn, d time.Duration) ([]byte, bool) {
	c.SetReadDeadline(time.Now().Add(d))
	data, err := io.ReadAll(c)
	return data, !errors.Is(err, os.ErrDeadlineExceeded)
}

// problemIn parses an HTTP/1.1 answer and returns its status and problem
// code.
func problemIn(t *testing.T, answer []byte) (int, string) {
	t.Helper()
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(answer)), nil)
	if err != nil {
		t.Fatalf("answer %q: %v", answer, err)
	}
	defer resp.Body.Close()
	var prob httpapi.Problem
	json.NewDecoder(resp.Body).Decode(&prob)
	return resp.StatusCode, prob.Code
}

// trickle writes one byte every interval until stop closes or a write
// fails.
func trickle(w io.Writer, interval time.Duration, stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case <-time.After(interval):
		}
		if _, err := w.Write([]byte{' '}); err != nil {
			return
		}
	}
}

// TestAttackTransportSlowBody: a body sent a byte at a time is cut after
// one window, over HTTP/1.1 and HTTP/2, with 408 body-too-slow, and the
// connection closed. Before, it stayed open as long as bytes kept coming.
func TestAttackTransportSlowBody(t *testing.T) {
	const window = time.Second
	p := startTransport(t, TransportLimits{MinRateWindow: window})

	t.Run("http1", func(t *testing.T) {
		c, err := dialFrom(p, "127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{", httpapi.PathOnboardChallenge)
		stop := make(chan struct{})
		defer close(stop)
		go trickle(c, 200*time.Millisecond, stop)
		start := time.Now()
		answer, closed := closedWithin(c, 5*window)
		if !closed {
			t.Fatalf("a body arriving at 5 bytes/s was still open after %v (window %v)", time.Since(start).Round(time.Millisecond), window)
		}
		if status, code := problemIn(t, answer); status != http.StatusRequestTimeout || code != "body-too-slow" {
			t.Errorf("answer %d %q, want 408 body-too-slow", status, code)
		}
	})

	t.Run("http2", func(t *testing.T) {
		body, w := io.Pipe()
		stop := make(chan struct{})
		defer close(stop)
		go trickle(w, 200*time.Millisecond, stop)
		ctx, cancel := context.WithTimeout(context.Background(), 5*window)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "POST", p.URL()+httpapi.PathOnboardChallenge, body)
		req.ContentLength = 100
		req.Header.Set("Content-Type", "application/json")
		resp, err := clientFrom(p, "127.0.0.1", true).Do(req)
		if err != nil {
			t.Fatalf("a body arriving at 5 bytes/s over HTTP/2: %v", err)
		}
		defer resp.Body.Close()
		var prob httpapi.Problem
		json.NewDecoder(resp.Body).Decode(&prob)
		if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusRequestTimeout || prob.Code != "body-too-slow" {
			t.Errorf("answer HTTP/%d %d %q, want HTTP/2 408 body-too-slow", resp.ProtoMajor, resp.StatusCode, prob.Code)
		}
	})

	if n := gatheredCounter(t, p, "hallmark_http_slow_transfers_total", "direction", "request"); n != 2 {
		t.Errorf("hallmark_http_slow_transfers_total{direction=request} = %v, want 2", n)
	}
}

// TestAttackTransportStalledHandshake: a client that opens TCP and never
// finishes the TLS handshake, or finishes it and never sends its request,
// is dropped after the header timeout. Before, the bound was a fixed 10 s.
func TestAttackTransportStalledHandshake(t *testing.T) {
	const timeout = time.Second
	p := startTransport(t, TransportLimits{HeaderTimeout: timeout})
	for name, dial := range map[string]func() (net.Conn, error){
		"no ClientHello": func() (net.Conn, error) { return net.Dial("tcp", p.listener.Addr().String()) },
		"half a ClientHello": func() (net.Conn, error) {
			c, err := net.Dial("tcp", p.listener.Addr().String())
			if err == nil {
				c.Write([]byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01}) // a handshake record's header, one byte of it
			}
			return c, err
		},
		"no request": func() (net.Conn, error) { return dialFrom(p, "127.0.0.1") },
	} {
		t.Run(name, func(t *testing.T) {
			c, err := dial()
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, closed := closedWithin(c, 5*timeout); !closed {
				t.Errorf("still open after %v (header timeout %v)", 5*timeout, timeout)
			}
		})
	}
}

// TestAttackTransportConnectionsPerAddress: slow clients from one address
// get the per-address bound of connections and no more, counted, while
// another address is served; a freed place is given back. The total bound
// refuses everyone once reached. Before, every connection was accepted.
func TestAttackTransportConnectionsPerAddress(t *testing.T) {
	const bound = 4
	p := startTransport(t, TransportLimits{MaxConnsPerAddress: bound})
	var held []*tls.Conn
	for range bound {
		c, err := dialFrom(p, "127.0.0.2")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// Mid-request: headers sent, the body not.
		fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n", httpapi.PathOnboardChallenge)
		held = append(held, c)
	}
	const extra = 3
	for range extra {
		if c, err := dialFrom(p, "127.0.0.2"); err == nil {
			c.Close()
			t.Fatalf("connection %d from one address accepted; the bound is %d", bound+1, bound)
		}
	}
	if n := gatheredCounter(t, p, "hallmark_connections_refused_total", "bound", "per_address"); n != extra {
		t.Errorf("hallmark_connections_refused_total{bound=per_address} = %v, want %d", n, extra)
	}
	resp, err := clientFrom(p, "127.0.0.3", false).Get(p.URL() + "/healthz")
	if err != nil {
		t.Fatalf("another address while one is at its bound: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("another address: %d", resp.StatusCode)
	}
	// The server notices the close at its next read: a place frees soon.
	held[0].Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := dialFrom(p, "127.0.0.2")
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a closed connection's place was not given back: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}

	t.Run("total", func(t *testing.T) {
		p := startTransport(t, TransportLimits{MaxConns: 3})
		for i := range 3 {
			c, err := dialFrom(p, fmt.Sprintf("127.0.0.%d", 2+i))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
		}
		if c, err := dialFrom(p, "127.0.0.9"); err == nil {
			c.Close()
			t.Fatal("a fourth connection accepted; the total bound is 3")
		}
		if n := gatheredCounter(t, p, "hallmark_connections_refused_total", "bound", "total"); n != 1 {
			t.Errorf("hallmark_connections_refused_total{bound=total} = %v, want 1", n)
		}
	})
}

// TestAttackTransportStalledImportsFreeSlots: two authenticated uploads
// that stall hold both manifest import slots only until the rate cuts
// them; a third import then runs. Before, it waited for as long as they
// stalled.
func TestAttackTransportStalledImportsFreeSlots(t *testing.T) {
	const window = time.Second
	p := startTransport(t, TransportLimits{MinRateWindow: window})
	f := newFleet(t, sigalg.ECDSAP256, sigalg.Ed25519)
	admin := adminClient(t, p)
	ctx := context.Background()
	if _, err := admin.CreateStation(ctx, httpapi.StationRequest{Name: "line", PublicKey: string(f.stationPEM)}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CreateProduct(ctx, httpapi.ProductRequest{ID: "meter", Name: "Meter", CertValidity: "720h", CloudEndpoint: "mqtts://broker.test:8883"}); err != nil {
		t.Fatal(err)
	}
	token, err := os.ReadFile(p.AdminTokenPath())
	if err != nil {
		t.Fatal(err)
	}
	var stalled []*tls.Conn
	for range 2 {
		c, err := dialFrom(p, "127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "POST /v1/admin/manifests?product=meter HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer %s\r\n"+
			"Content-Type: application/jsonl\r\nContent-Length: %d\r\n\r\n", strings.TrimSpace(string(token)), len(f.manifest))
		c.Write(f.manifest[:100])
		stalled = append(stalled, c)
	}
	time.Sleep(300 * time.Millisecond) // both take their slots and wait for the rest
	ctx, cancel := context.WithTimeout(ctx, 6*window)
	defer cancel()
	res, err := admin.ImportManifest(ctx, "meter", bytes.NewReader(f.manifest))
	if err != nil {
		t.Fatalf("an import behind two stalled uploads: %v", err)
	}
	if res.Imported != len(f.devices) {
		t.Errorf("imported %d devices, want %d", res.Imported, len(f.devices))
	}
	for _, c := range stalled {
		answer, closed := closedWithin(c, 5*window)
		if !closed {
			t.Fatal("a stalled upload's connection is still open")
		}
		if status, code := problemIn(t, answer); status != http.StatusRequestTimeout || code != "body-too-slow" {
			t.Errorf("stalled upload answered %d %q, want 408 body-too-slow", status, code)
		}
	}
}

// TestAttackTransportLargeUploadsImport: the rate bound does not touch
// honest uploads. With the one-second window of the tests, a manifest of
// about a megabyte imports at full speed (while the server verifies it
// between reads), and one sent at four times the minimum rate, over
// several windows, imports too.
func TestAttackTransportLargeUploadsImport(t *testing.T) {
	const window = time.Second
	p := startTransport(t, TransportLimits{MinRateWindow: window, MinRateBytes: 64 << 10})
	admin := adminClient(t, p)
	ctx := context.Background()
	p256 := sigalgtest.Suite(t, sigalg.ECDSAP256)
	seed := make([]byte, fleetgen.SeedSize)
	rand.Read(seed)
	fl, err := fleetgen.New(seed, p256, nil)
	if err != nil {
		t.Fatal(err)
	}
	ed := sigalgtest.Suite(t, sigalg.Ed25519)
	station, _ := ed.GenerateKey(rand.Reader)
	stationPEM, _ := sigalg.EncodePublicKeyPEM(station.Public())
	if _, err := admin.CreateStation(ctx, httpapi.StationRequest{Name: "line", PublicKey: string(stationPEM)}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CreateProduct(ctx, httpapi.ProductRequest{ID: "meter", Name: "Meter", CertValidity: "720h", CloudEndpoint: "mqtts://broker.test:8883"}); err != nil {
		t.Fatal(err)
	}
	manifestOf := func(batch string, first, count uint64) []byte {
		var buf bytes.Buffer
		if _, err := fleetgen.WriteManifest(ctx, &buf, fleetgen.ManifestConfig{Fleet: fl, First: first, Count: count, Batch: batch, Station: station}); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}

	big := manifestOf("big", 0, 2000)
	res, err := admin.ImportManifest(ctx, "meter", bytes.NewReader(big))
	if err != nil || res.Imported != 2000 {
		t.Fatalf("a %d-byte manifest at full speed: %+v, %v", len(big), res, err)
	}

	paced := manifestOf("paced", 2000, 600)
	const piece, every = 32 << 10, 125 * time.Millisecond // 256 KiB/s, 4× the minimum
	start := time.Now()
	res, err = admin.ImportManifest(ctx, "meter", &pacedReader{data: paced, piece: piece, every: every})
	if err != nil || res.Imported != 600 {
		t.Fatalf("a %d-byte manifest at 256 KiB/s: %+v, %v", len(paced), res, err)
	}
	if took := time.Since(start); took < window {
		t.Errorf("the paced upload took %v, not more than one window: the test proves nothing", took)
	}
}

// pacedReader hands out data a piece at a time, one piece per interval.
type pacedReader struct {
	data  []byte
	piece int
	every time.Duration
	next  time.Time
}

func (r *pacedReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	if wait := time.Until(r.next); wait > 0 {
		time.Sleep(wait)
	}
	r.next = time.Now().Add(r.every)
	n := copy(p[:min(len(p), r.piece)], r.data)
	r.data = r.data[n:]
	return n, nil
}

// gatheredCounter reads one counter of p's /metrics registry.
func gatheredCounter(t *testing.T, p *Platform, name, label, value string) float64 {
	t.Helper()
	families, err := p.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}
