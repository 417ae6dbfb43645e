package migration

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hallmark-iot/hallmark/internal/audit"
	"github.com/hallmark-iot/hallmark/internal/connector"
	"github.com/hallmark-iot/hallmark/internal/continuity"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/onboarding"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// Errors of the service the transport maps to problems (ErrorCode).
var (
	// ErrChallengeUnknown: no such challenge, or one issued to another
	// device (answered alike: a device learns nothing of others').
	ErrChallengeUnknown = errors.New("unknown migration challenge")
	ErrChallengeUsed    = errors.New("migration challenge already used")
	ErrChallengeExpired = errors.New("migration challenge expired")
	// ErrProofRejected: the continuity proof does not verify (a replay, a
	// proof for another challenge, another device's key, a bad signature).
	ErrProofRejected = errors.New("continuity proof rejected")
	// ErrNotAllowed: the migration's algorithms are not the one the
	// campaign opened, or a downgrade.
	ErrNotAllowed = errors.New("migration between these algorithms not allowed")
	// ErrIdentityTaken: the new identity is registered already, or the
	// old one has a successor (store.ErrLineage).
	ErrIdentityTaken = errors.New("new identity already registered")
)

// Authenticator finds the device of a client certificate mutual TLS
// verified, refusing it as the device routes do (onboarding.Service).
type Authenticator interface {
	AuthenticateDevice(ctx context.Context, leaf *x509.Certificate, action, addr string) (identity.ID, error)
}

// Store is what the service uses of the platform's store.
type Store interface {
	GetDevice(ctx context.Context, id identity.ID) (store.Device, error)
	GetProduct(ctx context.Context, id string) (store.Product, error)
	CreateMigrationChallenge(ctx context.Context, c store.MigrationChallenge) error
	ConsumeMigrationChallenge(ctx context.Context, id [16]byte, now time.Time) (store.MigrationChallenge, error)
	CompleteMigration(ctx context.Context, m store.Migration) (store.MigrationResult, error)
	audit.Appender
}

// Config configures a Service.
type Config struct {
	Store   Store
	Devices Authenticator
	// Issuer signs the successor's certificate: today the platform's one
	// issuing CA (docs/migration.md, "The platform's side").
	Issuer     onboarding.Issuer
	Authorizer Authorizer
	// Completion, if set, is told of each committed migration.
	Completion Completion
	// Outbox says which connector jobs a migration enqueues.
	Outbox connector.Outbox
	// ServerName is bound into every proof.
	ServerName string
	// CertificatesRevoked, if set, is called after a migration revoked
	// the old identity's certificates (the platform's NotifyRevocation).
	CertificatesRevoked func()
	Log                 *slog.Logger
	Now                 func() time.Time
}

// Service is the platform's side of a migration.
type Service struct {
	cfg   Config
	audit *audit.Recorder
}

// New checks cfg and builds a Service.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Devices == nil || cfg.Issuer == nil || cfg.Authorizer == nil {
		return nil, errors.New("migration: a store, an authenticator, an issuer and an authorizer are required")
	}
	if cfg.ServerName == "" || len(cfg.ServerName) > continuity.MaxServerName {
		return nil, fmt.Errorf("migration: server name of %d bytes", len(cfg.ServerName))
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Service{cfg: cfg, audit: audit.NewRecorder(cfg.Store, cfg.Log, cfg.Now)}, nil
}

// Audit actions.
const (
	ActionChallenge = "device.migrate.challenge"
	ActionMigrate   = "device.migrate"
)

// Challenge issues a migration challenge to the device that presented
// leaf, if its campaign allows it a migration now.
func (s *Service) Challenge(ctx context.Context, leaf *x509.Certificate, addr string) (ChallengeResponse, error) {
	id, err := s.cfg.Devices.AuthenticateDevice(ctx, leaf, ActionChallenge, addr)
	if err != nil {
		return ChallengeResponse{}, err // refused and audited by the authenticator
	}
	resp, err := s.challenge(ctx, id)
	if err != nil {
		s.record(ctx, id, ActionChallenge, err, addr)
	}
	return resp, err
}

