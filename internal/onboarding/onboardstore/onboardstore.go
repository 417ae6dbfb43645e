// Package onboardstore binds the onboarding protocol's state
// (onboarding.State) to the platform's store: it translates records and
// errors between the two, builds the audit events (audit.Build) and asks
// the outbox policy (connector.Outbox) which jobs an onboarding enqueues,
// so that onboarding knows neither the store, the audit log's format nor
// the cloud connectors.
package onboardstore

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/hallmark-iot/hallmark/internal/audit"
	"github.com/hallmark-iot/hallmark/internal/connector"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/manifest"
	"github.com/hallmark-iot/hallmark/internal/onboarding"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// Store is what the binding uses of the platform's store.
type Store interface {
	CreateChallenge(ctx context.Context, c store.Challenge) error
	GetChallenge(ctx context.Context, id [16]byte) (store.Challenge, error)
	ConsumeChallenge(ctx context.Context, id [16]byte, now time.Time) (store.Challenge, error)
	GetDeviceOfSuite(ctx context.Context, id identity.ID, alg sigalg.ID) (store.Device, error)
	GetDevice(ctx context.Context, id identity.ID) (store.Device, error)
	GetProduct(ctx context.Context, id string) (store.Product, error)
	GetCertificate(ctx context.Context, serial [16]byte) (store.Certificate, error)
	ListCertificates(ctx context.Context, id identity.ID) ([]store.Certificate, error)
	CompleteOnboarding(ctx context.Context, challengeID [16]byte, cert store.Certificate, at time.Time, audit store.AuditEvent, jobs ...store.Job) error
	RenewCertificate(ctx context.Context, cert store.Certificate, at time.Time, terms store.RenewalTerms, jobs ...store.Job) (bool, error)
	GetRenewalGrant(ctx context.Context, id identity.ID) (store.RenewalGrant, error)
	RevokeCertificate(ctx context.Context, serial [16]byte, reason int, at time.Time, audit store.AuditEvent) (bool, error)
	audit.Appender
}

// Config configures a State.
type Config struct {
	Store Store
	// Outbox says which connector jobs an onboarding or a renewal
	// enqueues with it.
	Outbox connector.Outbox
	// Log receives the audit events that could not be written; nil
	// discards.
	Log *slog.Logger
	// Now dates events written on their own; nil is time.Now.
	Now func() time.Time
}

// State is onboarding.State over the platform's store.
type State struct {
	st     Store
	outbox connector.Outbox
	audit  *audit.Recorder
}

// New returns the binding cfg describes.
func New(cfg Config) *State {
	return &State{st: cfg.Store, outbox: cfg.Outbox, audit: audit.NewRecorder(cfg.Store, cfg.Log, cfg.Now)}
}

var _ onboarding.State = (*State)(nil)

// CreateChallenge implements onboarding.Challenges.
func (s *State) CreateChallenge(ctx context.Context, c onboarding.Challenge) error {
	return translate(s.st.CreateChallenge(ctx, store.Challenge{ID: c.ID, Identity: c.Identity, Nonce: c.Nonce,
		ServerName: c.ServerName, IssuedAt: c.IssuedAt, ExpiresAt: c.ExpiresAt, UsedAt: c.UsedAt}))
}

// GetChallenge implements onboarding.Challenges.
func (s *State) GetChallenge(ctx context.Context, id [onboarding.ChallengeIDSize]byte) (onboarding.Challenge, error) {
	c, err := s.st.GetChallenge(ctx, id)
	if err != nil {
		return onboarding.Challenge{}, translate(err)
	}
	return onboarding.Challenge{ID: c.ID, Identity: c.Identity, Nonce: c.Nonce, ServerName: c.ServerName,
		IssuedAt: c.IssuedAt, ExpiresAt: c.ExpiresAt, UsedAt: c.UsedAt}, nil
}

// UseChallenge implements onboarding.Challenges.
func (s *State) UseChallenge(ctx context.Context, id [onboarding.ChallengeIDSize]byte, at time.Time) error {
	_, err := s.st.ConsumeChallenge(ctx, id, at)
	return translate(err)
}

// DeviceOfSuite implements onboarding.Registry.
func (s *State) DeviceOfSuite(ctx context.Context, id identity.ID, suite sigalg.ID) (onboarding.Device, error) {
	d, err := s.st.GetDeviceOfSuite(ctx, id, suite)
	return device(d), translate(err)
}

// Device implements onboarding.Registry.
func (s *State) Device(ctx context.Context, id identity.ID) (onboarding.Device, error) {
	d, err := s.st.GetDevice(ctx, id)
	return device(d), translate(err)
}

// Product implements onboarding.Registry.
func (s *State) Product(ctx context.Context, id string) (onboarding.Product, error) {
	p, err := s.st.GetProduct(ctx, id)
	if err != nil {
		return onboarding.Product{}, translate(err)
	}
	return onboarding.Product{ID: p.ID, CertValidity: p.CertValidity, CloudEndpoint: p.CloudEndpoint, RenewalWindow: p.RenewalWindow,
		IssuingCA: p.IssuingCA, RequireLocked: p.RequireLocked}, nil
}

// Certificate implements onboarding.Certificates.
func (s *State) Certificate(ctx context.Context, serial [16]byte) (onboarding.Certificate, error) {
	c, err := s.st.GetCertificate(ctx, serial)
	return fromStore(c), translate(err)
}

