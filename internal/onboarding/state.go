package onboarding

import (
	"context"
	"errors"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// The state the Service keeps, in its own terms: the records it reads and
// writes, and one small interface per role, so that a reader sees what
// each step touches and a backend binds to the protocol without the
// protocol knowing the backend (internal/onboarding/onboardstore binds
// them to the platform's store).

// Errors a State returns, which the Service branches on. A State wraps
// them with context; ErrChallengeUsed, ErrChallengeExpired, ErrSuspended,
// ErrRevoked and ErrDecommissioned (service.go) serve the State too.
var (
	// ErrNotFound reports a record that does not exist.
	ErrNotFound = errors.New("no such record")
	// ErrSerialTaken reports a certificate whose serial is recorded
	// already.
	ErrSerialTaken = errors.New("certificate serial already used")
	// ErrKeyInUse reports a certificate for an operational key certified
	// for another device.
	ErrKeyInUse = errors.New("key certified for another device")
	// ErrIssuanceLimit reports a renewal refused under a RenewalLimit;
	// the error is an *IssuanceLimitError saying when to retry.
	ErrIssuanceLimit = errors.New("certificate issuance limit reached")
)

// IssuanceLimitError is ErrIssuanceLimit with the time at which the
// oldest certificate counted leaves the window.
type IssuanceLimitError struct {
	RetryAt time.Time
}

func (e *IssuanceLimitError) Error() string {
	return ErrIssuanceLimit.Error() + "; retry at " + e.RetryAt.UTC().Format(time.RFC3339)
}

// Is makes errors.Is(err, ErrIssuanceLimit) hold.
func (e *IssuanceLimitError) Is(target error) bool { return target == ErrIssuanceLimit }

// Device is what onboarding needs of a registered device.
type Device struct {
	Identity  identity.ID
	Suite     sigalg.ID
	PublicKey []byte // DER SubjectPublicKeyInfo of the enrolment key
	ProductID string
	Standing  Standing
	// Locked is whether the device's station-signed manifest record says
	// every lock was closed (debug port, key-store window, bootloader).
	Locked bool
}

// Standing is where a device is in its lifecycle, as far as onboarding
// cares (docs/lifecycle.md).
type Standing uint8

// Standings. The zero value is a registered device, never (or not since
// it was reprovisioned) onboarded.
const (
	StandingRegistered Standing = iota
	StandingOnboarded
	StandingSuspended
	StandingRevoked
	StandingDecommissioned
	// StandingMigrated: the device moved to a new enrolment identity
	// (docs/migration.md); this one is refused for good.
	StandingMigrated
)

// refusal is the error a device of this standing is refused with, nil
// if it may onboard and use its credentials.
func (s Standing) refusal() error {
	switch s {
	case StandingSuspended:
		return ErrSuspended
	case StandingRevoked:
		return ErrRevoked
	case StandingDecommissioned:
		return ErrDecommissioned
	case StandingMigrated:
		return ErrMigrated
	}
	return nil
}

// standingRefusal is the sentinel of err if err refuses a device for its
// standing (a State's answer when the device changed under a write),
// nil otherwise.
func standingRefusal(err error) error {
	for _, sentinel := range []error{ErrSuspended, ErrRevoked, ErrDecommissioned, ErrMigrated} {
		if errors.Is(err, sentinel) {
			return sentinel
		}
	}
	return nil
}

// Product is what onboarding needs of a device's product.
type Product struct {
	ID            string
	CertValidity  time.Duration
	CloudEndpoint string
	// RenewalWindow is how long before its certificate expires a device
	// may renew; zero allows a renewal at any time (renewal.go).
	RenewalWindow time.Duration
	// IssuingCA names the CA that issues the product's certificates, ""
	// for the platform's first (IssuerSet).
	IssuingCA string
	// RequireLocked refuses onboarding to a device not recorded Locked.
	RequireLocked bool
}

// Challenge is one onboarding challenge: single use, short lived.
type Challenge struct {
	ID         [ChallengeIDSize]byte
	Identity   identity.ID // the identity the device claimed
	Nonce      [NonceSize]byte
	ServerName string
	IssuedAt   time.Time
	ExpiresAt  time.Time
	UsedAt     time.Time // zero until used
}

// Certificate is one issued device certificate.
type Certificate struct {
	Serial    [16]byte
	Identity  identity.ID
	NotBefore time.Time
	NotAfter  time.Time
	DER       []byte
	IssuedAt  time.Time
	RevokedAt time.Time
	// KeyHash is the SHA-256 of the certified key's DER
	// SubjectPublicKeyInfo: a key is certified for one device only.
	KeyHash [32]byte
	// SupersededAt is when a later certificate of the device was
	// recorded; zero while this one is current. The State sets it.
	SupersededAt time.Time
}

// RenewalLimit bounds renewals: one is refused while the device holds Max
// or more certificates issued within the last Window.
type RenewalLimit struct {
	Max    int
	Window time.Duration
}

// Event is one audit event of a device's: Actor "device:<identity>",
// Subject the identity.
type Event struct {
	Time     time.Time
	Identity identity.ID
	Action   string // device.onboard, device.credentials, device.renew…
	Outcome  string // ok, denied, error
	Detail   string // an ErrorCode
	Source   string // the client address
}

// Challenges keeps the challenges of the first step.
type Challenges interface {
	CreateChallenge(ctx context.Context, c Challenge) error
	// GetChallenge returns a challenge, used or not, without changing it.
	GetChallenge(ctx context.Context, id [ChallengeIDSize]byte) (Challenge, error)
	// UseChallenge uses a challenge up at at, so that a refused answer
	// cannot be tried again: ErrChallengeUsed, ErrChallengeExpired or
	// ErrNotFound if it cannot be.
	UseChallenge(ctx context.Context, id [ChallengeIDSize]byte, at time.Time) error
}

// Registry reads the devices and products onboarding certifies.
type Registry interface {
	// DeviceOfSuite returns a device registered with suite; one
	// registered with another is ErrNotFound too, and costs what an
	// unknown identity does (decoy.go relies on it).
	DeviceOfSuite(ctx context.Context, id identity.ID, suite sigalg.ID) (Device, error)
	Device(ctx context.Context, id identity.ID) (Device, error)
	Product(ctx context.Context, id string) (Product, error)
}

// Certificates reads and records issued certificates.
type Certificates interface {
	Certificate(ctx context.Context, serial [16]byte) (Certificate, error)
	// Certificates returns a device's certificates, newest first.
	Certificates(ctx context.Context, id identity.ID) ([]Certificate, error)
	// CompleteOnboarding is an onboarding's one write, all or nothing: it
	// uses the challenge up at at, records cert (superseding the device's
	// earlier ones), moves the device to onboarded and records ev.
	// Refused (ErrChallengeUsed, ErrChallengeExpired, ErrNotFound,
	// ErrSuspended, ErrRevoked, ErrDecommissioned, ErrSerialTaken,
	// ErrKeyInUse), nothing changes.
	CompleteOnboarding(ctx context.Context, challengeID [ChallengeIDSize]byte, cert Certificate, at time.Time, ev Event) error
	// RecordRenewal records cert as CompleteOnboarding does, without a
	// challenge, under terms in the same transaction (renewal.go): over
	// the limit it refuses with an *IssuanceLimitError; before the
	// device's current certificate is due, with a *RenewalNotDueError
	// unless the device has a renewal grant. It consumes the device's
	// grant, if any; forced reports that the grant let a renewal that was
	// not due through.
	RecordRenewal(ctx context.Context, cert Certificate, at time.Time, terms RenewalTerms) (forced bool, err error)
	// RenewalGranted reports whether an administrator allowed the
	// device's next renewal outside its product's window.
	RenewalGranted(ctx context.Context, id identity.ID) (bool, error)
	// RevokeCertificate revokes the certificate serial with reason at at
	// and records ev, in one write; changed is false if it was revoked
	// (or on hold) already, and then nothing is recorded. An unknown
	// serial is ErrNotFound.
	RevokeCertificate(ctx context.Context, serial [16]byte, reason int, at time.Time, ev Event) (changed bool, err error)
}

// AuditLog records an event that is no part of a recorded change; a
// failure to record is the log's to report.
type AuditLog interface {
	Record(ctx context.Context, ev Event)
}

// State is everything a Service keeps.
type State interface {
	Challenges
	Registry
	Certificates
	AuditLog
}
