package app

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/hallmark-iot/hallmark/internal/allocation"
	"github.com/hallmark-iot/hallmark/internal/connector"
	"github.com/hallmark-iot/hallmark/internal/httpapi"
	"github.com/hallmark-iot/hallmark/internal/onboarding"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store/sqlite"
)

// Config is everything `hallmark serve` can be told.
type Config struct {
	// DataDir holds the database, the CA's certificates and its encrypted
	// keys, and the bootstrap admin token. Replicas share one: the first to
	// start creates the CA and the token, under a lock on the directory.
	DataDir string
	// Database selects the registry: empty for SQLite in DataDir, or a
	// postgres:// (postgresql://) URL, which replicas share.
	Database string
	// SQLiteSynchronous is when SQLite syncs a commit to disk: empty or
	// sqlite.SyncFull (every commit, before the answer leaves), or
	// sqlite.SyncNormal, an explicit opt-in that a power failure can undo
	// (docs/store.md). PostgreSQL's is its server's synchronous_commit.
	SQLiteSynchronous sqlite.Synchronous
	// Transport bounds what one client can hold of the server; zero
	// values are the defaults.
	Transport TransportLimits
	// Listen is the HTTPS address, e.g. ":8443" or "127.0.0.1:0".
	Listen string
	// RevocationListen is the plain-HTTP address that serves the CRL and
	// the issuing CA certificate (revocation.NewMux); empty: off.
	// RevocationBaseURL, an http:// URL required with it, is where
	// relying parties reach that listener: device certificates carry it
	// in CRL Distribution Points and Authority Information Access.
	RevocationListen, RevocationBaseURL string
	// ServerName is the platform's DNS name: in its TLS certificate and
	// bound into every onboarding proof.
	ServerName string
	// CASuite is the CA's suite on first start, one of CASuites()
	// (ecdsa-p256 if empty); others are refused with ErrCASuite.
	CASuite sigalg.ID
	// CASuites are suites the platform must have a CA of beside the
	// first (cas.go, docs/pki.md "Several CAs"): a missing one is created
	// at start, with its keys in the same key manager. Each is one of
	// CASuites(). CAs created earlier stay loaded whether named or not.
	CASuites []sigalg.ID
	// CAKeyURI names the key manager holding the CA's keys, as keys.Open
	// takes it. Empty selects DefaultCAKeyURI, the software store in
	// DataDir/keys ("soft:<DataDir>/keys"); "soft:/other/dir" moves it.
	// The scheme is checked before anything is created: one no linked
	// backend serves, or a planned one such as pkcs11:, is an error.
	CAKeyURI string
	// CAPassphrase protects the CA keys at rest. Empty: a random one is
	// kept in DataDir/ca-passphrase (mode 0600), which protects nothing
	// against someone who can read the data directory: a development
	// default, logged as a warning.
	CAPassphrase []byte
	// MaxManifestBytes bounds a manifest upload.
	MaxManifestBytes int64
	// RatePerIdentity and RatePerAddress limit onboarding requests per
	// minute; zero selects onboarding's defaults, negative disables (a load
	// test from one address).
	RatePerIdentity, RatePerAddress int
	// Issuance is what onboarding certifies and how often: the binding of
	// certificate requests to their exchange, the renewal limit and the
	// grace of a replaced certificate; zero values are onboarding's
	// defaults (binding optional for protocol-v1 devices; `hallmark serve`
	// requires it unless told otherwise).
	Issuance onboarding.IssuancePolicy
	// SupersededSweep is how often certificates superseded longer ago
	// than Issuance's grace are revoked (reason superseded); zero is
	// DefaultSupersededSweep (supersession.go).
	SupersededSweep time.Duration
	// AdminAuthLimit is the back-off on failed admin authentication per
	// client address; zero values select httpapi's defaults.
	AdminAuthLimit httpapi.AuthLimit
	// RefusalInterval and RefusalMaxSources shape the audit summaries of
	// refused anonymous requests (audit.Aggregator); zero selects the
	// defaults (a minute, 1,000 keys).
	RefusalInterval   time.Duration
	RefusalMaxSources int
	// Connectors register onboarded devices with cloud services, in the
	// background, from the store's durable job queue. Their names must
	// differ. The platform closes those that are io.Closers.
	Connectors []connector.Connector
	// Allocation configures the calls to products' allocation webhooks
	// (internal/allocation); zero values are its defaults.
	Allocation allocation.Config
	// Workers is how many job workers run (default 4); Worker configures
	// each (its ID is made unique per process and worker).
	Workers int
	Worker  connector.WorkerConfig
	Log     *slog.Logger
	// Now is the clock; nil uses time.Now.
	Now func() time.Time
	// Monitoring configures status reports, the event sweeps and their metrics.
	Monitoring MonitoringConfig
	// Migration configures post-quantum migration (migration.go).
	Migration MigrationConfig
	// Events configures the relay of the event log to event sinks (relay.go).
	Events EventsConfig
	// AuditCheckpointInterval and AuditCheckpointEvery: the audit chain's
	// checkpoints are signed at least this often while events arrive, and
	// every this many events (auditchain.go); zero is the chain's default.
	AuditCheckpointInterval time.Duration
	AuditCheckpointEvery    int64
}

// connectorNames lists the configured connectors' names, checking they
// are unique.
func (c *Config) connectorNames() ([]string, error) {
	var names []string
	seen := map[string]bool{}
	for _, conn := range c.Connectors {
		name := conn.Name()
		if seen[name] {
			return nil, fmt.Errorf("serve: two connectors are named %q", name)
		}
		seen[name] = true
		names = append(names, name)
	}
	return names, nil
}

// IsPostgresURL reports whether a --database value names PostgreSQL.
func IsPostgresURL(v string) bool {
	return strings.HasPrefix(v, "postgres://") || strings.HasPrefix(v, "postgresql://")
}

func (c *Config) defaults() error {
	if c.DataDir == "" {
		return errors.New("serve: no data directory")
	}
	if c.Listen == "" {
		c.Listen = ":8443"
	}
	if c.ServerName == "" {
		c.ServerName = "localhost"
	}
	if c.CASuite != "" {
		suite, err := checkCASuite(c.CASuite)
		if err != nil {
			return err
		}
		c.CASuite = suite
	}
	if err := c.checkCASuites(); err != nil {
		return err
	}
	if err := c.checkCAKeyURI(); err != nil {
		return err
	}
	if err := c.checkRevocation(); err != nil {
		return err
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Workers <= 0 {
		c.Workers = 4
	}
	if c.SQLiteSynchronous != "" {
		mode, err := sqlite.ParseSynchronous(string(c.SQLiteSynchronous))
		if err != nil {
			return fmt.Errorf("serve: %w", err)
		}
		if c.Database != "" && mode != sqlite.SyncFull {
			return errors.New("serve: SQLite's synchronous mode does not apply to PostgreSQL, whose durability is its server's synchronous_commit")
		}
		c.SQLiteSynchronous = mode
	}
	var err error
	if c.Transport, err = c.Transport.withDefaults(); err != nil {
		return err
	}
	if _, err := c.connectorNames(); err != nil {
		return err
	}
	return nil
}
