package onboarding

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
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
	ErrBadCSR           = errors.New("certificate request refused")
	ErrNotOnboarded     = errors.New("device certificate not recognised")
)

// Issuer is what the service needs of the CA.
type Issuer interface {
	// ParseCSR checks a PKCS #10 request's self-signature and returns its
	// public key.
	ParseCSR(der []byte) (crypto.PublicKey, error)
	// Issue signs a device certificate for pub, binding identity id.
	Issue(ctx context.Context, id identity.ID, pub crypto.PublicKey, validity time.Duration) (store.Certificate, error)
	// ChainPEM is the chain above a device certificate, issuing CA first.
	ChainPEM() []string
	// TrustBundlePEM is the root a device trusts the platform and its
	// certificates by.
	TrustBundlePEM() string
}

// Metrics observes outcomes; nil records nothing.
type Metrics interface {
	Observe(step, outcome string, took time.Duration)
}

// Config configures a Service.
type Config struct {
	Store  store.Store
	Issuer Issuer
	// ServerName is bound into every transcript: a proof made for one
	// platform does not verify at another.
	ServerName string
	Log        *slog.Logger
	Metrics    Metrics
	Now        func() time.Time
	// Rate limits per minute (and burst) per identity and per client
	// address; zero selects the defaults, negative disables.
	PerIdentity, PerAddress int
	// Connectors names the cloud connectors every onboarded device is
	// registered with: each onboarding (renewals too, since the
	// certificate changed) enqueues one register job per connector in the
	// transaction that records it.
	Connectors []string
}

// Default limits.
const (
	DefaultPerIdentity = 20
	DefaultPerAddress  = 600
	maxLimiterKeys     = 100_000
)

// Service is the server side of the protocol.
type Service struct {
	cfg        Config
	byIdentity *limiter
	byAddress  *limiter
	// decoy stands in for an unknown device's key, so that refusing an
	// unknown identity costs a signature verification like refusing a bad
	// proof does, and timing does not tell the two apart.
	decoy crypto.PublicKey
	// products caches products, which never change once created: every
	// onboarding reads its device's.
	products sync.Map // string -> store.Product
}

// product returns a product, from the cache when it can.
func (s *Service) product(ctx context.Context, id string) (store.Product, error) {
	if p, ok := s.products.Load(id); ok {
		return p.(store.Product), nil
	}
	p, err := s.cfg.Store.GetProduct(ctx, id)
	if err == nil {
		s.products.Store(id, p)
	}
	return p, err
}

// NewService checks cfg and builds a Service.
func NewService(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Issuer == nil {
		return nil, errors.New("onboarding: a store and an issuer are required")
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
	decoy, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg, decoy: decoy.Public()}
	s.byIdentity = newLimiter(orDefault(cfg.PerIdentity, DefaultPerIdentity), orDefault(cfg.PerIdentity, DefaultPerIdentity)/2+1, maxLimiterKeys)
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
	if !s.byAddress.allow(addr, now) || !s.byIdentity.allow(req.Identity.String(), now) {
		s.observe("challenge", "rate-limited", start)
		return ChallengeResponse{}, ErrRateLimited
	}
	if req.Identity.IsZero() {
		return ChallengeResponse{}, fmt.Errorf("%w: no identity", ErrMalformed)
	}
	c := store.Challenge{Identity: req.Identity, ServerName: s.cfg.ServerName, IssuedAt: now, ExpiresAt: now.Add(ChallengeTTL)}
	if _, err := rand.Read(c.ID[:]); err != nil {
		return ChallengeResponse{}, err
	}
	if _, err := rand.Read(c.Nonce[:]); err != nil {
		return ChallengeResponse{}, err
	}
	if err := s.cfg.Store.CreateChallenge(ctx, c); err != nil {
		return ChallengeResponse{}, fmt.Errorf("record challenge: %w", err)
	}
	s.observe("challenge", "ok", start)
	return ChallengeResponse{ChallengeID: hex.EncodeToString(c.ID[:]), Nonce: c.Nonce[:], ServerName: c.ServerName,
		Context: ProofContext, ExpiresAt: c.ExpiresAt}, nil
}