func (s *Service) challenge(ctx context.Context, id identity.ID) (ChallengeResponse, error) {
	target, err := s.allowed(ctx, id)
	if err != nil {
		return ChallengeResponse{}, err
	}
	dev, err := s.cfg.Store.GetDevice(ctx, id)
	if err != nil {
		return ChallengeResponse{}, fmt.Errorf("read device: %w", err)
	}
	if !continuity.DefaultAllowed(dev.Algorithm, target) {
		return ChallengeResponse{}, fmt.Errorf("%w: %s to %s", ErrNotAllowed, dev.Algorithm, target)
	}
	ch, err := continuity.NewChallenge(rand.Reader, s.cfg.ServerName)
	if err != nil {
		return ChallengeResponse{}, err
	}
	now := s.cfg.Now()
	rec := store.MigrationChallenge{ID: ch.ID, Identity: id, Nonce: ch.Nonce, ServerName: ch.ServerName, Target: target,
		IssuedAt: now, ExpiresAt: now.Add(ChallengeTTL)}
	if err := s.cfg.Store.CreateMigrationChallenge(ctx, rec); err != nil {
		return ChallengeResponse{}, fmt.Errorf("record challenge: %w", err)
	}
	return ChallengeResponse{ChallengeID: hex.EncodeToString(ch.ID[:]), Nonce: ch.Nonce, ServerName: ch.ServerName,
		ExpiresAt: rec.ExpiresAt.UTC(), TargetAlgorithm: target}, nil
}

// allowed asks the Authorizer, turning its refusal into ErrNoMigration.
func (s *Service) allowed(ctx context.Context, id identity.ID) (sigalg.ID, error) {
	target, err := s.cfg.Authorizer.MigrationAllowed(ctx, id)
	switch {
	case errors.Is(err, ErrNoMigration):
		return "", ErrNoMigration
	case err != nil:
		return "", fmt.Errorf("authorize migration: %w", err)
	}
	if _, err := target.Suite(); err != nil {
		return "", fmt.Errorf("authorize migration: target %q: %w", target, err)
	}
	return target, nil
}

// Migrate checks a device's continuity proof and, if it holds, registers
// its successor and returns the successor's credentials.
func (s *Service) Migrate(ctx context.Context, leaf *x509.Certificate, req *Request, addr string) (*Response, error) {
	id, err := s.cfg.Devices.AuthenticateDevice(ctx, leaf, ActionMigrate, addr)
	if err != nil {
		return nil, err
	}
	creds, res, err := s.migrate(ctx, id, req, addr)
	if err != nil {
		s.record(ctx, id, ActionMigrate, err, addr)
		return nil, err
	}
	if res.Revoked > 0 && s.cfg.CertificatesRevoked != nil {
		s.cfg.CertificatesRevoked()
	}
	if s.cfg.Completion != nil {
		if err := s.cfg.Completion.MigrationCompleted(ctx, id, res.Successor.Identity); err != nil {
			s.cfg.Log.Error("migration completed, but its campaign was not told", "old", id.String(),
				"new", res.Successor.Identity.String(), "err", err)
		}
	}
	return creds, nil
}

func (s *Service) migrate(ctx context.Context, id identity.ID, req *Request, addr string) (*Response, store.MigrationResult, error) {
	var none store.MigrationResult
	if req == nil || req.Check() != nil {
		return nil, none, fmt.Errorf("%w: request fails its rules", ErrMalformed)
	}
	now := s.cfg.Now()
	// Consumed first, whatever follows: a proof, valid or not, is tried
	// once.
	rec, err := s.consume(ctx, req.Proof.ChallengeID, now)
	if err != nil {
		return nil, none, err
	}
	if rec.Identity != id {
		return nil, none, ErrChallengeUnknown
	}
	target, err := s.allowed(ctx, id)
	if err != nil {
		return nil, none, err
	}
	if target != rec.Target {
		return nil, none, fmt.Errorf("%w: the campaign's target changed to %s", ErrNotAllowed, target)
	}
	dev, err := s.cfg.Store.GetDevice(ctx, id)
	if err != nil {
		return nil, none, fmt.Errorf("read device: %w", err)
	}
	succ, err := s.verify(req.Proof, rec, dev)
	if err != nil {
		return nil, none, err
	}
	opKey, err := s.checkCSR(req.CSR, rec, succ.Identity)
	if err != nil {
		return nil, none, err
	}
	return s.commit(ctx, dev, succ, rec, opKey, addr)
}

