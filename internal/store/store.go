// Package store owns the platform's registry: the domain records it keeps
// (stations, products, batches, devices, onboarding challenges,
// certificates, API tokens, the audit log) and the interfaces a storage
// backend implements. Backends live in subpackages (sqlite, the embedded
// default for one process; postgres, shared by replicas) and must pass the
// contract suite in storetest.
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
	// ErrKeyInUse reports a certificate for an operational key that is
	// already certified for another device.
	ErrKeyInUse = errors.New("key certified for another device")
	// ErrIssuanceLimit reports a renewal refused because the device was
	// issued too many certificates lately; the error is an
	// *IssuanceLimitError, which says when to try again.
	ErrIssuanceLimit = errors.New("certificate issuance limit reached")
)

// IssuanceLimit bounds the certificates one device is issued: a renewal
// is refused while the device holds Max or more certificates issued
// within the last Window. A Max of zero or less sets no limit.
type IssuanceLimit struct {
	Max    int
	Window time.Duration
}

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

// DeviceState is where a device is in its life (docs/lifecycle.md).
type DeviceState string

// Device states. Only an onboarding and the transitions of lifecycle.go
// change them.
const (
	// StateRegistered: imported from a manifest (or reprovisioned), not
	// onboarded since.
	StateRegistered DeviceState = "registered"
	// StateOnboarded: proved its identity and holds a certificate.
	StateOnboarded DeviceState = "onboarded"
	// StateSuspended: quarantined; its certificates are on hold and it is
	// refused until resumed.
	StateSuspended DeviceState = "suspended"
	// StateRevoked: its key is compromised; refused for good.
	StateRevoked DeviceState = "revoked"
	// StateDecommissioned: out of service; its certificates are revoked
	// for good, its identity may be reprovisioned.
	StateDecommissioned DeviceState = "decommissioned"
)

// DeviceStates lists every device state.
var DeviceStates = []DeviceState{StateRegistered, StateOnboarded, StateSuspended, StateRevoked, StateDecommissioned, StateMigrated}

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
	// RenewalWindow is how long before its certificate expires a device
	// may renew (renewal.go); zero allows a renewal at any time.
	RenewalWindow time.Duration
	// HeartbeatInterval: an onboarded device silent longer is reported
	// (watch.go); zero is the platform's default.
	HeartbeatInterval  time.Duration
	MinFirmwareVersion string // "" for none; else comparable (monitoring.ParseVersion)
	Firmware           FirmwarePolicy
	// IssuingCA names the platform CA that issues the product's device
	// certificates (docs/pki.md, "Several CAs"); "" is the first CA.
	IssuingCA string
	// RequireLocked refuses devices whose manifest record does not say
	// the station closed every lock (Device.Locks): at import, and at
	// onboarding for devices imported before it was set.
	RequireLocked bool
	// Allocation spreads devices over endpoints (allocation.go); the zero
	// value sends them all to CloudEndpoint.
	Allocation Allocation
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
	OnboardedAt time.Time // zero until onboarded (again, after a reprovision)
	RevokedAt   time.Time // zero unless revoked
	RevokeNote  string
	// StateChangedAt is when the last administrative transition changed
	// State, zero if none did; StateReason is the reason it was given.
	StateChangedAt time.Time
	StateReason    string
	// Locks is the lock state the station-signed manifest recorded, in
	// the manifest's spelling (manifest.Locks): "open", the closed locks,
	// or "" for a record written before stations recorded locks.
	Locks string
	// CloudEndpoint is the endpoint allocated at the device's first
	// issuance (Allocations), "" until then.
	CloudEndpoint string
}