// Prove checks a device's answer and, if it holds, issues its credentials.
// Every attempt is written to the audit log: a success in the transaction
// that records it, a refusal on its own.
func (s *Service) Prove(ctx context.Context, req ProofRequest, addr string) (*Credentials, error) {
	start := s.cfg.Now()
	creds, err := s.prove(ctx, req, addr)
	if err != nil {
		outcome, code := "denied", ErrorCode(err)
		if code == "internal" {
			outcome = "error"
		}
		s.audit(ctx, req.Identity, "device.onboard", outcome, code, addr)
		s.observe("proof", code, start)
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
func (s *Service) prove(ctx context.Context, req ProofRequest, addr string) (*Credentials, error) {
	now := s.cfg.Now()
	if !s.byAddress.allow(addr, now) || !s.byIdentity.allow(req.Identity.String(), now) {
		return nil, ErrRateLimited
	}
	challengeID, err := checkProofRequest(req)
	if err != nil {
		return nil, err
	}
	ch, err := s.cfg.Store.GetChallenge(ctx, challengeID)
	switch {
	case errors.Is(err, store.ErrNotFound):
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
	audit := store.AuditEvent{Actor: "device:" + dev.Identity.String(), Action: "device.onboard",
		Subject: dev.Identity.String(), Outcome: "ok", Detail: "ok", RemoteAddr: addr}
	return s.issueWith(ctx, dev, opKey, func(cert store.Certificate, at time.Time, jobs []store.Job) error {
		audit.Time = at
		err := s.cfg.Store.CompleteOnboarding(ctx, challengeID, cert, at, audit, jobs...)
		switch {
		case errors.Is(err, store.ErrChallengeUsed):
			return ErrChallengeUsed
		case errors.Is(err, store.ErrChallengeExpired):
			return ErrChallengeExpired
		case errors.Is(err, store.ErrNotFound):
			// The challenge was deleted as expired meanwhile.
			return ErrChallengeExpired
		}
		return err
	})
}

// checkAnswer checks the proof and parses the CSR.
func (s *Service) checkAnswer(ctx context.Context, req ProofRequest, ch store.Challenge) (store.Device, crypto.PublicKey, error) {
	dev, err := s.checkProof(ctx, req, ch)
	if err != nil {
		return dev, nil, err
	}
	opKey, err := s.cfg.Issuer.ParseCSR(req.CSR)
	if err != nil {
		return dev, nil, fmt.Errorf("%w: %v", ErrBadCSR, err)
	}
	return dev, opKey, nil
}

// burn uses a challenge up after a refused answer, so it cannot be tried
// again; if it is already used or expired, so much the better.
func (s *Service) burn(ctx context.Context, id [ChallengeIDSize]byte, now time.Time) {
	if _, err := s.cfg.Store.ConsumeChallenge(ctx, id, now); err != nil && !errors.Is(err, store.ErrChallengeUsed) &&
		!errors.Is(err, store.ErrChallengeExpired) && !errors.Is(err, store.ErrNotFound) {
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
// failure before the signature is known good is ErrProofRejected, and an
// unknown identity is checked against the decoy key, so the answer and its
// cost do not reveal whether the identity is registered.
func (s *Service) checkProof(ctx context.Context, req ProofRequest, ch store.Challenge) (store.Device, error) {
	msg := ProofMessage(ch.ID, ch.Nonce[:], ch.ServerName, req.CSR, req.Identity)
	dev, err := s.cfg.Store.GetDevice(ctx, req.Identity)
	if errors.Is(err, store.ErrNotFound) {
		p256, _ := sigalg.Lookup(string(sigalg.ECDSAP256))
		_ = p256.Verify(s.decoy, msg, req.Signature)
		return dev, ErrProofRejected
	}
	if err != nil {
		return dev, fmt.Errorf("look up device: %w", err)
	}
	pub, err := sigalg.ParsePublicKey(dev.PublicKey)
	if err != nil {
		return dev, fmt.Errorf("registered key of %s: %w", dev.Identity, err)
	}
	suite, err := sigalg.SuiteOf(pub)
	if err != nil {
		return dev, err
	}
	sigOK := suite.Verify(pub, msg, req.Signature) == nil
	if !sigOK || !ch.Identity.Equal(req.Identity) || identity.FromSPKI(dev.PublicKey) != dev.Identity {
		return dev, ErrProofRejected
	}
	if dev.State == store.StateRevoked {
		return dev, ErrRevoked
	}
	return dev, nil
}