func (s *Service) consume(ctx context.Context, chID [16]byte, now time.Time) (store.MigrationChallenge, error) {
	rec, err := s.cfg.Store.ConsumeMigrationChallenge(ctx, chID, now)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return rec, ErrChallengeUnknown
	case errors.Is(err, store.ErrChallengeUsed):
		return rec, ErrChallengeUsed
	case errors.Is(err, store.ErrChallengeExpired):
		return rec, ErrChallengeExpired
	case err != nil:
		return rec, fmt.Errorf("consume challenge: %w", err)
	}
	return rec, nil
}

// verify checks the proof against the challenge and the device on
// record, under a policy that allows the campaign's target only, and
// never a downgrade.
func (s *Service) verify(p *continuity.Proof, rec store.MigrationChallenge, dev store.Device) (continuity.Successor, error) {
	ch := continuity.Challenge{ID: rec.ID, Nonce: rec.Nonce, ServerName: rec.ServerName}
	pol := continuity.Policy{Allowed: func(from, to sigalg.ID) bool {
		return to == rec.Target && continuity.DefaultAllowed(from, to)
	}}
	succ, err := continuity.Verify(p, ch, continuity.Predecessor{Algorithm: dev.Algorithm, PublicKey: dev.PublicKey}, pol)
	switch {
	case errors.Is(err, continuity.ErrMigrationNotAllowed):
		return succ, fmt.Errorf("%w: %s to %s (the campaign allows %s)", ErrNotAllowed, p.OldAlgorithm, p.NewAlgorithm, rec.Target)
	case errors.Is(err, continuity.ErrMalformed):
		return succ, fmt.Errorf("%w: %w", ErrMalformed, err)
	case err != nil:
		return succ, fmt.Errorf("%w: %w", ErrProofRejected, err)
	}
	return succ, nil
}

// checkCSR parses the operational key's request: it must name the new
// identity and carry this challenge's binding.
func (s *Service) checkCSR(der []byte, rec store.MigrationChallenge, newID identity.ID) (crypto.PublicKey, error) {
	csr, err := s.cfg.Issuer.ParseCSR(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", onboarding.ErrBadCSR, err)
	}
	if csr.CommonName != newID.String() {
		return nil, fmt.Errorf("%w: the request's subject must name the NEW identity as its common name", onboarding.ErrBadCSR)
	}
	binding := CSRBinding(continuity.Challenge{ID: rec.ID, Nonce: rec.Nonce, ServerName: rec.ServerName}, newID)
	if subtle.ConstantTimeCompare([]byte(csr.ChallengePassword), []byte(binding)) != 1 {
		return nil, fmt.Errorf("%w: the request is not bound to this migration (challengePassword)", onboarding.ErrBadCSR)
	}
	return csr.PublicKey, nil
}