// DeviceFilter selects devices; zero fields match everything.
type DeviceFilter struct {
	State     DeviceState
	ProductID string
	BatchID   string
	Algorithm sigalg.ID
	// IdentityPrefix selects identities whose lowercase hex starts with
	// it (1 to 64 hex digits, odd lengths too): one range of the primary
	// key, so a search stays fast with millions of devices.
	IdentityPrefix string
	// RootOfTrust selects a class of silicon: puf, keygen, inject (tpm);
	// a value no device has selects none.
	RootOfTrust string
	// CloudState selects devices whose cloud state (CloudStateOf) is
	// CloudPending or CloudFailed, the states an operator looks for; the
	// other states are not filters (ErrBadFilter, as a malformed
	// IdentityPrefix is: DeviceFilter.Validate).
	CloudState string
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
	// RevokedAt is when the certificate was revoked or put on hold, zero
	// while it is good; RevocationReason is then its RFC 5280 CRLReason
	// (ReasonCertificateHold for a hold), zero otherwise. The store's
	// transitions set both; a certificate recorded revoked has reason
	// unspecified (0).
	RevokedAt        time.Time
	RevocationReason int
	// KeyHash is the SHA-256 of the certified key's DER
	// SubjectPublicKeyInfo. An operational key is certified for one
	// device only; a zero KeyHash (a certificate recorded before keys
	// were) is not checked.
	KeyHash [32]byte
	// SupersededAt is when a later certificate of the same device was
	// recorded; zero while this one is the device's current certificate.
	// It is set by the store, never by the caller.
	SupersededAt time.Time
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
	// Newest lists newest first instead, for reading rather than
	// following: the page of events before BeforeSeq (zero: from the
	// newest); AfterSeq is then ignored.
	Newest    bool
	BeforeSeq int64
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
	// UpdateProduct changes a product's policy and returns it (watch.go).
	UpdateProduct(ctx context.Context, id string, u ProductUpdate) (Product, error)
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
	// ImportBatchStream is ImportBatch for devices that arrive one at a
	// time from src, inserted as they come in one transaction that commits
	// only after src.Next returned io.EOF; an error from src rolls it all
	// back. b's ManifestDigest and DeviceCount are ignored: the digest is
	// src.Digest() and the count that of the devices src gave. The same
	// batch ID already imported reads src to its end before comparing
	// digests. It is never retried, as src cannot be read twice.
	ImportBatchStream(ctx context.Context, b Batch, src DeviceSource) (ImportResult, error)
	GetBatch(ctx context.Context, id string) (Batch, error)
	GetDevice(ctx context.Context, id identity.ID) (Device, error)
	// GetDeviceOfSuite is GetDevice for a device registered with suite
	// alg; one registered with another suite is ErrNotFound too, and its
	// row is not read, so the lookup costs what one of an unknown identity
	// does (onboarding's proof check relies on it: docs/protocol.md).
	GetDeviceOfSuite(ctx context.Context, id identity.ID, alg sigalg.ID) (Device, error)
	ListDevices(ctx context.Context, f DeviceFilter) ([]Device, error)
	// RevokeDevice is TransitionDevice with TransitionRevoke and jobs
	// whatever the device was: it marks a device revoked and its
	// certificates revoked (keyCompromise). Revoking a revoked device
	// changes nothing; a decommissioned one is a *TransitionError; an
	// unknown one is ErrNotFound.
	//
	// jobs are enqueued (see Jobs) in the same transaction, so a
	// revocation and its deregistrations happen together or not at all;
	// revoking a revoked device enqueues nothing.
	RevokeDevice(ctx context.Context, id identity.ID, note string, at time.Time, jobs ...Job) error
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
	// GetChallenge returns a challenge, used or not, without changing it;
	// an unknown one is ErrNotFound.
	GetChallenge(ctx context.Context, id [16]byte) (Challenge, error)
	// DeleteExpiredChallenges removes challenges, used or not, whose
	// ExpiresAt is before the given time.
	DeleteExpiredChallenges(ctx context.Context, before time.Time) (int, error)
}

// Certificates records issued certificates and onboarding.
type Certificates interface {
	// RecordOnboarding stores the certificate and moves the device to
	// onboarded, in one transaction. A device that may not hold a
	// certificate (suspended, revoked or decommissioned: see
	// MayHoldCertificate) is a *StateError (ErrConflict) and an unknown
	// one ErrNotFound, and nothing is stored; a serial already
	// used is ErrExists; a KeyHash already certified for another device
	// is ErrKeyInUse (the same device may be certified for its own key
	// again). Onboarding an onboarded device again (renewal) adds the
	// certificate and keeps the first OnboardedAt. A zero IssuedAt is
	// recorded as at. The device's other certificates that are not yet
	// superseded are superseded at at: a device has one current
	// certificate. The certificate's own SupersededAt is ignored.
	//
	// jobs are enqueued (see Jobs) in the same transaction (an outbox): the
	// onboarding is recorded with its registration jobs or not at all.
	// Callers enqueue a register job per connector on every onboarding,
	// renewals included: the certificate changed, and registering again is
	// idempotent.
	RecordOnboarding(ctx context.Context, cert Certificate, at time.Time, jobs ...Job) error
	// RecordRenewal is RecordOnboarding under limit: in the same
	// transaction, after the device's record is locked (so concurrent
	// renewals of one device, in any replica, count each other), it
	// refuses with an *IssuanceLimitError when the device already holds
	// limit.Max or more certificates whose IssuedAt is after
	// at-limit.Window. Refused, nothing changes.
	RecordRenewal(ctx context.Context, cert Certificate, at time.Time, limit IssuanceLimit, jobs ...Job) error
	// CompleteOnboarding is the onboarding's one write: in one transaction
	// it consumes the challenge at at (as ConsumeChallenge), records the
	// certificate and the device's onboarding (as RecordOnboarding,
	// superseding the device's earlier certificates), enqueues jobs and
	// appends audit (as AppendAudit; a zero Time is at). It is all or
	// nothing: when the challenge is used, expired or unknown
	// (ErrChallengeUsed, ErrChallengeExpired, ErrNotFound), the device
	// refused by its state or unknown (*StateError, ErrNotFound), the serial taken
	// (ErrExists) or the key certified for another device (ErrKeyInUse),
	// nothing changes and the challenge stays as it was. Of concurrent
	// calls for one challenge at most one succeeds.
	CompleteOnboarding(ctx context.Context, challengeID [16]byte, cert Certificate, at time.Time, audit AuditEvent, jobs ...Job) error
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
	Lifecycle
	Renewals
	Monitoring
	Watch
	EventCursors
	Lineage
	Tokens
	Audit
	Jobs
	FirmwareImages
	Campaigns
	Allocations
	Console
	// Ping reports whether the backend is reachable (readiness).
	Ping(ctx context.Context) error
	// Close releases the backend; calling it again does no harm.
	Close() error
}

