package fleet

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hallmark-iot/hallmark/internal/keys"
	"github.com/hallmark-iot/hallmark/internal/pki"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// serverTLSConfig is the platform listener's TLS configuration
// (internal/app, Platform.listen), with the server certificate it issues
// itself on every start: TLS 1.3 only, X25519MLKEM768 preferred, an ECDSA
// P-256 key in the key manager (pki.KeyTLSServer), client certificates
// requested but not required, session tickets on (Go's default, which
// the platform keeps). Kept in step with that function by hand.
func serverTLSConfig(ctx context.Context, ca *ceilingCA) (*tls.Config, error) {
	if _, err := ca.keys.CreateKey(ctx, keys.CreateKeyRequest{Name: pki.KeyTLSServer, Suite: sigalg.ECDSAP256}); err != nil {
		return nil, fmt.Errorf("TLS key: %w", err)
	}
	key, err := ca.keys.Signer(ctx, pki.KeyTLSServer)
	if err != nil {
		return nil, fmt.Errorf("TLS key: %w", err)
	}
	cert, err := ca.IssueServerFor(ctx, key, []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}, time.Hour)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:       tls.VersionTLS13,
		CurvePreferences: []tls.CurveID{tls.X25519MLKEM768, tls.X25519, tls.CurveP256},
		Certificates:     []tls.Certificate{cert},
		ClientAuth:       tls.RequestClientCert,
	}, nil
}

// measureHandshakes runs full TLS 1.3 handshakes, a device's client
// against the platform's server configuration, over in-memory pipes on
// cfg.Workers pairs of goroutines for cfg.Duration, and measures the
// server side's CPU time.
//
// Each server goroutine keeps its OS thread (runtime.LockOSThread) and
// reads that thread's CPU time (getrusage RUSAGE_THREAD) before and after
// its handshakes: a locked thread runs only its goroutine and sleeps while
// the goroutine waits for the client, so the difference is the server
// side alone — key share generation and X25519MLKEM768 encapsulation,
// the transcript hashes and HKDF key schedule, the CertificateVerify
// signature, the Finished MACs, the session ticket the platform sends, and
// crypto/tls's own message handling, which a real handshake also pays —
// while the client's work (decapsulation, chain parsing, Finished) runs on
// other threads and is not counted. In-memory pipes leave out the
// kernel's socket work, which is not cryptography. Timing the primitives
// one by one would miss what crypto/tls does between them and depend on
// knowing its internals; this measures what it actually does.
//
// What the thread also spends is the runtime's hand-over of a locked
// thread each time the server waits for the client (futex sleeps and
// wake-ups, about a fifth of the raw figure on the 2-vCPU machine of
// docs/performance.md): scheduling, not cryptography, and dearer for a
// locked thread than for a server's goroutines. The same worker therefore
// also runs as many exchanges of the same shape without TLS (ioBaseline:
// the client's flight, the server's, the client's, the ticket, close)
// and that CPU time is subtracted; both are reported.
func measureHandshakes(ctx context.Context, cfg CeilingConfig, ca *ceilingCA) (phase, error) {
	srvCfg, err := serverTLSConfig(ctx, ca)
	if err != nil {
		return phase{}, err
	}
	// A device's first connection: no session cache, so no resumption.
	// The client does not verify the chain: its work is not measured,
	// and the server's does not depend on it.
	cliCfg := &tls.Config{MinVersion: tls.VersionTLS13, ServerName: "localhost", InsecureSkipVerify: true}
	var count, cpu, baseline atomic.Int64
	var params atomic.Pointer[HandshakeParams]
	var firstErr error
	var once sync.Once
	fail := func(err error) { once.Do(func() { firstErr = err }) }
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(cfg.Duration)
	for range cfg.Workers {
		wg.Go(func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			before, err := threadCPU()
			if err != nil {
				fail(err)
				return
			}
			n := 0
			for ; time.Now().Before(deadline) && ctx.Err() == nil; n++ {
				p, err := handshakeOnce(ctx, srvCfg, cliCfg)
				if err != nil {
					fail(err)
					return
				}
				params.Store(&p)
			}
			after, err := threadCPU()
			if err != nil {
				fail(err)
				return
			}
			for range n {
				if err := ioBaselineOnce(); err != nil {
					fail(err)
					return
				}
			}
			end, err := threadCPU()
			if err != nil {
				fail(err)
				return
			}
			count.Add(int64(n))
			cpu.Add(int64(after - before))
			baseline.Add(int64(end - after))
		})
	}
	wg.Wait()
	if firstErr != nil {
		return phase{}, firstErr
	}
	if err := ctx.Err(); err != nil {
		return phase{}, err
	}
	res := phase{ops: count.Load(), perSecond: float64(count.Load()) / time.Since(start).Seconds(),
		cpu: time.Duration(cpu.Load() - baseline.Load()), baseline: time.Duration(baseline.Load())}
	if p := params.Load(); p != nil {
		res.params = *p
	}
	return res, nil
}

