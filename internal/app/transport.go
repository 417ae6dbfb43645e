package app

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hallmark-iot/hallmark/internal/httpapi"
)

// TransportLimits bound what one client can hold of the server: time,
// connections, and the speed at which it must send and receive. Zero
// values select the defaults below; docs/security.md gives the reasons.
type TransportLimits struct {
	// HeaderTimeout bounds the TLS handshake of a new connection, and then
	// each request's line and headers.
	HeaderTimeout time.Duration
	// IdleTimeout closes a keep-alive connection that has been idle this
	// long between requests.
	IdleTimeout time.Duration
	// MinRateBytes per MinRateWindow is the slowest transfer the server
	// waits for. While a handler reads a request body, each MinRateWindow
	// it spends waiting must bring MinRateBytes or the rest of the body;
	// while it writes a response, the client must take each MinRateBytes
	// (or the rest) within MinRateWindow. A transfer slower than that is
	// cut and its connection closed.
	MinRateBytes  int64
	MinRateWindow time.Duration
	// MaxConnsPerAddress bounds the open connections from one source (an
	// IPv4 address, or an IPv6 /64); MaxConns bounds all of them. A
	// connection over either bound is closed as soon as it is accepted.
	// Negative: no bound (behind a proxy every client has its address).
	MaxConnsPerAddress, MaxConns int
}

// The transport's defaults.
const (
	// DefaultHeaderTimeout leaves a slow link (tens of kbit/s, as
	// NB-IoT) time for an ML-DSA certificate chain in the handshake.
	DefaultHeaderTimeout = 10 * time.Second
	// DefaultIdleTimeout is longer than Go clients' 90 s, so that the
	// client, not the server, closes an idle connection: a client then
	// never sends a POST on a connection the server is closing.
	DefaultIdleTimeout = 2 * time.Minute
	// DefaultMinRateBytes per DefaultMinRateWindow is 6.5 KB/s (52 kbit/s):
	// every JSON body (at most 64 KiB) must arrive within 10 s, a manifest
	// upload of hundreds of MB runs far faster, and a client holding a
	// connection or an import slot must spend bandwidth to keep it.
	DefaultMinRateBytes  = 64 << 10
	DefaultMinRateWindow = 10 * time.Second
	// DefaultMaxConnsPerAddress lets a load generator (48 connections),
	// or a few dozen devices behind one NAT address, onboard at once.
	DefaultMaxConnsPerAddress = 128
	// DefaultMaxConns bounds the memory idle and slow connections can
	// take: tens of KiB each.
	DefaultMaxConns = 4096
	// maxStreamsPerConn bounds an HTTP/2 connection's concurrent
	// requests (RFC 9113 recommends no fewer than 100).
	maxStreamsPerConn = 100
)

// withDefaults fills in zero values and refuses negative times and rates.
func (l TransportLimits) withDefaults() (TransportLimits, error) {
	for _, d := range []struct {
		v    *time.Duration
		def  time.Duration
		name string
	}{{&l.HeaderTimeout, DefaultHeaderTimeout, "header timeout"}, {&l.IdleTimeout, DefaultIdleTimeout, "idle timeout"},
		{&l.MinRateWindow, DefaultMinRateWindow, "minimum-rate window"}} {
		if *d.v < 0 {
			return l, fmt.Errorf("serve: %s %v: want a positive duration", d.name, *d.v)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if l.MinRateBytes < 0 {
		return l, fmt.Errorf("serve: minimum-rate bytes %d: want a positive number", l.MinRateBytes)
	}
	if l.MinRateBytes == 0 {
		l.MinRateBytes = DefaultMinRateBytes
	}
	if l.MaxConnsPerAddress == 0 {
		l.MaxConnsPerAddress = DefaultMaxConnsPerAddress
	}
	if l.MaxConns == 0 {
		l.MaxConns = DefaultMaxConns
	}
	return l, nil
}

// newHTTPServer makes the server with the transport's limits. It sets no
// WriteTimeout: net/http would count it from the request's headers to the
// response's end, cutting a long manifest import; guardTransfers demands
// progress instead. Go's server bounds the TLS handshake by the smallest
// of its timeouts, here ReadHeaderTimeout.
func newHTTPServer(handler http.Handler, tlsCfg *tls.Config, l TransportLimits, slow *prometheus.CounterVec, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           guardTransfers(handler, l.MinRateBytes, l.MinRateWindow, slow),
		TLSConfig:         tlsCfg,
		ReadHeaderTimeout: l.HeaderTimeout,
		IdleTimeout:       l.IdleTimeout,
		HTTP2: &http.HTTP2Config{
			MaxConcurrentStreams: maxStreamsPerConn,
			// A connection whose reader stopped taking frames is closed,
			// as an HTTP/1.1 response's write deadline closes its own.
			WriteByteTimeout: l.MinRateWindow,
		},
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// newSlowTransfers makes the counter of transfers cut for being too slow.
func newSlowTransfers(reg prometheus.Registerer) (*prometheus.CounterVec, error) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hallmark_http_slow_transfers_total",
		Help: "Request bodies (direction request) and responses (direction response) cut for moving slower than the minimum transfer rate.",
	}, []string{"direction"})
	if err := reg.Register(c); err != nil {
		return nil, fmt.Errorf("transfer metrics: %w", err)
	}
	return c, nil
}

