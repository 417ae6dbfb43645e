// Package app is the composition root of `hallmark serve`: it turns a
// configuration into a running platform — data directory, store, key
// manager, CA, onboarding service, HTTP API, TLS listener — and shuts it
// down cleanly. It holds no domain logic of its own.
package app

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/hallmark-iot/hallmark/internal/admin"
	"github.com/hallmark-iot/hallmark/internal/allocation"
	"github.com/hallmark-iot/hallmark/internal/atomicfile"
	"github.com/hallmark-iot/hallmark/internal/audit"
	"github.com/hallmark-iot/hallmark/internal/audit/chain"
	"github.com/hallmark-iot/hallmark/internal/campaign"
	"github.com/hallmark-iot/hallmark/internal/connector"
	"github.com/hallmark-iot/hallmark/internal/httpapi"
	"github.com/hallmark-iot/hallmark/internal/keys"
	"github.com/hallmark-iot/hallmark/internal/monitoring"
	"github.com/hallmark-iot/hallmark/internal/monitoring/relay"
	"github.com/hallmark-iot/hallmark/internal/onboarding"
	"github.com/hallmark-iot/hallmark/internal/onboarding/onboardpki"
	"github.com/hallmark-iot/hallmark/internal/onboarding/onboardstore"
	"github.com/hallmark-iot/hallmark/internal/pki"
	"github.com/hallmark-iot/hallmark/internal/revocation"
	"github.com/hallmark-iot/hallmark/internal/store"
	"github.com/hallmark-iot/hallmark/internal/store/postgres"
	"github.com/hallmark-iot/hallmark/internal/store/sqlite"
)

// Files in the data directory.
const (
	DatabaseFile     = "hallmark.db"
	CADir            = "ca"
	KeysDir          = "keys"
	CAPassphraseFile = "ca-passphrase"
	AdminTokenFile   = "admin.token"
	initLockFile     = ".init.lock"
	serveLockFile    = ".serve.lock"
	// lockWait bounds the wait for another process initializing the data
	// directory (creating a CA takes well under a second).
	lockWait = 30 * time.Second
	// janitorEvery is how often expired challenges are deleted.
	janitorEvery       = time.Minute
	serverCertValidity = 90 * 24 * time.Hour
)

// Platform is a running platform.
type Platform struct {
	cfg Config
	// auditSealer links and signs the audit log (auditchain.go): made
	// by handler, run by startBackground.
	auditSealer *chain.Sealer
	Store       store.Store
	CA          *pki.CA // the first of CAs: TLS, and products that name no CA
	CAs         *pki.CASet
	keys        keys.Manager
	tlsKey      crypto.Signer // the key manager's pki.KeyTLSServer
	server      *http.Server
	listener    net.Listener
	served      chan error
	// registry is what /metrics serves; the transport's collectors join
	// it.
	registry *prometheus.Registry
	// stopWorkers ends the job workers; workersDone closes when they have.
	metrics     *metrics
	refusals    *audit.Aggregator // written out by a background loop
	unlock      func()            // the data directory's lock, held for SQLite
	stopWorkers context.CancelFunc
	workersDone chan struct{}
	revocation  *revocationServer // nil unless RevocationListen
	monitor     *monitoring.Service
	relay       atomic.Pointer[relay.Relay] // nil without an event sink (relay.go)
	campaigns   *campaign.Service           // campaign.go; the migration service's Authorizer and Completion
	revoked     *revocation.Listed          // campaign.go: the revoked serials the device poll asks
	hints       *connector.Dispatcher       // notify.go; nil without a connector that sends hints
}

