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
	"github.com/hallmark-iot/hallmark/internal/keys"
	"github.com/hallmark-iot/hallmark/internal/onboarding"
	"github.com/hallmark-iot/hallmark/internal/sealing"
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
	// ErrTransportKey: an inject chip's challenge request has no
	// transport key, or one its enrolment key did not sign.
	ErrTransportKey = errors.New("transport key missing or not signed by the device's enrolment key")
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
	// KeyGenerator makes the new enrolment key of an inject chip, which
	// cannot make its own, and exports it only sealed to the chip's
	// transport key (the platform's key manager: softkms, an HSM). Nil:
	// inject chips are refused (migration-not-allowed).
	KeyGenerator keys.DeviceKeyGenerator
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
	// ActionKeySealed records each enrolment key the platform generated
	// and released sealed to a chip, whether or not the migration then
	// completes: the trust an inject chip's migration asks of the
	// platform, auditable key by key.
	ActionKeySealed = "device.migrate.key-sealed"
)

// InjectedKeyNote ends the audit detail of a migration whose new key the
// platform generated: operators see which identities' keys existed
// outside their chip (docs/migration.md, "Inject-class chips").
const InjectedKeyNote = "key injected: generated by the platform's key store, sealed to the chip's transport key"

// Challenge issues a migration challenge to the device that presented
// leaf, if its campaign allows it a migration now.
//
// req is the request's body (nil: empty). An inject chip's carries its
// transport key, signed by its enrolment key; the answer then carries the
// new key, generated by the key store and sealed to that transport key.
func (s *Service) Challenge(ctx context.Context, leaf *x509.Certificate, req *ChallengeRequest, addr string) (ChallengeResponse, error) {
	id, err := s.cfg.Devices.AuthenticateDevice(ctx, leaf, ActionChallenge, addr)
	if err != nil {
		return ChallengeResponse{}, err // refused and audited by the authenticator
	}
	if req == nil {
		req = &ChallengeRequest{}
	}
	resp, err := s.challenge(ctx, id, req, addr)
	if err != nil {
		s.record(ctx, id, ActionChallenge, err, addr)
	}
	return resp, err
}

