// Package mosquittotest starts a real Mosquitto for tests (see package
// broker for its configuration) in the test's temporary directory, stops
// it when the test ends, and fails the test, naming the package to
// install, when Mosquitto is missing.
package mosquittotest

import (
	"crypto/tls"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/connector/mosquitto/broker"
)

// Options configures Start.
type Options struct {
	// CAPEM is the bundle the device listener trusts for client
	// certificates: Hallmark's CA root and issuing certificates.
	CAPEM []byte
	// ServerCert is the broker's TLS certificate with its chain.
	ServerCert tls.Certificate
	// CRLPEM and Pattern: see broker.Options.
	CRLPEM  []byte
	Pattern bool
}

// Broker is a running Mosquitto owned by a test.
type Broker struct {
	*broker.Broker
	t testing.TB
}

// Start starts a broker and stops it when the test ends.
func Start(t testing.TB, opts Options) *Broker {
	t.Helper()
	b, err := broker.Start(t.Context(), broker.Options{Dir: t.TempDir(), CAPEM: opts.CAPEM,
		ServerCert: opts.ServerCert, CRLPEM: opts.CRLPEM, Pattern: opts.Pattern, Log: testLog{t}})
	if err != nil {
		t.Fatalf("mosquittotest: %v", err)
	}
	t.Cleanup(b.Stop)
	return &Broker{Broker: b, t: t}
}

// Restart stops the broker and starts it again on the same ports with the
// same state.
func (b *Broker) Restart() {
	b.t.Helper()
	b.Stop()
	if err := b.Start(b.t.Context()); err != nil {
		b.t.Fatalf("mosquittotest: %v", err)
	}
}

// testLog sends the broker's log lines to the test log.
type testLog struct{ t testing.TB }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Logf("mosquitto: %s", p)
	return len(p), nil
}
