// Package store owns the platform's registry: the domain records it keeps
// (stations, products, batches, devices, onboarding challenges,
// certificates, API tokens, the audit log) and the interfaces a storage
// backend implements. Backends live in subpackages (sqlite now, postgres
// later) and must pass the contract suite in storetest.
//
// Interfaces are split by role, so each service asks only for what it uses.
// Every method takes a context; every write that spans records is one
// transaction, so a failure changes nothing. Backends keep times to the
// microsecond and return them in UTC.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// Errors callers branch on. Backends wrap them with context.
var (
	ErrNotFound = errors.New("not found")
	// ErrExists reports a create whose key is taken.
	ErrExists = errors.New("already exists")
	// ErrConflict reports a write refused by the record's state, such as
	// onboarding a revoked device or importing a device that another batch
	// already registered.
	ErrConflict = errors.New("conflict")
	// ErrChallengeUsed and ErrChallengeExpired report a challenge that
	// cannot be consumed.
	ErrChallengeUsed    = errors.New("challenge already used")
	ErrChallengeExpired = errors.New("challenge expired")
)

// DeviceState is where a device is in its life.
type DeviceState string

// Device states.
const (
	StateRegistered DeviceState = "registered" // imported from a manifest
	StateOnboarded  DeviceState = "onboarded"  // proved its identity and holds a certificate
	StateRevoked    DeviceState = "revoked"    // refused from now on
)

// Station is a provisioning station whose manifests the platform accepts.
type Station struct {
	ID        identity.ID // SHA-256 of PublicKey
	Name      string
	Algorithm sigalg.ID
	PublicKey []byte // DER SubjectPublicKeyInfo
	CreatedAt time.Time
}

// Product decides a device's certificate profile and cloud endpoint.
type Product struct {
	ID            string // slug: ^[a-z0-9][a-z0-9-]{0,62}$
	Name          string
	CertValidity  time.Duration
	CloudEndpoint string // e.g. mqtts://broker.example.com:8883
	CreatedAt     time.Time
}

// Batch is one imported manifest.
type Batch struct {
	ID             string // the manifest's batch name
	StationID      identity.ID
	ProductID      string
	ManifestDigest [32]byte
	DeviceCount    int
	ImportedAt     time.Time
}

// Device is one registered device.
type Device struct {
	Identity    identity.ID
	Algorithm   sigalg.ID
	PublicKey   []byte // DER SubjectPublicKeyInfo of the enrolment key
	RootOfTrust string // puf, keygen, inject
	Injection   string // none, encrypted, clear
	BatchID     string
	StationID   identity.ID
	ProductID   string
	State       DeviceState
	CreatedAt   time.Time
	OnboardedAt time.Time // zero until onboarded
	RevokedAt   time.Time // zero unless revoked
	RevokeNote  string
}

// DeviceFilter selects devices; zero fields match everything.
type DeviceFilter struct {
	State     DeviceState
	ProductID string
	BatchID   string
	Algorithm sigalg.ID
	// After is the last identity of the previous page (keyset pagination).
	After identity.ID
	// Limit caps the page; zero means the backend's default (100), and no
	// backend returns more than 1000.
	Limit int
}

// ImportResult reports what an import did.
type ImportResult struct {
	// Imported is the number of devices registered by this call.
	Imported int
	// AlreadyImported is true when the same batch with the same manifest
	// digest was imported before; nothing changed.
	AlreadyImported bool
	// Duplicates lists identities already registered by another batch,
	// or listed twice in the import, each once in input order; when it is
	// not empty, nothing was imported.
	Duplicates []identity.ID
}

// Challenge is one onboarding challenge: single use, short lived.
type Challenge struct {
	ID         [16]byte
	Identity   identity.ID // the identity the device claimed
	Nonce      [32]byte
	ServerName string
	IssuedAt   time.Time
	ExpiresAt  time.Time
	UsedAt     time.Time // zero until consumed
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
}

// Token is an admin API bearer token; only its hash is kept.
type Token struct {
	ID        string // public part, shown in listings and the audit log
	Name      string
	Hash      [32]byte // SHA-256 of the secret part
	Scopes    []string
	CreatedAt time.Time
	ExpiresAt time.Time // zero: never
	RevokedAt time.Time
}

// AuditEvent is one line of the append-only audit log.
type AuditEvent struct {
	Seq        int64 // assigned by the store, increasing
	Time       time.Time
	Actor      string // "token:<id>", "device:<identity>", "system"
	Action     string // e.g. "manifest.import", "device.onboard"
	Subject    string // what the action was on
	Outcome    string // "ok", "denied", "error"
	Detail     string
	RemoteAddr string
}

