// Package broker runs a local Mosquitto configured the way Hallmark
// expects a customer's broker to be: a device listener that requires
// client certificates from Hallmark's CA and takes the certificate's
// common name (the device identity) as the user name, an admin listener
// where Hallmark logs in as the dynamic-security admin, and the
// dynamic-security plugin whose JSON file survives Stop and Start;
// optionally a crlfile (Reload makes the broker read it again) and the
// large-fleet pattern mode (an acl_file with one pattern; the plugin then
// holds only the admin). The demo and the tests use it; production brokers are the customer's own
// (docs/connectors.md shows the same configuration).
package broker

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	// Binary, Ctrl and Plugin are where Debian's mosquitto package
	// installs the broker, its control tool and the plugin.
	Binary = "/usr/sbin/mosquitto"
	Ctrl   = "/usr/bin/mosquitto_ctrl"
	Plugin = "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so"

	adminUser = "hallmark-admin"
)

// ErrNotInstalled reports that Mosquitto is missing.
var ErrNotInstalled = errors.New("mosquitto is not installed: apt-get install mosquitto (the Debian package holds the broker, mosquitto_ctrl and the dynamic-security plugin)")

// Options configures Start.
type Options struct {
	// Dir holds the configuration, keys and dynamic-security state; it
	// must exist. Starting again in the same Dir keeps the state.
	Dir string
	// CAPEM is the bundle the device listener trusts for client
	// certificates: Hallmark's CA root and issuing certificates.
	CAPEM []byte
	// ServerCert is the broker's TLS certificate with its chain.
	ServerCert tls.Certificate
	// Log receives the broker's warnings and errors; nil discards them.
	Log io.Writer
	// CRLPEM, if not empty, is the device listener's first certificate
	// revocation list (PEM, the issuing CA's): the broker then refuses, at
	// the TLS handshake, every device certificate it lists. CRLFile names
	// the file; rewrite it and call Reload to change it.
	CRLPEM []byte
	// Pattern configures the large-fleet mode: no dynamic-security plugin
	// and no admin listener, one pattern ACL (ACL) that confines each
	// device, by the user name its certificate gives it, to its own topic
	// tree.
	Pattern bool
	// TopicPrefix is the root of the pattern ACL's topic trees,
	// "devices/" by default.
	TopicPrefix string
}

// ACL is the pattern ACL of the large-fleet mode for topic prefix
// prefix: %u is the user name, which use_identity_as_username makes the
// certificate's common name, the device's identity.
func ACL(prefix string) string {
	if prefix == "" {
		prefix = "devices/"
	}
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	// The admin also publishes the devices' update hints
	// (mosquitto.UpdateTopic).
	return "user " + adminUser + "\ntopic readwrite $CONTROL/dynamic-security/#\ntopic write " + prefix + "+/update\n\npattern readwrite " + prefix + "%u/#\n"
}

// Broker is a Mosquitto process.
type Broker struct {
	dir     string
	conf    string
	log     io.Writer
	cmd     *exec.Cmd
	exited  chan struct{}
	devPort int
	admPort int
	pattern bool
	// AdminUser and AdminPassword log in on AdminURL.
	AdminUser, AdminPassword string
}

// Installed reports whether the broker, its control tool and the plugin
// are present; the error is ErrNotInstalled, wrapped with the missing
// file.
func Installed() error {
	for _, f := range []string{Binary, Ctrl, Plugin} {
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("%s missing: %w", f, ErrNotInstalled)
		}
	}
	return nil
}

// Start configures a broker in opts.Dir on two free loopback ports and
// starts it; it returns once both listeners accept connections.
func Start(ctx context.Context, opts Options) (*Broker, error) {
	if err := Installed(); err != nil {
		return nil, err
	}
	pass := make([]byte, 16)
	rand.Read(pass)
	b := &Broker{dir: opts.Dir, log: opts.Log, pattern: opts.Pattern}
	b.AdminUser, b.AdminPassword = adminUser, hex.EncodeToString(pass)
	if b.log == nil {
		b.log = io.Discard
	}
	var err error
	if b.devPort, err = freePort(); err != nil {
		return nil, err
	}
	if b.admPort, err = freePort(); err != nil {
		return nil, err
	}
	if err := b.writeFiles(ctx, opts); err != nil {
		return nil, fmt.Errorf("mosquitto: %w", err)
	}
	if err := b.Start(ctx); err != nil {
		return nil, err
	}
	return b, nil
}

// DeviceURL is the mutual-TLS listener devices connect to.
func (b *Broker) DeviceURL() string { return "mqtts://127.0.0.1:" + strconv.Itoa(b.devPort) }