func (s *Service) challenge(ctx context.Context, id identity.ID, req *ChallengeRequest, addr string) (ChallengeResponse, error) {
	if err := req.Check(); err != nil {
		return ChallengeResponse{}, err
	}
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
	var sealed []byte
	if injected(dev) {
		var newID identity.ID
		if sealed, newID, err = s.sealKey(ctx, dev, target, req, addr); err != nil {
			return ChallengeResponse{}, err
		}
		ch.Nonce = append(ch.Nonce, newID[:]...)
	} else if len(req.TransportKey) > 0 {
		return ChallengeResponse{}, fmt.Errorf("%w: a %s chip makes its own key; only an inject chip sends a transport key", ErrMalformed, dev.RootOfTrust)
	}
	now := s.cfg.Now()
	rec := store.MigrationChallenge{ID: ch.ID, Identity: id, Nonce: ch.Nonce, ServerName: ch.ServerName, Target: target,
		IssuedAt: now, ExpiresAt: now.Add(ChallengeTTL)}
	if err := s.cfg.Store.CreateMigrationChallenge(ctx, rec); err != nil {
		return ChallengeResponse{}, fmt.Errorf("record challenge: %w", err)
	}
	return ChallengeResponse{ChallengeID: hex.EncodeToString(ch.ID[:]), Nonce: ch.Nonce, ServerName: ch.ServerName,
		ExpiresAt: rec.ExpiresAt.UTC(), TargetAlgorithm: target, SealedKey: sealed}, nil
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
	if injected(dev) {
		// The new key must be the one the platform sealed into this
		// challenge: the nonce, which both keys signed, names it.
		want, ok := injectedIdentity(rec.Nonce)
		if !ok || !sameIdentity(want, succ.Identity) {
			return nil, none, fmt.Errorf("%w: the new key is not the one the platform sealed to the chip", ErrProofRejected)
		}
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
	// The product's CA signs: a fleet moves to an ML-DSA CA with its
	// product (docs/pki.md, "Several CAs").
	iss, err := onboarding.IssuerFor(s.cfg.Issuer, onboarding.Product{ID: product.ID, IssuingCA: product.IssuingCA})
	if err != nil {
		return nil, none, fmt.Errorf("issuing CA of product %q: %w", product.ID, err)
	}
	cert, err := iss.Issue(ctx, succ.Identity, opKey, product.CertValidity)
	if err != nil {
		return nil, none, fmt.Errorf("issue certificate: %w", err)
	}
	cert.KeyHash = sha256.Sum256(spki)
	at := s.cfg.Now()
	ev := store.AuditEvent{Time: at, Actor: "device:" + dev.Identity.String(), Action: ActionMigrate, Subject: dev.Identity.String(),
		Outcome: "ok", Detail: fmt.Sprintf("successor %s, %s to %s", succ.Identity, dev.Algorithm, succ.Algorithm), RemoteAddr: addr}
	if injected(dev) {
		ev.Detail += "; " + InjectedKeyNote
	}
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
	// The successor is the same device: it keeps the endpoint allocated
	// to it (the store copied it), else the product's.
	endpoint := dev.CloudEndpoint
	if endpoint == "" {
		endpoint = product.CloudEndpoint
	}
	p := onboarding.Product{ID: product.ID, CertValidity: product.CertValidity, CloudEndpoint: endpoint,
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
		{ErrTransportKey, "transport-key-rejected"},
	} {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	return onboarding.ErrorCode(err)
}

// injected reports whether dev's migration key comes from the platform:
// an inject chip with an encrypted programming channel. One without a
// channel is injected too, and refused by sealKey.
func injected(dev store.Device) bool { return dev.RootOfTrust == "inject" }

// sealKey checks an inject chip's transport key against its recorded
// enrolment key, has the key store generate the new key for target and
// export it sealed to that transport key, and records the release. The
// plaintext key is the key store's alone: it never reaches this process's
// variables unsealed, the store or the log.
func (s *Service) sealKey(ctx context.Context, dev store.Device, target sigalg.ID, req *ChallengeRequest, addr string) ([]byte, identity.ID, error) {
	var none identity.ID
	if dev.Injection != "encrypted" {
		return nil, none, fmt.Errorf("%w: an inject chip without an encrypted programming channel cannot take a key over the air; it goes back to a station", ErrNotAllowed)
	}
	if s.cfg.KeyGenerator == nil {
		return nil, none, fmt.Errorf("%w: this platform's key store cannot generate device keys for inject chips", ErrNotAllowed)
	}
	if len(req.TransportKey) == 0 {
		return nil, none, fmt.Errorf("%w: an inject chip must send its transport key", ErrTransportKey)
	}
	suite, err := dev.Algorithm.Suite()
	if err != nil {
		return nil, none, fmt.Errorf("device's enrolment suite: %w", err)
	}
	pub, err := sigalg.ParsePublicKey(dev.PublicKey)
	if err != nil {
		return nil, none, fmt.Errorf("device's enrolment key: %w", err)
	}
	msg := identity.ProofMessage(TransportKeyContext, TransportKeyMessage(s.cfg.ServerName, req.TransportKey), dev.Identity)
	if err := suite.Verify(pub, msg, req.TransportKeySignature); err != nil {
		return nil, none, ErrTransportKey
	}
	transport, err := sealing.ParsePublicKey(req.TransportKey)
	if err != nil {
		return nil, none, fmt.Errorf("%w: transport key: %v", ErrMalformed, err)
	}
	newPub, sealed, err := s.cfg.KeyGenerator.GenerateDeviceKey(ctx, target, migrationWrap{transport})
	if errors.Is(err, keys.ErrUnsupported) {
		// The key store cannot make this suite's key, or cannot seal to
		// the chip's HPKE transport key inside itself (a PKCS #11 token):
		// the device is told why, not sent a 500; nothing was released.
		return nil, none, fmt.Errorf("%w: the platform's key store cannot release a %s key to this chip over the air: %v", ErrNotAllowed, target, err)
	}
	if err != nil {
		return nil, none, fmt.Errorf("generate the device's key: %w", err)
	}
	spki, err := sigalg.MarshalPublicKey(newPub)
	if err != nil {
		return nil, none, fmt.Errorf("generate the device's key: %w", err)
	}
	newID := identity.FromSPKI(spki)
	fp := transport.Fingerprint()
	s.audit.Record(ctx, store.AuditEvent{Actor: "device:" + dev.Identity.String(), Action: ActionKeySealed, Subject: dev.Identity.String(),
		Outcome: "ok", Detail: fmt.Sprintf("%s key %s generated by the platform, sealed to transport key %x", target, newID, fp[:8]),
		RemoteAddr: addr})
	return sealed, newID, nil
}

// migrationWrap seals under KeyWrapInfo, not the factory's info.
type migrationWrap struct{ pub *sealing.PublicKey }

func (w migrationWrap) Wrap(plaintext []byte) ([]byte, error) {
	return sealing.Seal(w.pub, []byte(KeyWrapInfo), nil, plaintext)
}
