package onboarding

import (
	"context"
	"crypto"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// Errors the transport maps to responses. None says whether an identity is
// registered: an unknown identity, a challenge for another identity and a
// bad signature are all ErrProofRejected.
var (
	ErrMalformed        = errors.New("malformed onboarding request")
	ErrRateLimited      = errors.New("too many onboarding requests")
	ErrChallengeUnknown = errors.New("unknown challenge")
	ErrChallengeUsed    = errors.New("challenge already used")
	ErrChallengeExpired = errors.New("challenge expired")
	ErrProofRejected    = errors.New("proof of possession rejected")
	ErrRevoked          = errors.New("device revoked")
	// ErrSuspended and ErrDecommissioned refuse a device an
	// administrator suspended (until resumed) or decommissioned (until
	// reprovisioned). Like ErrRevoked, they are answered only after the
	// device proved its identity.
	ErrSuspended      = errors.New("device suspended")
	ErrDecommissioned = errors.New("device decommissioned")
	// ErrMigrated refuses an identity a post-quantum migration
	// superseded: the device goes by its successor now, and this
	// identity never onboards, renews or authenticates again.
	ErrMigrated = errors.New("device identity migrated to a successor")
	// ErrNotLocked refuses onboarding to a device whose product requires
	// locked devices and whose manifest record does not say the station
	// locked it (docs/manufacturing.md, "Locking the device"); like
	// ErrRevoked, it is answered only after the device proved its
	// identity.
	ErrNotLocked    = errors.New("device not recorded locked, and its product requires locked devices")
	ErrBadCSR       = errors.New("certificate request refused")
	ErrNotOnboarded = errors.New("device certificate not recognised")
)

// Issuer is what the service needs of the CA
// (internal/onboarding/onboardpki adapts the platform's).
type Issuer interface {
	// ParseCSR checks a PKCS #10 request's self-signature and returns
	// what the service checks of it.
	ParseCSR(der []byte) (CertificateRequest, error)
	// Issue signs a device certificate for pub, binding identity id; the
	// service sets its KeyHash.
	Issue(ctx context.Context, id identity.ID, pub crypto.PublicKey, validity time.Duration) (Certificate, error)
	// ChainPEM is the chain above a device certificate, issuing CA first.
	ChainPEM() []string
	// TrustBundlePEM is the root a device trusts the platform and its
	// certificates by.
	TrustBundlePEM() string
}

// IssuerSet is an Issuer over several CAs, each product issuing under
// the one it names (docs/pki.md, "Several CAs"). Its own Issue, ChainPEM
// and TrustBundlePEM are the first CA's. The service finds it by a type
// assertion on Config.Issuer, so an Issuer of one CA needs nothing more.
type IssuerSet interface {
	Issuer
	// ForProduct is the Issuer of p's new certificates; a product
	// naming a CA the platform lacks is an error.
	ForProduct(p Product) (Issuer, error)
	// ForCertificate is the Issuer that signed cert, whose chain and
	// trust bundle go with it; nil if none of the set did.
	ForCertificate(cert Certificate) Issuer
}

// IssuerFor is the Issuer of p's new certificates: iss itself unless it
// is an IssuerSet. Every front door that issues a device certificate (a
// migration too) asks it, so that a product's CA is the same for all.
func IssuerFor(iss Issuer, p Product) (Issuer, error) {
	if set, ok := iss.(IssuerSet); ok {
		return set.ForProduct(p)
	}
	return iss, nil
}

// issuerOf is the Issuer that signed cert: iss unless an IssuerSet knows
// better.
func issuerOf(iss Issuer, cert Certificate) Issuer {
	if set, ok := iss.(IssuerSet); ok {
		if signer := set.ForCertificate(cert); signer != nil {
			return signer
		}
	}
	return iss
}

// Metrics observes outcomes; nil records nothing.
type Metrics interface {
	Observe(step, outcome string, took time.Duration)
}

// CertificateRequest is what the service checks of a PKCS #10 request
// whose self-signature verified.
type CertificateRequest struct {
	PublicKey crypto.PublicKey
	// CommonName is the subject's common name if the subject has exactly
	// one, "" otherwise.
	CommonName string
	// ChallengePassword is the PKCS #9 challengePassword, "" without one.
	ChallengePassword string
}

// Config configures a Service.
type Config struct {
	// State keeps challenges, reads devices and records certificates and
	// audit events (internal/onboarding/onboardstore binds the platform's
	// store).
	State  State
	Issuer Issuer
	// ServerName is bound into every transcript: a proof made for one
	// platform does not verify at another.
	ServerName string
	Log        *slog.Logger
	Metrics    Metrics
	Now        func() time.Time
	// Rate limits, requests per minute: PerIdentity for each identity
	// claimed from each source (an IPv4 address or an IPv6 /64), so that no
	// one can spend another source's budget for a device; PerAddress for
	// each source, whatever it claims. The bursts are PerIdentity/2+1 and
	// PerAddress/4+1. Zero selects the defaults, negative disables. There is
	// deliberately no limit per identity across sources (docs/protocol.md).
	PerIdentity, PerAddress int
	// Issuance says what is certified and how often (issuance.go): the
	// certificate request's binding, the renewal limit, the grace of a
	// replaced certificate.
	Issuance IssuancePolicy
	// Refusals records refused attempts (any refusal of a proof, a
	// refused challenge) as counters and bounded audit summaries instead
	// of one audit event each; nil writes one event per refused proof
	// except a rate-limited one.
	Refusals Refusals
	// Watch is told of every successful onboarding (outcome.go); nil
	// tells no one.
	Watch Watch
	// CertificatesRevoked is called after a device revoked a certificate
	// of its own (RevokeOwn), so that the CRL and OCSP answers follow at
	// once; nil calls nothing.
	CertificatesRevoked func()
}

// Default limits.
const (
	DefaultPerIdentity = 20
	DefaultPerAddress  = 600
	maxLimiterKeys     = 100_000
)

// Service is the server side of the protocol.
type Service struct {
	cfg Config
	// byClaim limits each identity claimed from each source; byAddress
	// each source (ratelimit.go).
	byClaim   *limiter
	byAddress *limiter
	// decoys stand in for an unknown device's key, one per suite, so that
	// refusing an unknown identity costs what refusing a bad proof for a
	// registered one does, and timing does not tell the two apart.
	decoys decoys
	// shadows holds a registered identity of each suite, whose row an
	// unknown identity's lookup reads too (lookUp).
	shadows sync.Map // sigalg.ID -> identity.ID
	// products caches products for productTTL: every onboarding reads
	// its device's, and an administrator may change a product's renewal
	// window.
	products sync.Map // string -> cachedProduct
}

// productTTL bounds how long a changed product's old policy is applied.
const productTTL = 30 * time.Second

type cachedProduct struct {
	p  Product
	at time.Time
}

// product returns a product, from the cache when it can.
func (s *Service) product(ctx context.Context, id string) (Product, error) {
	now := s.cfg.Now()
	if c, ok := s.products.Load(id); ok {
		if age := now.Sub(c.(cachedProduct).at); age >= 0 && age < productTTL {
			return c.(cachedProduct).p, nil
		}
	}
	p, err := s.cfg.State.Product(ctx, id)
	if err == nil {
		s.products.Store(id, cachedProduct{p: p, at: now})
	}
	return p, err
}

// NewService checks cfg and builds a Service.
func NewService(cfg Config) (*Service, error) {
	if cfg.State == nil || cfg.Issuer == nil {
		return nil, errors.New("onboarding: a state and an issuer are required")
	}
	if cfg.ServerName == "" || len(cfg.ServerName) > MaxServerName {
		return nil, fmt.Errorf("onboarding: server name of %d bytes", len(cfg.ServerName))
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	decoys, err := newDecoys()
	if err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg, decoys: decoys}
	s.byClaim = newLimiter(orDefault(cfg.PerIdentity, DefaultPerIdentity), orDefault(cfg.PerIdentity, DefaultPerIdentity)/2+1, maxLimiterKeys)
	s.byAddress = newLimiter(orDefault(cfg.PerAddress, DefaultPerAddress), orDefault(cfg.PerAddress, DefaultPerAddress)/4+1, maxLimiterKeys)
	return s, nil
}

func orDefault(v, def int) int {
	switch {
	case v == 0:
		return def
	case v < 0:
		return 0
	}
	return v
}

// Challenge answers a device's first message. The challenge is recorded
// whether or not the identity is registered, and the answer looks the same.
func (s *Service) Challenge(ctx context.Context, req ChallengeRequest, addr string) (ChallengeResponse, error) {
	start := s.cfg.Now()
	now := start
	if !s.allow(req.Identity, addr, now) {
		s.refuse(ctx, req.Identity, "device.challenge", ErrRateLimited, addr)
		s.observe("challenge", "rate-limited", start)
		return ChallengeResponse{}, ErrRateLimited
	}
	if req.Identity.IsZero() {
		return ChallengeResponse{}, fmt.Errorf("%w: no identity", ErrMalformed)
	}
	c := Challenge{Identity: req.Identity, ServerName: s.cfg.ServerName, IssuedAt: now, ExpiresAt: now.Add(ChallengeTTL)}
	if _, err := rand.Read(c.ID[:]); err != nil {
		return ChallengeResponse{}, err
	}
	if _, err := rand.Read(c.Nonce[:]); err != nil {
		return ChallengeResponse{}, err
	}
	if err := s.cfg.State.CreateChallenge(ctx, c); err != nil {
		return ChallengeResponse{}, fmt.Errorf("record challenge: %w", err)
	}
	s.observe("challenge", "ok", start)
	return ChallengeResponse{ChallengeID: hex.EncodeToString(c.ID[:]), Nonce: c.Nonce[:], ServerName: c.ServerName,
		Context: ProofContext, ExpiresAt: c.ExpiresAt}, nil
}

// Prove checks a device's answer and, if it holds, issues its credentials.
// Every attempt reaches the audit log: a success in the transaction that
// records it, a refusal through Config.Refusals (counted, and summarised
// per source and interval) or on its own.
func (s *Service) Prove(ctx context.Context, req ProofRequest, addr string) (*Credentials, error) {
	start := s.cfg.Now()
	creds, err := s.prove(ctx, req, addr)
	if err != nil {
		s.refuse(ctx, req.Identity, "device.onboard", err, addr)
		s.observe("proof", ErrorCode(err), start)
		return nil, err
	}
	s.observe("proof", "ok", start)
	return creds, nil
}

// prove reads the challenge without consuming it, checks the proof and the
// CSR and signs the certificate; one store transaction then consumes the
// challenge and records the onboarding, its jobs and its audit entry, so a
// success costs one commit. Of concurrent answers to one challenge only
// that transaction's winner is recorded and answered; a loser's certificate
// is dropped unseen. A refused answer still uses the challenge up.
func (s *Service) prove(ctx context.Context, req ProofRequest, addr string) (_ *Credentials, err error) {
	now := s.cfg.Now()
	if !s.allow(req.Identity, addr, now) {
		return nil, ErrRateLimited
	}
	challengeID, err := checkProofRequest(req)
	if err != nil {
		return nil, err
	}
	ch, err := s.cfg.State.GetChallenge(ctx, challengeID)
	switch {
	case errors.Is(err, ErrNotFound):
		return nil, ErrChallengeUnknown
	case err != nil:
		return nil, fmt.Errorf("read challenge: %w", err)
	case !ch.UsedAt.IsZero():
		return nil, ErrChallengeUsed
	case !now.Before(ch.ExpiresAt):
		return nil, ErrChallengeExpired
	}
	dev, opKey, err := s.checkAnswer(ctx, req, ch)
	if err != nil {
		s.burn(ctx, challengeID, now)
		return nil, err
	}
	return s.onboard(ctx, dev, opKey, addr, func(cert Certificate, at time.Time, ev Event) error {
		err := s.cfg.State.CompleteOnboarding(ctx, challengeID, cert, at, ev)
		switch {
		case errors.Is(err, ErrChallengeUsed):
			return ErrChallengeUsed
		case errors.Is(err, ErrChallengeExpired):
			return ErrChallengeExpired
		case errors.Is(err, ErrNotFound):
			// The challenge was deleted as expired meanwhile.
			return ErrChallengeExpired
		case errors.Is(err, ErrKeyInUse):
			s.burn(ctx, challengeID, at) // a refused answer, like a bad CSR
		}
		return err
	})
}

// onboard issues dev's certificate for opKey and records the onboarding
// by complete, the door's one write, with its audit event; Watch hears of
// it once it succeeded. Every door's first onboarding ends here.
func (s *Service) onboard(ctx context.Context, dev Device, opKey crypto.PublicKey, addr string,
	complete func(cert Certificate, at time.Time, ev Event) error) (_ *Credentials, err error) {
	ev := Event{Identity: dev.Identity, Action: "device.onboard", Outcome: "ok", Detail: "ok", Source: addr}
	defer func() {
		if err == nil && s.cfg.Watch != nil {
			s.cfg.Watch.Onboarded(ctx, Onboarding{Identity: dev.Identity, Source: addr, At: ev.Time,
				Again: dev.Standing == StandingOnboarded})
		}
	}()
	return s.issueWith(ctx, dev, opKey, func(cert Certificate, at time.Time) error {
		ev.Time = at
		return complete(cert, at, ev)
	})
}

// checkAnswer checks the proof, then the CSR: it must name the device and,
// if it carries a binding, be bound to this challenge (issuance.go).
func (s *Service) checkAnswer(ctx context.Context, req ProofRequest, ch Challenge) (Device, crypto.PublicKey, error) {
	dev, err := s.checkProof(ctx, req, ch)
	if err != nil {
		return dev, nil, err
	}
	if err := s.checkLocked(ctx, dev); err != nil {
		return dev, nil, err
	}
	opKey, err := s.checkCSR(req.CSR, dev.Identity, CSRBinding(ch.ID, ch.Nonce[:], ch.ServerName))
	if err != nil {
		return dev, nil, err
	}
	return dev, opKey, nil
}

// checkLocked refuses a device not recorded locked when its product
// requires locked devices: one imported before the requirement was set,
// since an import under it refuses such devices. The product is the
// cached one, so a requirement set a moment ago applies within productTTL.
func (s *Service) checkLocked(ctx context.Context, dev Device) error {
	if dev.Locked {
		return nil
	}
	product, err := s.product(ctx, dev.ProductID)
	if err != nil {
		return fmt.Errorf("product %q of %s: %w", dev.ProductID, dev.Identity, err)
	}
	if product.RequireLocked {
		return fmt.Errorf("%w: product %q", ErrNotLocked, product.ID)
	}
	return nil
}

// burn uses a challenge up after a refused answer, so it cannot be tried
// again; if it is already used or expired, so much the better.
func (s *Service) burn(ctx context.Context, id [ChallengeIDSize]byte, now time.Time) {
	if err := s.cfg.State.UseChallenge(ctx, id, now); err != nil && !errors.Is(err, ErrChallengeUsed) &&
		!errors.Is(err, ErrChallengeExpired) && !errors.Is(err, ErrNotFound) {
		s.cfg.Log.Error("use up a refused challenge", "err", err)
	}
}

func checkProofRequest(req ProofRequest) ([ChallengeIDSize]byte, error) {
	var id [ChallengeIDSize]byte
	raw, err := hex.DecodeString(req.ChallengeID)
	if err != nil || len(raw) != ChallengeIDSize || hex.EncodeToString(raw) != req.ChallengeID {
		return id, fmt.Errorf("%w: challenge_id must be %d lowercase hex characters", ErrMalformed, 2*ChallengeIDSize)
	}
	copy(id[:], raw)
	switch {
	case req.Identity.IsZero():
		return id, fmt.Errorf("%w: no identity", ErrMalformed)
	case len(req.CSR) == 0 || len(req.CSR) > MaxCSR:
		return id, fmt.Errorf("%w: csr of %d bytes (1 to %d)", ErrMalformed, len(req.CSR), MaxCSR)
	case len(req.Signature) == 0 || len(req.Signature) > MaxSignature:
		return id, fmt.Errorf("%w: signature of %d bytes (1 to %d)", ErrMalformed, len(req.Signature), MaxSignature)
	}
	return id, nil
}

// checkProof verifies the signature against the registered key. Every
// failure before the signature is known good is ErrProofRejected, and the
// work is the same whether or not the identity is registered, so neither
// the answer nor its cost reveals which: the signature's form implies a
// suite (impliedSuite); the store reads one registered row and misses one
// (lookUp); if the identity is registered with that suite its key is
// checked, and otherwise that suite's decoy, step for step: parse the key,
// hash it to an identity, compare it and the challenge's identity with the
// claimed one, verify the signature.
func (s *Service) checkProof(ctx context.Context, req ProofRequest, ch Challenge) (Device, error) {
	msg := ProofMessage(ch.ID, ch.Nonce[:], ch.ServerName, req.CSR, req.Identity)
	implied := impliedSuite(req.Signature)
	dev, registered, err := s.lookUp(ctx, req.Identity, implied)
	if err != nil {
		return dev, err
	}
	spki, genuine := s.proofKey(dev, registered, implied)
	pub, suite, err := sigalg.ParsePublicKeyWithSuite(spki)
	if err != nil {
		// A key registered before the key policy refused it (a weak key)
		// proves nothing: refuse as any bad proof, and say why in the log.
		s.cfg.Log.Warn("registered key fails the key policy", "identity", dev.Identity.String(), "err", err)
		return dev, ErrProofRejected
	}
	sigOK := suite.Verify(pub, msg, req.Signature) == nil
	keyOK := identity.FromSPKI(spki).Equal(req.Identity)
	challengeOK := ch.Identity.Equal(req.Identity)
	if !genuine || !sigOK || !keyOK || !challengeOK {
		return dev, ErrProofRejected
	}
	// Only now, with the proof verified, may the answer depend on the
	// device's record: the state check adds nothing an unknown identity
	// could be told apart by.
	return dev, dev.Standing.refusal()
}
