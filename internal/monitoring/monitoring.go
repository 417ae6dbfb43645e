// Package monitoring owns what the platform learns about devices after
// onboarding (docs/lifecycle.md, "Monitoring"): the status reports
// devices send over mutual TLS, the device event log, and the periodic
// sweeps that add "certificate expiring" and "device silent" events. The
// events of state changes are written by the store in the transaction of
// the change; this package reads them and adds the sweeps'.
package monitoring

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"sync/atomic"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// ErrMalformedReport refuses a status report that breaks its rules
// (StatusReport.Check); the error's text says which.
var ErrMalformedReport = errors.New("malformed status report")

// Limits of a status report.
const (
	MaxFirmwareVersion = 64
	// MaxUptimeSeconds is a century: anything more is a broken clock.
	MaxUptimeSeconds = 100 * 366 * 24 * 3600
	// MaxReportBody bounds a report's encoding; a well-formed one is a
	// few hundred bytes.
	MaxReportBody = 2 << 10
)

// Boot results a device reports: its ROM started the image it expected,
// fell back to another, or is in recovery.
var BootResults = []string{"ok", "fallback", "recovery"}

// firmwareVersion is what a device may call its firmware: printable,
// no spaces, such as 1.4.2 or 2.0.0-rc.1+build.7.
var firmwareVersion = regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z.+_-]*$`)

// StatusReport is what a device reports about itself (POST
// /v1/device/status).
type StatusReport struct {
	FirmwareVersion      string    `json:"firmware_version" doc:"1 to 64 characters of [0-9A-Za-z.+_-], starting with a letter or digit, e.g. 1.4.2."`
	SecurityCounter      uint32    `json:"security_counter" doc:"The anti-rollback counter in OTP, 0 to 4294967295."`
	BootResult           string    `json:"boot_result" enum:"ok,fallback,recovery"`
	EnrolmentAlgorithm   sigalg.ID `json:"enrolment_algorithm" doc:"The suite of the enrolment key, e.g. ecdsa-p256."`
	OperationalAlgorithm sigalg.ID `json:"operational_algorithm" doc:"The suite of the operational key."`
	UptimeSeconds        int64     `json:"uptime_seconds" doc:"Seconds since boot, 0 to 3162240000."`
}

// Check applies a report's rules.
func (r StatusReport) Check() error {
	switch {
	case len(r.FirmwareVersion) == 0 || len(r.FirmwareVersion) > MaxFirmwareVersion || !firmwareVersion.MatchString(r.FirmwareVersion):
		return fmt.Errorf("%w: firmware_version must be 1 to %d characters of [0-9A-Za-z.+_-]", ErrMalformedReport, MaxFirmwareVersion)
	case !slices.Contains(BootResults, r.BootResult):
		return fmt.Errorf("%w: boot_result must be one of %v", ErrMalformedReport, BootResults)
	case !knownSuite(r.EnrolmentAlgorithm):
		return fmt.Errorf("%w: enrolment_algorithm is not a known suite", ErrMalformedReport)
	case !knownSuite(r.OperationalAlgorithm):
		return fmt.Errorf("%w: operational_algorithm is not a known suite", ErrMalformedReport)
	case r.UptimeSeconds < 0 || r.UptimeSeconds > MaxUptimeSeconds:
		return fmt.Errorf("%w: uptime_seconds must be 0 to %d", ErrMalformedReport, MaxUptimeSeconds)
	}
	return nil
}

func knownSuite(id sigalg.ID) bool {
	_, err := id.Suite()
	return err == nil
}

// Receipt answers an accepted report.
type Receipt struct {
	Identity   identity.ID `json:"identity"`
	ReceivedAt time.Time   `json:"received_at"`
}

// Authenticator finds the device of a verified client certificate, and
// refuses one that may not use it (onboarding.Service).
type Authenticator interface {
	AuthenticateDevice(ctx context.Context, leaf *x509.Certificate, action, addr string) (identity.ID, error)
}

// Store is what monitoring asks of the registry.
type Store interface {
	RecordStatus(ctx context.Context, s store.DeviceStatus) (store.StatusRecorded, error)
	ListEvents(ctx context.Context, f store.EventFilter) ([]store.DeviceEvent, error)
	NoteExpiringCertificates(ctx context.Context, now time.Time, within time.Duration, limit int) (int, error)
	NoteSilentDevices(ctx context.Context, now time.Time, product string, since time.Time, limit int) (int, error)
	ListProducts(ctx context.Context) ([]store.Product, error)
	NoteFirmwareOutdated(ctx context.Context, id identity.ID, version, minimum string, at time.Time, detail string) (bool, error)
	NoteCloneSuspected(ctx context.Context, id identity.ID, at time.Time, every time.Duration, detail string) (bool, error)
	NoteOnboardingSource(ctx context.Context, id identity.ID, source string, at time.Time) (string, error)
	NoteFailedProof(ctx context.Context, id identity.ID, at time.Time, window time.Duration, keep int) (int, error)
}

// Defaults.
var DefaultExpiryThresholds = []time.Duration{30 * 24 * time.Hour, 7 * 24 * time.Hour}

const (
	DefaultSweepEvery = 5 * time.Minute
	// sweepBatch is how many events one sweep statement adds; a sweep
	// repeats until a batch comes back short.
	sweepBatch = 1000
)

// ActionStatus is the audit action of a refused report.
const ActionStatus = "device.status"

// Config configures a Service.
type Config struct {
	Store   Store
	Devices Authenticator
	// ExpiryThresholds: a certificate.expiring event is added once per
	// certificate for each (default DefaultExpiryThresholds).
	ExpiryThresholds []time.Duration
	// Heartbeat is how long an onboarded device that has reported may be
	// silent before a device.silent event, for a product without its own
	// interval; zero turns the check off for those products.
	Heartbeat time.Duration
	// SweepEvery is how often Run sweeps (default DefaultSweepEvery).
	SweepEvery time.Duration
	// Clone configures the possible-clone signals (watch.go).
	Clone CloneConfig
	Log   *slog.Logger
	Now   func() time.Time
}

// Service is the monitoring use case.
type Service struct {
	cfg      Config
	products productCache
	// feed carries onboarding's outcomes to Run, off the request path
	// (watch.go).
	feed    chan feedItem
	dropped atomic.Int64
}

// New checks cfg and returns the service.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Devices == nil {
		return nil, errors.New("monitoring: a store and an authenticator are required")
	}
	if cfg.ExpiryThresholds == nil {
		cfg.ExpiryThresholds = DefaultExpiryThresholds
	}
	for _, d := range cfg.ExpiryThresholds {
		if d < time.Hour || d%time.Second != 0 {
			return nil, fmt.Errorf("monitoring: expiry threshold %v: at least an hour, in whole seconds", d)
		}
	}
	if cfg.Heartbeat < 0 {
		return nil, fmt.Errorf("monitoring: heartbeat interval %v is negative", cfg.Heartbeat)
	}
	if cfg.SweepEvery <= 0 {
		cfg.SweepEvery = DefaultSweepEvery
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if err := cfg.Clone.defaults(); err != nil {
		return nil, err
	}
	return &Service{cfg: cfg, feed: make(chan feedItem, cfg.Clone.QueueSize)}, nil
}

// ExpiryThresholds returns the configured thresholds.
func (s *Service) ExpiryThresholds() []time.Duration { return slices.Clone(s.cfg.ExpiryThresholds) }

// Heartbeat returns the configured heartbeat interval (zero: off).
func (s *Service) Heartbeat() time.Duration { return s.cfg.Heartbeat }

// ReportStatus keeps a device's report as its latest, and now as its
// last-seen time. leaf is the client certificate mutual TLS verified; a
// device refused by its state or certificate is refused here as on the
// credentials route, and nothing is kept. Accepted reports are not
// audited: they are the device's heartbeat, and the latest is kept.
func (s *Service) ReportStatus(ctx context.Context, leaf *x509.Certificate, r StatusReport, addr string) (Receipt, error) {
	if err := r.Check(); err != nil {
		return Receipt{}, err
	}
	id, err := s.cfg.Devices.AuthenticateDevice(ctx, leaf, ActionStatus, addr)
	if err != nil {
		return Receipt{}, err
	}
	now := s.cfg.Now().UTC().Truncate(time.Microsecond)
	st := store.DeviceStatus{Identity: id, ReceivedAt: now, FirmwareVersion: r.FirmwareVersion,
		SecurityCounter: r.SecurityCounter, BootResult: r.BootResult, EnrolmentAlgorithm: r.EnrolmentAlgorithm,
		OperationalAlgorithm: r.OperationalAlgorithm, Uptime: time.Duration(r.UptimeSeconds) * time.Second, RemoteAddr: addr}
	rec, err := s.cfg.Store.RecordStatus(ctx, st)
	if err != nil {
		return Receipt{}, fmt.Errorf("record status: %w", err)
	}
	// The report is kept; what it shows is the platform's to act on, not
	// the device's to be refused for, so a failure here is logged only.
	if err := s.examine(ctx, st, rec); err != nil {
		s.cfg.Log.Warn("examine status report", "identity", id.String(), "err", err)
	}
	return Receipt{Identity: id, ReceivedAt: now}, nil
}

// ListEvents returns one page of the event log (store.Monitoring.ListEvents).
func (s *Service) ListEvents(ctx context.Context, f store.EventFilter) ([]store.DeviceEvent, error) {
	return s.cfg.Store.ListEvents(ctx, f)
}
