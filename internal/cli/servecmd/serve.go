// Package servecmd owns "hallmark serve": turning flags (every one also a
// HALLMARK_* variable) into app.Config, checked, and running the platform.
// Each concern's flags live in their own file: connectors, defences of the
// admin API, certificate issuance, transport bounds.
package servecmd

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/hallmark-iot/hallmark/internal/app"
	"github.com/hallmark-iot/hallmark/internal/cli/cmdline"
	"github.com/hallmark-iot/hallmark/internal/keys"
	"github.com/hallmark-iot/hallmark/internal/pki"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// DefaultListen is serve's listen address: this machine only, so that a
// first try exposes nothing to the network.
const DefaultListen = "127.0.0.1:8443"

// serveLong is serve's help: what a first start makes, where it listens,
// what protects the CA's keys, which file TLS clients trust.
var serveLong = `Run the platform. On first start it creates the data directory: a SQLite
database (unless --database), a CA (root and issuing; keys encrypted at rest) and a bootstrap
admin token in DATA/admin.token. It serves HTTPS only (TLS 1.3, X25519MLKEM768
preferred), on 127.0.0.1:8443 by default: pass --listen :8443 to serve other
machines. Every flag can be set as an environment variable HALLMARK_<FLAG>,
e.g. HALLMARK_DATA_DIR, as each flag's help shows; a flag on the command
line wins.

The CA's keys (root and issuing, per CA) and the TLS server key ("` + pki.KeyTLSServer + `",
ECDSA P-256, kept across restarts; its certificate is issued anew at each
start) live in the key manager --ca-key-uri names, made there on first start.
By default that is a software store in DATA/keys, encrypted at rest with a
passphrase read from HALLMARK_CA_PASSPHRASE or --ca-passphrase-file, never
from a flag value. Without either, a random passphrase is made on first start
and kept in DATA/` + app.CAPassphraseFile + `, beside the keys it protects:
a development default, which protects nothing against anyone who can read the
data directory.

With --ca-key-uri pkcs11:token=LABEL?module-path=/path/module.so&pin-source=file:/path/pin
the keys are made inside the HSM as non-extractable token objects. The PIN
comes from the URI's pin-source file, else HALLMARK_PKCS11_PIN, else the CA
passphrase (HALLMARK_CA_PASSPHRASE or --ca-passphrase-file); no passphrase
file is ever made for a token. A token without the PKCS #11 3.2 ML-DSA
mechanisms cannot hold an ML-DSA CA: start fails naming the mechanism; keep
such a CA in a soft: store or leave ml-dsa-65 out (docs/pki.md).

TLS clients of the platform (--ca-file of the admin, device and fleet
commands) trust DATA/` + pki.TLSTrustFile + `, whatever the CA suite;
DATA/ca/root.pem anchors device certificates, and that of an ML-DSA CA
cannot authenticate TLS.

With --database postgres://… the registry is PostgreSQL, and any number of
replicas may serve it, sharing one data directory (the first to start
creates the CA and the token; the others wait for it and use them): a
challenge issued by one is answered at another, and their connector
workers share one job queue. With SQLite a data directory serves one
process. Keep the URL's password out of the flag (it shows in the process
list): use HALLMARK_DATABASE, PGPASSWORD or ~/.pgpass.

Cloud connectors: with --mqtt-admin-url every onboarded device is registered
with a Mosquitto broker (dynamic security: a client named by its identity,
allowed its own topic tree only); with --webhook-url a signed event is
POSTed. Both run in the background from a durable job queue with retries;
revoking a device deregisters it. See docs/connectors.md.` + transportHelp + revocationHelp + auditChainHelp

