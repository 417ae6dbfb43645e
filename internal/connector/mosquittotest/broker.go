// Package mosquittotest owns a real Mosquitto broker for tests: a TLS
// listener that requires client certificates and takes the certificate's
// common name as the user name (as devices connect), a second TLS listener
// on loopback where the dynamic-security admin logs in with a user name and
// password (as Hallmark connects), and the dynamic-security plugin whose
// JSON file survives Stop and Restart.
package mosquittotest

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

const (
	// Binary, Ctrl and Plugin are where the Debian packages mosquitto and
	// mosquitto-clients install them.
	Binary = "/usr/sbin/mosquitto"
	Ctrl   = "/usr/bin/mosquitto_ctrl"
	Plugin = "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so"

	adminUser = "hallmark-admin"
)

// Options configures Start.
type Options struct {
	// CAPEM is the bundle the device listener trusts for client
	// certificates: Hallmark's CA root and issuing certificates.
	CAPEM []byte
	// ServerCert is the broker's TLS certificate with its chain.
	ServerCert tls.Certificate
}

// Broker is a running Mosquitto.
type Broker struct {
	t       testing.TB
	dir     string
	conf    string
	cmd     *exec.Cmd
	exited  chan struct{}
	devPort int
	admPort int
	// AdminUser and AdminPassword log in on AdminURL.
	AdminUser, AdminPassword string
}

// Start starts a broker in a temporary directory and stops it when the
// test ends. It fails the test when Mosquitto is not installed.
func Start(t testing.TB, opts Options) *Broker {
	t.Helper()
	for _, f := range []string{Binary, Ctrl, Plugin} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("mosquittotest: %s missing: install the Debian packages mosquitto and mosquitto-clients (apt-get install mosquitto mosquitto-clients)", f)
		}
	}
	b := &Broker{t: t, dir: t.TempDir(), AdminUser: adminUser, AdminPassword: "admin-" + strconv.FormatInt(time.Now().UnixNano(), 36)}
	b.devPort, b.admPort = freePort(t), freePort(t)
	b.writeFiles(opts)
	b.start()
	t.Cleanup(b.Stop)
	return b
}

// DeviceURL is the mutual-TLS listener devices connect to.
func (b *Broker) DeviceURL() string { return "mqtts://127.0.0.1:" + strconv.Itoa(b.devPort) }

// AdminURL is the listener the dynamic-security admin logs in on.
func (b *Broker) AdminURL() string { return "mqtts://127.0.0.1:" + strconv.Itoa(b.admPort) }

// DynsecFile is the plugin's state file.
func (b *Broker) DynsecFile() string { return filepath.Join(b.dir, "dynsec.json") }

func (b *Broker) writeFiles(opts Options) {
	t := b.t
	t.Helper()
	var chain []byte
	for _, der := range opts.ServerCert.Certificate {
		chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(opts.ServerCert.PrivateKey)
	if err != nil {
		t.Fatalf("mosquittotest: server key: %v", err)
	}
	files := map[string][]byte{
		"ca.pem":     opts.CAPEM,
		"server.pem": chain,
		"server.key": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(b.dir, name), data, 0o600); err != nil {
			t.Fatalf("mosquittotest: %v", err)
		}
	}
	out, err := exec.Command(Ctrl, "dynsec", "init", b.DynsecFile(), b.AdminUser, b.AdminPassword).CombinedOutput()
	if err != nil {
		t.Fatalf("mosquittotest: mosquitto_ctrl dynsec init: %v: %s", err, out)
	}
	p := func(n string) string { return filepath.Join(b.dir, n) }
	conf := fmt.Sprintf(`per_listener_settings false
allow_anonymous false
persistence false
log_dest stderr
log_type error
log_type warning
plugin %s
plugin_opt_config_file %s

listener %d 127.0.0.1
cafile %s
certfile %s
keyfile %s
tls_version tlsv1.3
require_certificate true
use_identity_as_username true

listener %d 127.0.0.1
cafile %s
certfile %s
keyfile %s
tls_version tlsv1.3
require_certificate false
`, Plugin, b.DynsecFile(), b.devPort, p("ca.pem"), p("server.pem"), p("server.key"),
		b.admPort, p("ca.pem"), p("server.pem"), p("server.key"))
	if os.Geteuid() == 0 {
		// As root Mosquitto would drop to the mosquitto user, who cannot
		// read the test's temporary directory.
		conf = "user root\n" + conf
	}
	b.conf = p("mosquitto.conf")
	if err := os.WriteFile(b.conf, []byte(conf), 0o600); err != nil {
		t.Fatalf("mosquittotest: %v", err)
	}
}

func (b *Broker) start() {
	t := b.t
	t.Helper()
	cmd := exec.Command(Binary, "-c", b.conf)
	cmd.Stdout = &testLog{t: t}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatalf("mosquittotest: start: %v", err)
	}
	b.cmd, b.exited = cmd, make(chan struct{})
	go func(done chan struct{}) { _ = cmd.Wait(); close(done) }(b.exited)
	deadline := time.Now().Add(10 * time.Second)
	for _, port := range []int{b.devPort, b.admPort} {
		for {
			c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
			if err == nil {
				c.Close()
				break
			}
			select {
			case <-b.exited:
				t.Fatalf("mosquittotest: mosquitto exited at start (see log above)")
			case <-time.After(20 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("mosquittotest: mosquitto not listening on %d after 10s", port)
			}
		}
	}
}

// Stop stops the broker; the dynamic-security file stays. Stopping a
// stopped broker does nothing.
func (b *Broker) Stop() {
	if b.cmd == nil {
		return
	}
	_ = b.cmd.Process.Signal(os.Interrupt)
	select {
	case <-b.exited:
	case <-time.After(5 * time.Second):
		_ = b.cmd.Process.Kill()
		<-b.exited
	}
	b.cmd = nil
}

// Restart starts the broker again on the same ports with the same state.
func (b *Broker) Restart() {
	b.t.Helper()
	b.Stop()
	b.start()
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("mosquittotest: free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// testLog sends the broker's log lines to the test log.
type testLog struct{ t testing.TB }

func (l *testLog) Write(p []byte) (int, error) {
	l.t.Logf("mosquitto: %s", p)
	return len(p), nil
}