// Certificates implements onboarding.Certificates.
func (s *State) Certificates(ctx context.Context, id identity.ID) ([]onboarding.Certificate, error) {
	certs, err := s.st.ListCertificates(ctx, id)
	if err != nil {
		return nil, translate(err)
	}
	out := make([]onboarding.Certificate, len(certs))
	for i, c := range certs {
		out[i] = fromStore(c)
	}
	return out, nil
}

// CompleteOnboarding implements onboarding.Certificates: the audit event
// and the register jobs go in the store's transaction.
func (s *State) CompleteOnboarding(ctx context.Context, challengeID [onboarding.ChallengeIDSize]byte, cert onboarding.Certificate,
	at time.Time, ev onboarding.Event) error {
	return translate(s.st.CompleteOnboarding(ctx, challengeID, toStore(cert), at, audit.Build(event(ev), at),
		s.outbox.Onboarded(cert.Identity)...))
}

// Record implements onboarding.AuditLog.
func (s *State) Record(ctx context.Context, ev onboarding.Event) {
	s.audit.Record(ctx, event(ev))
}

func device(d store.Device) onboarding.Device {
	return onboarding.Device{Identity: d.Identity, Suite: d.Algorithm, PublicKey: d.PublicKey, ProductID: d.ProductID,
		Standing: standing(d.State), Locked: manifest.Locks(d.Locks).Closed()}
}

// standing is onboarding's view of a device state. An unknown state (a
// newer binary's) is refused as revoked: failing closed.
func standing(s store.DeviceState) onboarding.Standing {
	switch s {
	case store.StateRegistered, "":
		return onboarding.StandingRegistered
	case store.StateOnboarded:
		return onboarding.StandingOnboarded
	case store.StateSuspended:
		return onboarding.StandingSuspended
	case store.StateDecommissioned:
		return onboarding.StandingDecommissioned
	case store.StateMigrated:
		return onboarding.StandingMigrated
	}
	return onboarding.StandingRevoked
}

// standingError is onboarding's error for a certificate the store
// refused because of the device's state.
func standingError(s store.DeviceState) error {
	switch standing(s) {
	case onboarding.StandingSuspended:
		return onboarding.ErrSuspended
	case onboarding.StandingDecommissioned:
		return onboarding.ErrDecommissioned
	case onboarding.StandingMigrated:
		return onboarding.ErrMigrated
	}
	return onboarding.ErrRevoked
}

func fromStore(c store.Certificate) onboarding.Certificate {
	return onboarding.Certificate{Serial: c.Serial, Identity: c.Identity, NotBefore: c.NotBefore, NotAfter: c.NotAfter,
		DER: c.DER, IssuedAt: c.IssuedAt, RevokedAt: c.RevokedAt, KeyHash: c.KeyHash, SupersededAt: c.SupersededAt}
}

func toStore(c onboarding.Certificate) store.Certificate {
	return store.Certificate{Serial: c.Serial, Identity: c.Identity, NotBefore: c.NotBefore, NotAfter: c.NotAfter,
		DER: c.DER, IssuedAt: c.IssuedAt, RevokedAt: c.RevokedAt, KeyHash: c.KeyHash}
}

// event is a device's event as the audit log files it: by the device,
// about its identity.
func event(ev onboarding.Event) store.AuditEvent {
	id := ev.Identity.String()
	return store.AuditEvent{Time: ev.Time, Actor: "device:" + id, Action: ev.Action, Subject: id,
		Outcome: ev.Outcome, Detail: ev.Detail, RemoteAddr: ev.Source}
}

// stateError is a store error that is also the onboarding error it
// means: errors.Is finds both, and its text is the store's.
type stateError struct{ kind, cause error }

func (e *stateError) Error() string   { return e.cause.Error() }
func (e *stateError) Unwrap() []error { return []error{e.kind, e.cause} }

// translate turns the store's errors into onboarding's.
func translate(err error) error {
	var lim *store.IssuanceLimitError
	var notDue *store.RenewalNotDueError
	var refused *store.StateError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &lim):
		return &stateError{&onboarding.IssuanceLimitError{RetryAt: lim.RetryAt}, err}
	case errors.As(err, &notDue):
		return &stateError{&onboarding.RenewalNotDueError{DueAt: notDue.DueAt}, err}
	case errors.As(err, &refused):
		return &stateError{standingError(refused.State), err}
	}
	for _, t := range []struct{ from, to error }{
		{store.ErrNotFound, onboarding.ErrNotFound}, {store.ErrChallengeUsed, onboarding.ErrChallengeUsed},
		{store.ErrChallengeExpired, onboarding.ErrChallengeExpired}, {store.ErrConflict, onboarding.ErrRevoked},
		{store.ErrExists, onboarding.ErrSerialTaken}, {store.ErrKeyInUse, onboarding.ErrKeyInUse},
	} {
		if errors.Is(err, t.from) {
			return &stateError{t.to, err}
		}
	}
	return err
}

// Refusals hands onboarding's refused attempts to the platform's
// aggregator (*audit.Aggregator), filed under the onboarding interface.
type Refusals struct {
	Aggregator interface {
		Refuse(ctx context.Context, r audit.Refusal)
	}
}

// Refuse implements onboarding.Refusals.
func (r Refusals) Refuse(ctx context.Context, x onboarding.Refusal) {
	id := x.Identity.String()
	r.Aggregator.Refuse(ctx, audit.Refusal{Interface: "onboarding", Action: x.Action, Reason: x.Reason, Source: x.Source,
		Actor: "device:" + id, Subject: id, SummaryOnly: x.SummaryOnly})
}