// New returns the serve command.
func New(s *cmdline.Streams) *cobra.Command {
	var f serveFlags
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the onboarding platform: HTTPS API, CA and registry (embedded SQLite, or PostgreSQL)",
		Long:  serveLong,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := f.config(s)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if f.pprofListen != "" {
				if err := servePprof(ctx, f.pprofListen, cfg.Log); err != nil {
					return err
				}
			}
			p, err := app.Start(ctx, cfg)
			if err != nil {
				return err
			}
			fmt.Fprintf(s.Out, "hallmark serving at %s (admin token in %s)\n", p.URL(), p.AdminTokenPath())
			fmt.Fprintf(s.Out, "TLS clients trust %s (--ca-file, HALLMARK_CA_FILE)\n", filepath.Join(f.dataDir, pki.TLSTrustFile))
			return p.Wait(ctx)
		},
	}
	f.register(cmd.Flags())
	// Every flag, as the help above promises.
	cmdline.BindEnv(cmd.Flags(), cmdline.EnvPrefix)
	return cmd
}

// serveFlags are serve's flags; each concern's group registers its own.
type serveFlags struct {
	dataDir, database, listen, serverName, caSuite, caKeyURI, passFile, logFormat, logLevel string
	pprofListen                                                                             string
	caSuites                                                                                []string
	maxManifest                                                                             int64
	ratePerIdentity, ratePerAddress                                                         int
	connectors                                                                              connectorFlags
	defences                                                                                defenceFlags
	issuance                                                                                issuanceFlags
	transport                                                                               transportFlags
	revocation                                                                              revocationFlags
	monitoring                                                                              monitoringFlags
	auditChain                                                                              auditChainFlags
}