// Start opens everything and serves HTTPS in the background.
func Start(ctx context.Context, cfg Config) (_ *Platform, err error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	p := &Platform{cfg: cfg, served: make(chan error, 1)}
	defer func() {
		if err != nil {
			p.closeParts()
		}
	}()
	// A token is opened (and its PIN tried) before anything is made on
	// disk, so that a wrong PIN or module leaves nothing half-written; the
	// software store lives in the data directory and is opened with it.
	if !isSoftURI(cfg.CAKeyURI) {
		if err := p.openKeys(ctx); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	// Replicas starting together on one data directory and database take
	// turns: one creates the CA and the bootstrap token, the others find
	// them.
	if cfg.Database == "" {
		// SQLite serves one process: hold this lock until Close, so a
		// second `serve` on the directory is refused at once.
		if p.unlock, err = lockFileIn(ctx, cfg.DataDir, serveLockFile, 0); err != nil {
			return nil, err
		}
	}
	unlock, err := lockFileIn(ctx, cfg.DataDir, initLockFile, lockWait)
	if err != nil {
		return nil, err
	}
	handler, err := p.open(ctx)
	unlock()
	if err != nil {
		return nil, err
	}
	// Revocation is published before the first admin request can revoke
	// (NotifyRevocation reads what startRevocation sets).
	if err := p.startRevocation(ctx); err != nil {
		return nil, err
	}
	if err := p.listen(ctx, handler); err != nil {
		return nil, err
	}
	if err := p.startBackground(); err != nil {
		return nil, err
	}
	return p, nil
}

// startBackground runs the expired-challenge janitor and the connector
// workers until Close.
func (p *Platform) startBackground() error {
	workers, err := p.newWorkers()
	if err != nil {
		return err
	}
	rel, err := p.newRelay() // nil without an event sink
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.stopWorkers = cancel
	p.workersDone = make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { p.janitor(ctx) })
	wg.Go(func() { p.supersededSweep(ctx) })
	wg.Go(func() { p.runAuditChain(ctx) }) // auditchain.go; a last checkpoint at Close
	// The refusal summaries: every interval, and once more at Close.
	wg.Go(func() { _ = p.refusals.Run(ctx) })
	wg.Go(func() { _ = p.monitor.Run(ctx) })
	for _, w := range workers {
		wg.Go(func() { _ = w.Run(ctx) })
	}
	if rel != nil {
		p.relay.Store(rel)
		wg.Go(func() { _ = rel.Run(ctx) })
	}
	if p.hints != nil {
		wg.Go(func() { _ = p.hints.Run(ctx) })
	}
	if p.revoked != nil {
		wg.Go(func() { _ = p.revoked.Run(ctx, revocation.DefaultPoll) })
	}
	go func() { wg.Wait(); close(p.workersDone) }()
	if len(workers) > 0 {
		p.cfg.Log.Info("connector workers started", "workers", len(workers), "connectors", len(p.cfg.Connectors))
	}
	return nil
}

// newWorkers makes the connector workers, none without connectors. Every
// process and worker gets its own ID, so leases tell replicas' workers
// apart.
func (p *Platform) newWorkers() ([]*connector.Worker, error) {
	if len(p.cfg.Connectors) == 0 {
		return nil, nil
	}
	byName := map[string]connector.Connector{}
	for _, c := range p.cfg.Connectors {
		byName[c.Name()] = c
	}
	host, _ := os.Hostname()
	suffix := make([]byte, 4)
	rand.Read(suffix)
	var workers []*connector.Worker
	for i := range p.cfg.Workers {
		wc := p.cfg.Worker
		wc.ID = fmt.Sprintf("%s/%d/%x/%d", host, os.Getpid(), suffix, i)
		if wc.Log == nil {
			wc.Log = p.cfg.Log
		}
		if wc.Now == nil {
			wc.Now = p.cfg.Now
		}
		if wc.Metrics == nil {
			wc.Metrics = p.metrics
		}
		w, err := connector.NewWorker(p.Store, byName, wc)
		if err != nil {
			return nil, err
		}
		workers = append(workers, w)
	}
	return workers, nil
}

// open opens the store and the CA and builds the HTTP handler.
func (p *Platform) open(ctx context.Context) (http.Handler, error) {
	var err error
	if p.Store, err = openStore(ctx, p.cfg); err != nil {
		return nil, err
	}
	if err := p.openCA(ctx); err != nil {
		return nil, err
	}
	return p.handler(ctx)
}