// JobState is where a background job is in its life.
type JobState string

// Job states. Pending jobs wait for NextRunAt; running jobs are leased to
// one worker until LeaseUntil; done and failed are terminal.
const (
	JobPending JobState = "pending"
	JobRunning JobState = "running"
	JobDone    JobState = "done"
	JobFailed  JobState = "failed"
)

// Job kinds.
const (
	JobRegister   = "register"
	JobDeregister = "deregister"
)

// Job is one durable background job: register or deregister a device with
// one connector. Jobs run at least once; their effects must be idempotent.
type Job struct {
	ID        int64 // assigned by the store, increasing
	Kind      string
	Connector string
	Identity  identity.ID
	State     JobState
	// Attempts counts the attempts that ended (retried, completed or
	// failed); a lease that expired under a killed worker is not counted.
	Attempts   int
	NextRunAt  time.Time
	LastError  string
	CreatedAt  time.Time
	UpdatedAt  time.Time
	LeaseUntil time.Time // zero unless running
	Worker     string    // the worker that last claimed the job
}

// JobFilter selects jobs, newest first; zero fields match everything.
type JobFilter struct {
	Identity identity.ID
	State    JobState
	Limit    int // zero: 100; at most 1000
}

// Jobs is the durable job queue. Jobs are enqueued only with the state
// change that causes them (RecordOnboarding, TransitionDevice).
type Jobs interface {
	// ClaimJobs leases up to limit jobs to workerID until now+lease and
	// returns them ordered by NextRunAt, then ID: pending jobs that are
	// due (NextRunAt at or before now) and running jobs whose lease has
	// expired (their worker died). Concurrent claimers never get the same
	// job.
	ClaimJobs(ctx context.Context, workerID string, now time.Time, lease time.Duration, limit int) ([]Job, error)
	// CompleteJob marks a running job done. RetryJob puts it back to
	// pending until nextRunAt with lastError. FailJob marks it failed for
	// good. Each adds one to Attempts; a job that is not running is
	// ErrConflict, an unknown one ErrNotFound.
	CompleteJob(ctx context.Context, id int64, at time.Time) error
	RetryJob(ctx context.Context, id int64, nextRunAt time.Time, lastError string, at time.Time) error
	FailJob(ctx context.Context, id int64, lastError string, at time.Time) error
	ListJobs(ctx context.Context, f JobFilter) ([]Job, error)
	// LatestJobs returns, for each of ids that has jobs, its latest job
	// (highest ID) of each connector: what CloudStateOf needs, for a page
	// of devices at once. More than MaxPageSize identities is an error.
	LatestJobs(ctx context.Context, ids []identity.ID) (map[identity.ID][]Job, error)
}

// Page sizes of the List methods.
const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
)

// PageLimit turns a filter's Limit into the number of rows a backend
// returns: zero (or less) is DefaultPageSize, more than MaxPageSize is
// MaxPageSize.
func PageLimit(n int) int {
	switch {
	case n <= 0:
		return DefaultPageSize
	case n > MaxPageSize:
		return MaxPageSize
	}
	return n
}

// Cloud states of a device, as CloudStateOf derives them.
const (
	CloudNone         = "none"         // no job: no connector configured, or not onboarded
	CloudPending      = "pending"      // a job waits or runs (perhaps retrying)
	CloudActive       = "active"       // the latest job of every connector registered it: the cloud accepts the device
	CloudDeregistered = "deregistered" // the latest job of every connector deregistered it
	CloudFailed       = "failed"       // the latest job of some connector failed for good
)

// CloudStateOf derives a device's cloud state from its jobs (any order):
// for each connector the latest job (highest ID) counts; failed wins over
// pending, pending over done. lastError is that of the job deciding the
// state (a pending job's error from its previous attempt), or empty.
func CloudStateOf(jobs []Job) (state, lastError string) {
	latest := map[string]Job{}
	for _, j := range jobs {
		if l, ok := latest[j.Connector]; !ok || j.ID > l.ID {
			latest[j.Connector] = j
		}
	}
	if len(latest) == 0 {
		return CloudNone, ""
	}
	rank := func(s string) int {
		switch s {
		case CloudFailed:
			return 3
		case CloudPending:
			return 2
		case CloudActive:
			return 1
		}
		return 0
	}
	state = ""
	for _, j := range latest {
		s := CloudPending
		switch {
		case j.State == JobFailed:
			s = CloudFailed
		case j.State == JobDone && j.Kind == JobDeregister:
			s = CloudDeregistered
		case j.State == JobDone:
			s = CloudActive
		}
		if state == "" || rank(s) > rank(state) || (rank(s) == rank(state) && j.LastError != "" && lastError == "") {
			state, lastError = s, j.LastError
		}
	}
	if state == CloudActive || state == CloudDeregistered {
		lastError = ""
	}
	return state, lastError
}