// commit signs the successor's certificate and records the migration in
// one store transaction.
func (s *Service) commit(ctx context.Context, dev store.Device, succ continuity.Successor, rec store.MigrationChallenge,
	opKey crypto.PublicKey, addr string) (*Response, store.MigrationResult, error) {
	var none store.MigrationResult
	product, err := s.cfg.Store.GetProduct(ctx, dev.ProductID)
	if err != nil {
		return nil, none, fmt.Errorf("product %q: %w", dev.ProductID, err)
	}
	spki, err := sigalg.MarshalPublicKey(opKey)
	if err != nil {
		return nil, none, fmt.Errorf("%w: %v", onboarding.ErrBadCSR, err)
	}
	cert, err := s.cfg.Issuer.Issue(ctx, succ.Identity, opKey, product.CertValidity)
	if err != nil {
		return nil, none, fmt.Errorf("issue certificate: %w", err)
	}
	cert.KeyHash = sha256.Sum256(spki)
	at := s.cfg.Now()
	ev := store.AuditEvent{Time: at, Actor: "device:" + dev.Identity.String(), Action: ActionMigrate, Subject: dev.Identity.String(),
		Outcome: "ok", Detail: fmt.Sprintf("successor %s, %s to %s", succ.Identity, dev.Algorithm, succ.Algorithm), RemoteAddr: addr}
	m := store.Migration{Old: dev.Identity, New: succ.Identity, NewAlgorithm: succ.Algorithm, NewPublicKey: succ.SPKI,
		Certificate: store.Certificate{Serial: cert.Serial, Identity: succ.Identity, NotBefore: cert.NotBefore, NotAfter: cert.NotAfter,
			DER: cert.DER, IssuedAt: cert.IssuedAt, KeyHash: cert.KeyHash},
		ChallengeID: rec.ID, At: at, Audit: audit.Build(ev, at),
		Jobs: append(s.cfg.Outbox.Revoked(dev), s.cfg.Outbox.Onboarded(succ.Identity)...)}
	res, err := s.cfg.Store.CompleteMigration(ctx, m)
	var refused *store.StateError
	switch {
	case errors.Is(err, store.ErrLineage):
		return nil, none, ErrIdentityTaken
	case errors.Is(err, store.ErrKeyInUse):
		return nil, none, fmt.Errorf("%w: the key is certified for another device", onboarding.ErrBadCSR)
	case errors.As(err, &refused):
		return nil, none, standingError(refused.State)
	case err != nil:
		return nil, none, fmt.Errorf("record migration: %w", err)
	}
	p := onboarding.Product{ID: product.ID, CertValidity: product.CertValidity, CloudEndpoint: product.CloudEndpoint,
		RenewalWindow: product.RenewalWindow}
	return onboarding.NewCredentials(cert, p, s.cfg.Issuer), res, nil
}

// standingError is the refusal of a device that changed state between
// its authentication and the migration's write.
func standingError(st store.DeviceState) error {
	switch st {
	case store.StateSuspended:
		return onboarding.ErrSuspended
	case store.StateDecommissioned:
		return onboarding.ErrDecommissioned
	case store.StateMigrated:
		return onboarding.ErrMigrated
	case store.StateRegistered:
		return onboarding.ErrNotOnboarded
	}
	return onboarding.ErrRevoked
}

// record writes a refused step to the audit log.
func (s *Service) record(ctx context.Context, id identity.ID, action string, err error, addr string) {
	outcome, code := "denied", ErrorCode(err)
	if code == "internal" {
		outcome = "error"
		s.cfg.Log.Error("migration failed", "action", action, "identity", id.String(), "err", err)
	}
	s.audit.Record(ctx, store.AuditEvent{Actor: "device:" + id.String(), Action: action, Subject: id.String(),
		Outcome: outcome, Detail: code, RemoteAddr: addr})
}

// ErrorCode names an error of the service for the audit log and the
// transport's problem codes: the migration's own codes, then
// onboarding's (a device refused for its standing, a bad CSR).
func ErrorCode(err error) string {
	for _, c := range []struct {
		err  error
		code string
	}{
		{ErrMalformed, "malformed"}, {ErrTooLarge, "too-large"}, {ErrNoMigration, "migration-not-open"},
		{ErrChallengeUnknown, "challenge-unknown"}, {ErrChallengeUsed, "challenge-used"},
		{ErrChallengeExpired, "challenge-expired"}, {ErrProofRejected, "continuity-rejected"},
		{ErrNotAllowed, "migration-not-allowed"}, {ErrIdentityTaken, "identity-taken"},
	} {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	return onboarding.ErrorCode(err)
}