// openStore opens the registry the configuration names.
func openStore(ctx context.Context, cfg Config) (store.Store, error) {
	// A failed Open's nil *Store must not become a non-nil store.Store.
	switch {
	case cfg.Database == "":
		s, err := sqlite.OpenWith(ctx, filepath.Join(cfg.DataDir, DatabaseFile), sqlite.Options{Synchronous: cfg.SQLiteSynchronous})
		if err != nil {
			return nil, err
		}
		if cfg.SQLiteSynchronous == sqlite.SyncNormal {
			cfg.Log.Warn("SQLite synchronous=normal: a power failure or kernel crash can roll back the last commits, issued certificates included")
		}
		return s, nil
	case IsPostgresURL(cfg.Database):
		s, err := postgres.Open(ctx, cfg.Database)
		if err != nil {
			return nil, err
		}
		return s, nil
	}
	return nil, errors.New("serve: --database must be a postgres:// URL (or empty for SQLite in the data directory)")
}

// lockFileIn takes an exclusive lock on the file name in dir, waiting up
// to wait for another process that holds it, and returns its release.
func lockFileIn(ctx context.Context, dir, name string, wait time.Duration) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("data directory lock: %w", err)
	}
	for waited := time.Duration(0); ; waited += 50 * time.Millisecond {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("data directory lock: %w", err)
		}
		if waited >= wait {
			f.Close()
			if wait == 0 {
				return nil, fmt.Errorf("data directory %s is in use by another hallmark serve (with SQLite a data directory serves one process; replicas use --database postgres://…)", dir)
			}
			return nil, fmt.Errorf("data directory %s: another hallmark serve has been setting it up for more than %v", dir, wait)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("data directory lock: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (p *Platform) openCA(ctx context.Context) error {
	if err := p.openKeys(ctx); err != nil {
		return err
	}
	if err := p.openCAs(ctx, p.keys); err != nil { // cas.go
		return p.caKeyHint(err)
	}
	// Under the init lock, like the CA's keys, so that replicas starting
	// together make one TLS key between them.
	key, err := ensureTLSKey(ctx, p.keys) // cakey.go
	if err != nil {
		return p.caKeyHint(err)
	}
	p.tlsKey = key
	return nil
}

// openKeys opens the CA's key manager, once.
func (p *Platform) openKeys(ctx context.Context) error {
	if p.keys != nil {
		return nil
	}
	pass, err := p.caPassphrase()
	if err != nil {
		return err
	}
	defer clear(pass)
	// Create: the CA's key store is made on first start, like the CA.
	km, err := keys.Open(ctx, p.cfg.CAKeyURI, keys.Options{Passphrase: pass, Create: true})
	if err != nil {
		return fmt.Errorf("CA key store: %w", err)
	}
	p.keys = km
	return nil
}

// caPassphrase returns what unlocks the CA's key store: the configured
// passphrase, or for the software store the development one kept in the
// data directory, made on first start. A token's PIN is never made up
// here: a pkcs11: store gets the configured passphrase as its PIN if one
// is set and nothing otherwise, so that its backend reads the PIN the
// operator gave (pin-source, $HALLMARK_PKCS11_PIN) or says none was.
func (p *Platform) caPassphrase() ([]byte, error) {
	if len(p.cfg.CAPassphrase) > 0 {
		return append([]byte(nil), p.cfg.CAPassphrase...), nil
	}
	if !isSoftURI(p.cfg.CAKeyURI) {
		return nil, nil
	}
	path := filepath.Join(p.cfg.DataDir, CAPassphraseFile)
	p.cfg.Log.Warn("CA keys are protected by a passphrase stored in the data directory; set HALLMARK_CA_PASSPHRASE for production", "file", path)
	data, err := os.ReadFile(path)
	if err == nil {
		return []byte(strings.TrimSpace(string(data))), nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("CA passphrase: %w", err)
	}
	raw := make([]byte, 32)
	rand.Read(raw)
	pass := []byte(hex.EncodeToString(raw))
	if err := atomicfile.WriteNew(path, append(pass, '\n'), 0o600); err != nil {
		return nil, fmt.Errorf("CA passphrase: %w", err)
	}
	return pass, nil
}

func (p *Platform) listen(ctx context.Context, handler http.Handler) error {
	ips := []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	if ip := net.ParseIP(p.cfg.ServerName); ip != nil {
		ips = append(ips, ip)
	}
	// A new certificate on every start, for the key kept in the key
	// manager: it costs one signature, always carries the configured
	// server name, and needs no file that replicas would have to agree on.
	cert, err := p.CA.IssueServerFor(ctx, p.tlsKey, []string{p.cfg.ServerName}, ips, serverCertValidity)
	if err != nil {
		return fmt.Errorf("TLS certificate: %w", err)
	}
	tlsCfg := &tls.Config{
		MinVersion:       tls.VersionTLS13,
		CurvePreferences: []tls.CurveID{tls.X25519MLKEM768, tls.X25519, tls.CurveP256},
		Certificates:     []tls.Certificate{cert},
		// Devices present certificates only after onboarding; the device
		// routes verify them against the CA (pki.CA.VerifyDevice), since
		// crypto/tls cannot check an ML-DSA CA's signatures.
		ClientAuth: tls.RequestClientCert,
	}
	lim := p.cfg.Transport
	slow, err := newSlowTransfers(p.registry)
	if err != nil {
		return err
	}
	tcp, err := net.Listen("tcp", p.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	ln, err := newConnLimiter(tcp, lim.MaxConnsPerAddress, lim.MaxConns, p.registry)
	if err != nil {
		tcp.Close()
		return err
	}
	p.listener = ln
	p.server = newHTTPServer(handler, tlsCfg, lim, slow, p.cfg.Log)
	go func() { p.served <- p.server.ServeTLS(ln, "", "") }()
	p.cfg.Log.Info("serving", "url", p.URL(), "ca_suite", p.CA.Suite())
	return nil
}

// URL is the platform's base URL, with the port actually bound.
func (p *Platform) URL() string {
	_, port, _ := net.SplitHostPort(p.listener.Addr().String())
	return "https://" + net.JoinHostPort(p.cfg.ServerName, port)
}

// Wait blocks until the server stops or ctx ends, then shuts down.
func (p *Platform) Wait(ctx context.Context) error {
	select {
	case err := <-p.served:
		p.closeParts()
		return err
	case <-ctx.Done():
		return p.Close()
	}
}

// Close stops serving, letting requests in flight finish for up to ten
// seconds, and closes the store and key manager.
func (p *Platform) Close() error {
	var err error
	if p.server != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err = p.server.Shutdown(ctx)
	}
	p.closeParts()
	return err
}

func (p *Platform) closeParts() {
	p.stopRevocation() // it reads the store
	// Workers first: they use the store and the connectors.
	if p.stopWorkers != nil {
		p.stopWorkers()
		<-p.workersDone
	}
	for _, c := range p.cfg.Connectors {
		if closer, ok := c.(io.Closer); ok {
			closer.Close()
		}
	}
	if p.Store != nil {
		p.Store.Close()
	}
	if p.unlock != nil {
		p.unlock()
		p.unlock = nil
	}
	if p.keys != nil {
		p.keys.Close()
	}
}

// handler builds the HTTP API: admin routes, onboarding and device routes,
// and the bootstrap admin token on first start.
func (p *Platform) handler(ctx context.Context) (http.Handler, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	p.registry = reg
	names, err := p.cfg.connectorNames()
	if err != nil {
		return nil, err
	}
	p.refusals, err = audit.New(audit.Config{Store: p.Store, Metrics: reg, Interval: p.cfg.RefusalInterval,
		MaxSources: p.cfg.RefusalMaxSources, Now: p.cfg.Now, Log: p.cfg.Log})
	if err != nil {
		return nil, err
	}
	adminSvc := admin.New(p.Store, admin.Config{Log: p.cfg.Log, Now: p.cfg.Now,
		Outbox: connector.Outbox{Connectors: names}, CertificatesChanged: p.certificatesChanged, IssuingCAs: p.hasCA})
	api, err := httpapi.New(httpapi.Config{Admin: adminSvc, Audit: p.Store, Ready: p.Store.Ping,
		Log: p.cfg.Log, Metrics: reg, MaxManifestBytes: p.cfg.MaxManifestBytes, Now: p.cfg.Now,
		Refusals: p.refusals, AuthLimit: p.cfg.AdminAuthLimit})
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	p.metrics = m
	state := onboardstore.New(onboardstore.Config{Store: p.Store, Outbox: connector.Outbox{Connectors: names},
		Log: p.cfg.Log, Now: p.cfg.Now})
	svc, err := onboarding.NewService(onboarding.Config{State: state.Allocating(p.Store, allocation.New(p.cfg.Allocation)), Issuer: onboardpki.NewIssuers(p.CAs, p.cfg.Now),
		ServerName: p.cfg.ServerName, Log: p.cfg.Log, Metrics: m, Now: p.cfg.Now,
		PerIdentity: p.cfg.RatePerIdentity, PerAddress: p.cfg.RatePerAddress,
		Refusals: monitorFeed{p: p, next: onboardstore.Refusals{Aggregator: p.refusals}}, Watch: monitorFeed{p: p}, Issuance: p.cfg.Issuance,
		CertificatesRevoked: p.NotifyRevocation})
	if err != nil {
		return nil, err
	}
	verify := func(chain [][]byte, now time.Time) (*x509.Certificate, error) {
		leaf, _, err := p.CAs.VerifyDevice(chain, now) // the CA that issued it, by key identifier
		return leaf, err
	}
	if err := api.HandleOnboarding(svc, verify); err != nil {
		return nil, err
	}
	if err := api.HandleCAs(p.caList); err != nil {
		return nil, err
	}
	if err := p.startMonitoring(api, svc, verify, reg); err != nil {
		return nil, err
	}
	if err := p.startFirmware(api, svc, verify); err != nil {
		return nil, err
	}
	if err := p.startCampaigns(api, svc, verify, reg); err != nil {
		return nil, err
	}
	if err := p.startMigration(api, svc, verify, names); err != nil {
		return nil, err
	}
	if err := p.startCMP(ctx, api, svc, verify); err != nil {
		return nil, err
	}
	if err := p.startEST(api, svc, verify); err != nil {
		return nil, err
	}
	if err := p.startAuditChain(ctx, api); err != nil { // auditchain.go
		return nil, err
	}
	if err := p.startEvidence(ctx, api); err != nil { // evidence.go
		return nil, err
	}
	if err := p.startConsole(api, adminSvc); err != nil { // console.go
		return nil, err
	}
	created, err := adminSvc.Tokens.EnsureBootstrapToken(ctx, p.AdminTokenPath())
	if err != nil {
		return nil, fmt.Errorf("bootstrap admin token: %w", err)
	}
	if created {
		p.cfg.Log.Info("created the bootstrap admin token", "file", p.AdminTokenPath())
	}
	return api, nil
}

// janitor deletes expired challenges until ctx ends. A challenge is kept a
// minute past its expiry, so a late answer is told "expired", not
// "unknown".
func (p *Platform) janitor(ctx context.Context) {
	every(ctx, janitorEvery, func() {
		n, err := p.Store.DeleteExpiredChallenges(ctx, p.cfg.Now().Add(-time.Minute))
		if err != nil && ctx.Err() == nil {
			p.cfg.Log.Warn("delete expired challenges", "err", err)
		} else if n > 0 {
			p.cfg.Log.Debug("deleted expired challenges", "count", n)
		}
	})
}

// every runs fn each interval until ctx ends: the platform's periodic
// sweeps, each safe to run in every replica at once.
func every(ctx context.Context, interval time.Duration, fn func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn()
		}
	}
}

// AdminTokenPath is the file holding the bootstrap admin token.
func (p *Platform) AdminTokenPath() string { return filepath.Join(p.cfg.DataDir, AdminTokenFile) }