// handshakeOnce runs one full handshake, its server side on the calling
// goroutine, and closes the connection as the server does when a device
// leaves.
func handshakeOnce(ctx context.Context, srvCfg, cliCfg *tls.Config) (HandshakeParams, error) {
	srvEnd, cliEnd := memPipe()
	cliErr := make(chan error, 1)
	go func() {
		c := tls.Client(cliEnd, cliCfg)
		err := c.HandshakeContext(ctx)
		if err == nil {
			// Read the session ticket and the server's close_notify:
			// on a pipe, each write waits for its reader.
			_, err = io.Copy(io.Discard, c)
		}
		c.Close()
		cliErr <- err
	}()
	srv := tls.Server(srvEnd, srvCfg)
	err := srv.HandshakeContext(ctx)
	st := srv.ConnectionState()
	srv.Close()
	if cerr := <-cliErr; err == nil && cerr != nil && !errors.Is(cerr, io.ErrClosedPipe) {
		err = fmt.Errorf("client: %w", cerr)
	}
	if err != nil {
		return HandshakeParams{}, err
	}
	if st.DidResume || st.Version != tls.VersionTLS13 {
		return HandshakeParams{}, fmt.Errorf("handshake was not a full TLS 1.3 one (version %#x, resumed %v)", st.Version, st.DidResume)
	}
	return HandshakeParams{KeyExchange: st.CurveID.String(), Certificate: string(sigalg.ECDSAP256), ChainLength: len(srvCfg.Certificates[0].Certificate)}, nil
}

// The sizes of a TLS 1.3 X25519MLKEM768 handshake's flights, roughly: the
// ClientHello with its two key shares, the server's flight with the
// ML-KEM ciphertext and a chain of two ECDSA certificates, the client's
// Finished, the session ticket.
const (
	flightClientHello = 1500
	flightServer      = 2600
	flightFinished    = 80
	flightTicket      = 250
)

// clientThinks stands for the client's work before each of its flights
// (its key shares, then decapsulation and the chain's verification, a few
// hundred microseconds): long enough that the server's thread goes to
// sleep while it waits, as it does in a real handshake, rather than
// finding the answer while it spins.
const clientThinks = 100 * time.Microsecond

// ioBaselineOnce exchanges a handshake's flights without TLS, the server
// side on the calling goroutine: what measureHandshakes subtracts.
func ioBaselineOnce() error {
	srvEnd, cliEnd := memPipe()
	cliErr := make(chan error, 1)
	go func() {
		buf := make([]byte, flightServer)
		time.Sleep(clientThinks)
		_, err := cliEnd.Write(make([]byte, flightClientHello))
		if err == nil {
			_, err = io.ReadFull(cliEnd, buf)
		}
		if err == nil {
			time.Sleep(clientThinks)
			_, err = cliEnd.Write(buf[:flightFinished])
		}
		if err == nil {
			_, err = io.Copy(io.Discard, cliEnd)
		}
		cliEnd.Close()
		cliErr <- err
	}()
	buf := make([]byte, flightServer)
	_, err := io.ReadFull(srvEnd, buf[:flightClientHello])
	if err == nil {
		_, err = srvEnd.Write(buf)
	}
	if err == nil {
		_, err = io.ReadFull(srvEnd, buf[:flightFinished])
	}
	if err == nil {
		_, err = srvEnd.Write(buf[:flightTicket])
	}
	srvEnd.Close()
	if cerr := <-cliErr; err == nil {
		err = cerr
	}
	return err
}

// memPipe makes two connected in-memory connections whose writes never
// wait for the reader, as a socket's buffer lets a server send its whole
// flight at once. net.Pipe hands each write over synchronously, which
// adds scheduler hand-offs no socket makes, and which would be counted
// as the server's CPU.
func memPipe() (net.Conn, net.Conn) {
	a, b := &memBuffer{}, &memBuffer{}
	a.cond.L, b.cond.L = &a.mu, &b.mu
	return &memConn{in: a, out: b}, &memConn{in: b, out: a}
}

type memBuffer struct {
	mu     sync.Mutex
	cond   sync.Cond
	data   []byte
	closed bool
}

type memConn struct{ in, out *memBuffer }

func (c *memConn) Read(p []byte) (int, error) {
	c.in.mu.Lock()
	defer c.in.mu.Unlock()
	for len(c.in.data) == 0 && !c.in.closed {
		c.in.cond.Wait()
	}
	if len(c.in.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.in.data)
	c.in.data = c.in.data[n:]
	return n, nil
}

func (c *memConn) Write(p []byte) (int, error) {
	c.out.mu.Lock()
	defer c.out.mu.Unlock()
	if c.out.closed {
		return 0, io.ErrClosedPipe
	}
	c.out.data = append(c.out.data, p...)
	c.out.cond.Signal()
	return len(p), nil
}

// Close ends both directions: the peer reads what was written, then EOF.
func (c *memConn) Close() error {
	for _, b := range []*memBuffer{c.in, c.out} {
		b.mu.Lock()
		b.closed = true
		b.cond.Broadcast()
		b.mu.Unlock()
	}
	return nil
}

func (c *memConn) LocalAddr() net.Addr              { return memAddr{} }
func (c *memConn) RemoteAddr() net.Addr             { return memAddr{} }
func (c *memConn) SetDeadline(time.Time) error      { return nil }
func (c *memConn) SetReadDeadline(time.Time) error  { return nil }
func (c *memConn) SetWriteDeadline(time.Time) error { return nil }

type memAddr struct{}

func (memAddr) Network() string { return "memory" }
func (memAddr) String() string  { return "memory" }