// AuditFilter selects audit events, oldest first.
type AuditFilter struct {
	Actor, Action, Subject string
	AfterSeq               int64
	Limit                  int // zero: 100; at most 1000
}

// Stations registers provisioning stations.
type Stations interface {
	CreateStation(ctx context.Context, s Station) error
	GetStation(ctx context.Context, id identity.ID) (Station, error)
	// ListStations returns every station by name, then ID.
	ListStations(ctx context.Context) ([]Station, error)
}

// Products holds products.
type Products interface {
	CreateProduct(ctx context.Context, p Product) error
	GetProduct(ctx context.Context, id string) (Product, error)
	// ListProducts returns every product by ID.
	ListProducts(ctx context.Context) ([]Product, error)
}

// Devices holds batches and devices.
type Devices interface {
	// ImportBatch registers a batch and its devices in one transaction:
	// all or nothing. Re-importing the same batch with the same digest is
	// a no-op reported as AlreadyImported; the same batch ID with another
	// digest is ErrConflict; a device already registered by another batch
	// makes the whole import fail with Duplicates listed and no error.
	// Devices take BatchID, StationID, ProductID and CreatedAt (ImportedAt)
	// from the batch and start registered; the batch's DeviceCount is
	// len(devices). An unknown station or product is ErrNotFound.
	ImportBatch(ctx context.Context, b Batch, devices []Device) (ImportResult, error)
	GetBatch(ctx context.Context, id string) (Batch, error)
	GetDevice(ctx context.Context, id identity.ID) (Device, error)
	ListDevices(ctx context.Context, f DeviceFilter) ([]Device, error)
	// RevokeDevice marks a device revoked and its certificates revoked.
	// Revoking a revoked device changes nothing; an unknown one is
	// ErrNotFound.
	RevokeDevice(ctx context.Context, id identity.ID, note string, at time.Time) error
}

// Challenges holds onboarding challenges.
type Challenges interface {
	// CreateChallenge stores a challenge. Its identity need not be
	// registered: unknown identities are answered like known ones.
	CreateChallenge(ctx context.Context, c Challenge) error
	// ConsumeChallenge marks the challenge used and returns it. Of any
	// number of concurrent calls for one challenge exactly one succeeds;
	// the others get ErrChallengeUsed. An expired challenge gets
	// ErrChallengeExpired and stays unused; an unknown one ErrNotFound.
	// Expired means now is at or after ExpiresAt; a used challenge stays
	// ErrChallengeUsed after it expires.
	ConsumeChallenge(ctx context.Context, id [16]byte, now time.Time) (Challenge, error)
	// DeleteExpiredChallenges removes challenges, used or not, whose
	// ExpiresAt is before the given time.
	DeleteExpiredChallenges(ctx context.Context, before time.Time) (int, error)
}

// Certificates records issued certificates and onboarding.
type Certificates interface {
	// RecordOnboarding stores the certificate and moves the device to
	// onboarded, in one transaction. A revoked or unknown device is
	// ErrConflict or ErrNotFound and nothing is stored; a serial already
	// used is ErrExists. Onboarding an onboarded device again (renewal)
	// adds the certificate and keeps the first OnboardedAt. A zero IssuedAt
	// is recorded as at.
	RecordOnboarding(ctx context.Context, cert Certificate, at time.Time) error
	GetCertificate(ctx context.Context, serial [16]byte) (Certificate, error)
	// ListCertificates returns a device's certificates, newest first (by
	// IssuedAt, then the later recorded).
	ListCertificates(ctx context.Context, id identity.ID) ([]Certificate, error)
}

// Tokens holds admin API tokens.
type Tokens interface {
	CreateToken(ctx context.Context, t Token) error
	GetToken(ctx context.Context, id string) (Token, error)
	// ListTokens returns every token by ID.
	ListTokens(ctx context.Context) ([]Token, error)
	// RevokeToken revokes a token; revoking it again keeps the first time,
	// and an unknown one is ErrNotFound.
	RevokeToken(ctx context.Context, id string, at time.Time) error
}

// Audit is the append-only audit log.
type Audit interface {
	// AppendAudit appends e and returns its Seq; a zero Time is recorded as
	// the time of the append.
	AppendAudit(ctx context.Context, e AuditEvent) (int64, error)
	ListAudit(ctx context.Context, f AuditFilter) ([]AuditEvent, error)
}

// Store is everything a backend provides.
type Store interface {
	Stations
	Products
	Devices
	Challenges
	Certificates
	Tokens
	Audit
	// Ping reports whether the backend is reachable (readiness).
	Ping(ctx context.Context) error
	// Close releases the backend; calling it again does no harm.
	Close() error
}