func (sf *serveFlags) register(f *pflag.FlagSet) {
	f.StringVar(&sf.dataDir, "data-dir", "hallmark-data", "data `DIR`")
	f.StringVar(&sf.database, "database", "", "registry: a postgres://USER@HOST/DB `URL` that replicas share (default: SQLite in the data directory)")
	f.StringVar(&sf.listen, "listen", DefaultListen, "HTTPS listen `ADDRESS` (this machine only by default; --listen :8443 serves other machines)")
	f.StringVar(&sf.serverName, "server-name", "localhost", "the platform's DNS `NAME` (TLS certificate, onboarding proofs)")
	f.StringVar(&sf.caSuite, "ca-suite", string(app.CASuites()[0]), "CA signature `SUITE` on first start: "+caSuiteNames())
	f.StringSliceVar(&sf.caSuites, "ca-suites", nil, "further CAs, by `SUITE`, e.g. ml-dsa-65: one each is made at start if missing, beside the first CA, for products to name as --issuing-ca ("+caSuiteNames()+")")
	f.StringVar(&sf.caKeyURI, "ca-key-uri", "", "key manager for the CA's keys, by `URI`: soft:DIR (software store; default soft:<data-dir>/keys) or pkcs11:token=…?module-path=…&pin-source=file:… (an HSM)")
	f.StringVar(&sf.passFile, "ca-passphrase-file", "", "CA key passphrase `FILE`, or the token PIN of a pkcs11: store without pin-source (default: $HALLMARK_CA_PASSPHRASE, else for soft: a random one kept in the data directory)")
	f.StringVar(&sf.logFormat, "log-format", "json", "log format: json or text")
	f.StringVar(&sf.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	f.IntVar(&sf.ratePerIdentity, "rate-per-identity", 0, "onboarding requests per minute per device identity from each client address or IPv6 /64 (default 20; -1 disables)")
	f.IntVar(&sf.ratePerAddress, "rate-per-address", 0, "onboarding requests per minute per client address or IPv6 /64 (default 600; -1 disables)")
	f.Int64Var(&sf.maxManifest, "max-manifest-bytes", 0, "largest manifest upload (default 2 GiB)")
	sf.connectors.register(f)
	sf.defences.register(f)
	sf.issuance.register(f)
	sf.transport.register(f)
	sf.revocation.register(f)
	sf.monitoring.register(f)
	sf.auditChain.register(f)
	f.StringVar(&sf.pprofListen, "pprof-listen", "", "serve Go's profiler (net/http/pprof) on this loopback `ADDRESS`, e.g. 127.0.0.1:6060")
}

// config checks the flags and turns them into the platform's
// configuration; a value that cannot work is a usage error.
func (sf *serveFlags) config(s *cmdline.Streams) (app.Config, error) {
	log, err := newLogger(s.Err, sf.logFormat, sf.logLevel)
	if err != nil {
		return app.Config{}, cmdline.Usage(err)
	}
	suite, err := sigalg.Lookup(sf.caSuite)
	if err != nil {
		return app.Config{}, cmdline.Usage(err)
	}
	if !slices.Contains(app.CASuites(), suite.ID()) {
		return app.Config{}, cmdline.Usagef("--ca-suite %s: a CA may use %s", suite.ID(), caSuiteNames())
	}
	var more []sigalg.ID
	for _, name := range sf.caSuites {
		s, err := sigalg.Lookup(name)
		if err != nil || !slices.Contains(app.CASuites(), s.ID()) {
			return app.Config{}, cmdline.Usagef("--ca-suites %s: a CA may use %s", name, caSuiteNames())
		}
		more = append(more, s.ID())
	}
	if sf.caKeyURI != "" {
		if err := keys.CheckURI(sf.caKeyURI); err != nil {
			return app.Config{}, cmdline.Usagef("--ca-key-uri: %v", err)
		}
	}
	if sf.database != "" && !app.IsPostgresURL(sf.database) {
		return app.Config{}, cmdline.Usagef("--database %q: want a postgres:// URL (or none, for SQLite in the data directory)", redactURL(sf.database))
	}
	cfg := app.Config{DataDir: sf.dataDir, Database: sf.database, Listen: sf.listen, ServerName: sf.serverName, CASuite: suite.ID(),
		CASuites: more, CAKeyURI: sf.caKeyURI, MaxManifestBytes: sf.maxManifest, Log: log, RatePerIdentity: sf.ratePerIdentity, RatePerAddress: sf.ratePerAddress}
	for _, apply := range []func(*app.Config) error{sf.defences.apply, sf.issuance.apply, sf.transport.apply, sf.revocation.apply, sf.monitoring.apply, sf.auditChain.apply} {
		if err := apply(&cfg); err != nil {
			return app.Config{}, err
		}
	}
	if sf.passFile != "" || os.Getenv("HALLMARK_CA_PASSPHRASE") != "" {
		if cfg.CAPassphrase, err = s.Secret(sf.passFile, "HALLMARK_CA_PASSPHRASE"); err != nil {
			return app.Config{}, err
		}
	}
	if cfg.Connectors, err = sf.connectors.build(s); err != nil {
		return app.Config{}, err
	}
	cfg.Workers = sf.connectors.workers
	if cfg.Worker, err = sf.connectors.worker(); err != nil {
		return app.Config{}, err
	}
	if cfg.Events, err = sf.connectors.events(); err != nil {
		return app.Config{}, err
	}
	return cfg, nil
}

// caSuiteNames lists the suites a CA may use (app.CASuites), for the
// help and errors.
func caSuiteNames() string {
	names := make([]string, 0, len(app.CASuites()))
	for _, id := range app.CASuites() {
		names = append(names, string(id))
	}
	return strings.Join(names, ", ")
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch strings.ToLower(format) {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log format %q: want json or text", format)
}

// servePprof serves the profiler on a loopback address until ctx ends:
// profiles show request data, so never on a public interface.
func servePprof(ctx context.Context, addr string, log *slog.Logger) error {
	host, _, err := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		return cmdline.Usagef("--pprof-listen %q: want a loopback address such as 127.0.0.1:6060", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("pprof: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	go func() { <-ctx.Done(); srv.Close() }()
	log.Info("profiler listening", "addr", ln.Addr().String())
	return nil
}

// redactURL hides a URL's password, for messages.
func redactURL(v string) string {
	u, err := url.Parse(v)
	if err != nil || u.User == nil {
		if err != nil {
			return "(unparsable URL)"
		}
		return v
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}