// AdminURL is the listener the dynamic-security admin logs in on, ""
// in pattern mode, which has none.
func (b *Broker) AdminURL() string {
	return "mqtts://127.0.0.1:" + strconv.Itoa(b.admPort)
}

// DynsecFile is the plugin's state file.
func (b *Broker) DynsecFile() string { return filepath.Join(b.dir, "dynsec.json") }

// CRLFile is the device listener's crlfile (see Options.CRLPEM).
func (b *Broker) CRLFile() string { return filepath.Join(b.dir, "crl.pem") }

// PIDFile is where the broker writes its process ID (pid_file), for a
// CRL synchroniser that signals it.
func (b *Broker) PIDFile() string { return filepath.Join(b.dir, "mosquitto.pid") }

// Reload sends the running broker SIGHUP, which makes Mosquitto read its
// configuration again, the crlfile included, without dropping
// connections.
func (b *Broker) Reload() error {
	if b.cmd == nil {
		return errors.New("mosquitto: reload: not running")
	}
	if err := b.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		return fmt.Errorf("mosquitto: reload: %w", err)
	}
	return nil
}

func (b *Broker) writeFiles(ctx context.Context, opts Options) error {
	var chain []byte
	for _, der := range opts.ServerCert.Certificate {
		chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(opts.ServerCert.PrivateKey)
	if err != nil {
		return fmt.Errorf("server key: %w", err)
	}
	p := func(n string) string { return filepath.Join(b.dir, n) }
	files := map[string][]byte{
		"ca.pem":     opts.CAPEM,
		"server.pem": chain,
		"server.key": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}
	if len(opts.CRLPEM) > 0 {
		files["crl.pem"] = opts.CRLPEM
	}
	if opts.Pattern {
		files["acl"] = []byte(ACL(opts.TopicPrefix))
	}
	for name, data := range files {
		if err := os.WriteFile(p(name), data, 0o600); err != nil {
			return err
		}
	}
	tlsFiles := fmt.Sprintf("cafile %s\ncertfile %s\nkeyfile %s\ntls_version tlsv1.3\n", p("ca.pem"), p("server.pem"), p("server.key"))
	conf := fmt.Sprintf(`per_listener_settings false
allow_anonymous false
persistence false
set_tcp_nodelay true
log_dest stderr
log_type error
log_type warning
pid_file %s
`, b.PIDFile())
	if opts.Pattern {
		conf += fmt.Sprintf("acl_file %s\n", p("acl"))
	}
	if err := b.initDynsec(ctx); err != nil {
		return err
	}
	conf += fmt.Sprintf("plugin %s\nplugin_opt_config_file %s\n", Plugin, b.DynsecFile())
	conf += fmt.Sprintf("\nlistener %d 127.0.0.1\n%srequire_certificate true\nuse_identity_as_username true\n", b.devPort, tlsFiles)
	if len(opts.CRLPEM) > 0 {
		conf += fmt.Sprintf("crlfile %s\n", b.CRLFile())
	}
	conf += fmt.Sprintf("\nlistener %d 127.0.0.1\n%srequire_certificate false\n", b.admPort, tlsFiles)
	if os.Geteuid() == 0 {
		// As root Mosquitto would drop to the mosquitto user, who cannot
		// read a private temporary directory.
		conf = "user root\n" + conf
	}
	b.conf = p("mosquitto.conf")
	return os.WriteFile(b.conf, []byte(conf), 0o600)
}

// initDynsec creates the dynamic-security plugin's file with its admin.
func (b *Broker) initDynsec(ctx context.Context) error {
	os.Remove(b.DynsecFile())
	out, err := exec.CommandContext(ctx, Ctrl, "dynsec", "init", b.DynsecFile(), b.AdminUser, b.AdminPassword).CombinedOutput()
	if err != nil {
		return fmt.Errorf("mosquitto_ctrl dynsec init: %v: %s", err, out)
	}
	return nil
}

// Start starts the broker again after Stop, on the same ports with the
// same state; starting a running broker does nothing.
func (b *Broker) Start(ctx context.Context) error {
	if b.cmd != nil {
		return nil
	}
	// Not CommandContext: the broker outlives the call that starts it.
	cmd := exec.Command(Binary, "-c", b.conf)
	cmd.Stdout, cmd.Stderr = b.log, b.log
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("mosquitto: start: %w", err)
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
				b.cmd = nil
				return errors.New("mosquitto: exited at start (see its log)")
			case <-ctx.Done():
				b.Stop()
				return ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				b.Stop()
				return fmt.Errorf("mosquitto: not listening on port %d after 10s", port)
			}
		}
	}
	return nil
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

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("mosquitto: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