// guardTransfers enforces the minimum transfer rate on every request's
// body and response, through http.ResponseController deadlines that move
// forward as bytes move (both HTTP/1.1 and HTTP/2).
func guardTransfers(next http.Handler, minBytes int64, window time.Duration, slow *prometheus.CounterVec) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		// The previous response's deadline may have passed; until this
		// handler writes, its work is not bounded by the client's speed.
		rc.SetWriteDeadline(time.Time{})
		var body *minRateBody
		if r.Body != nil && r.Body != http.NoBody {
			body = &minRateBody{ReadCloser: r.Body, rc: rc, header: w.Header(), minBytes: minBytes, window: window,
				slow: slow.WithLabelValues("request")}
			r.Body = body
		}
		next.ServeHTTP(&minRateWriter{ResponseWriter: w, rc: rc, minBytes: minBytes, window: window,
			slow: slow.WithLabelValues("response")}, r)
		// After the handler, net/http reads what is left of an unread body
		// (up to 256 KiB, to reuse the connection) and flushes the
		// response: neither may wait for a stalled client without bound,
		// and a body already too slow is not waited for at all.
		switch {
		case body != nil && body.err != nil:
			rc.SetReadDeadline(time.Now())
		case body != nil && !body.done:
			rc.SetReadDeadline(time.Now().Add(window))
		}
		rc.SetWriteDeadline(time.Now().Add(window))
	})
}

// minRateBody is a request body that must arrive at the minimum rate:
// each window of time the handler spends waiting in Read must bring
// minBytes, or the end of the body. Time the handler spends elsewhere
// (verifying what it read, waiting for an import slot) does not count:
// the client is not what it waits for then.
type minRateBody struct {
	io.ReadCloser
	rc       *http.ResponseController
	header   http.Header
	minBytes int64
	window   time.Duration
	slow     prometheus.Counter
	got      int64         // bytes so far in this window
	waited   time.Duration // time spent in Read so far in this window
	done     bool          // the body ended
	err      error         // the rate was missed: every later Read fails
}

func (b *minRateBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if b.done {
		return b.ReadCloser.Read(p)
	}
	start := time.Now()
	if err := b.rc.SetReadDeadline(start.Add(b.window - b.waited)); err != nil {
		// A writer without deadlines (not net/http's): nothing to enforce.
		return b.ReadCloser.Read(p)
	}
	n, err := b.ReadCloser.Read(p)
	b.waited += time.Since(start)
	if b.got += int64(n); b.got >= b.minBytes {
		b.got, b.waited = 0, 0
	}
	switch {
	case errors.Is(err, io.EOF):
		// net/http now reads ahead on the connection, to notice a client
		// that goes away; that read must not time out while the handler
		// works, or it would cancel the request.
		b.done = true
		b.rc.SetReadDeadline(time.Time{})
	case errors.Is(err, os.ErrDeadlineExceeded):
		b.err = httpapi.NewProblem("body-too-slow", fmt.Sprintf(
			"the body arrived slower than %d bytes per %v; the connection is closed", b.minBytes, b.window))
		// HTTP/1.1 closes the connection after the answer; HTTP/2 sends
		// GOAWAY and closes it once its other requests are done.
		b.header.Set("Connection", "close")
		b.slow.Inc()
		return n, b.err
	}
	return n, err
}

// minRateWriter gives each minBytes of a response one window to reach the
// client.
type minRateWriter struct {
	http.ResponseWriter
	rc       *http.ResponseController
	minBytes int64
	window   time.Duration
	slow     prometheus.Counter
	cut      bool
}

func (w *minRateWriter) WriteHeader(code int) {
	w.arm()
	w.ResponseWriter.WriteHeader(code)
}

func (w *minRateWriter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		chunk := p[:min(int64(len(p)), w.minBytes)]
		w.arm()
		n, err := w.ResponseWriter.Write(chunk)
		written += n
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) && !w.cut {
				w.cut = true
				w.slow.Inc()
			}
			return written, err
		}
		p = p[len(chunk):]
	}
	return written, nil
}

// Unwrap lets http.ResponseController reach the connection.
func (w *minRateWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *minRateWriter) arm() { w.rc.SetWriteDeadline(time.Now().Add(w.window)) }
