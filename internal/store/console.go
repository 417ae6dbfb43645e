package store

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// FleetSummary is the fleet at a glance, for the operators' console
// (internal/console): what an overview page shows, read in a few index
// ranges and aggregates, never row by row in Go.
type FleetSummary struct {
	// At is the time the summary describes (the now it was asked for).
	At time.Time
	// Total counts every registered device, whatever its state.
	Total int
	// ByState, ByProduct, ByClass (root of trust: puf, keygen, inject)
	// and BySuite count devices; a key with no device is absent.
	ByState   map[DeviceState]int
	ByProduct map[string]int
	ByClass   map[string]int
	BySuite   map[sigalg.ID]int
	// Onboardings counts onboardings per hour (a registered device that
	// became onboarded: the device.onboarded events; renewals and
	// resumptions are not onboardings) over the week before At: 168
	// buckets of one UTC hour, oldest first, the last one the hour
	// holding At (events after At are left out).
	Onboardings []TimeCount
	// Failures counts refused onboarding attempts by reason over the day
	// before At (after At−24h, at or before At), largest first, then by
	// reason: the denied audit events of actions device.onboard and
	// device.challenge, whose detail is the reason, an aggregator's
	// summary ("<reason>: <n> refused from … to …", internal/audit)
	// counting as the n attempts it summarises, less the first when the
	// summary says it was logged on its own.
	Failures []ReasonCount
	// Jobs counts cloud-connector jobs by state (pending, running,
	// failed), every job, not only each connector's latest; done jobs
	// are not counted, and a state with no job is absent.
	Jobs map[JobState]int
	// ExpiringSoon counts current, good certificates whose NotAfter is
	// after At and at most At+Within (the FleetSummary call's within).
	ExpiringSoon int
	// Silent counts onboarded devices that sent a status report once and
	// none since At−Silence (the call's silence).
	Silent int
	// CampaignsActive counts update campaigns not yet finished or
	// cancelled: running or paused (CampaignState.Final is false).
	CampaignsActive int
}

// TimeCount is one bucket of a time series.
type TimeCount struct {
	Start time.Time
	Count int
}

// ReasonCount is how often one reason occurred.
type ReasonCount struct {
	Reason string
	Count  int
}

// ConsoleSession is one operator signed in to the console with an admin
// token. The cookie holds a random secret; the store keeps only its
// SHA-256, so a copy of the database signs nobody in.
type ConsoleSession struct {
	IDHash    [32]byte
	TokenID   string
	CreatedAt time.Time
	ExpiresAt time.Time
	// RemoteAddr is where the session was opened, for the audit log.
	RemoteAddr string
}

// Console is what the operators' console needs of the store beyond the
// admin use cases' methods.
type Console interface {
	// FleetSummary summarises the fleet at now: certificates expiring
	// within within, devices silent for silence.
	FleetSummary(ctx context.Context, now time.Time, within, silence time.Duration) (FleetSummary, error)
	// CreateConsoleSession keeps s; an IDHash already kept is ErrExists,
	// a TokenID no token has is ErrNotFound, and a RemoteAddr longer than
	// MaxSessionRemoteAddr or a zero CreatedAt or ExpiresAt is an error;
	// refused, nothing is kept.
	CreateConsoleSession(ctx context.Context, s ConsoleSession) error
	// GetConsoleSession returns the session with that hash, ErrNotFound
	// if none (expired ones are returned; the caller checks ExpiresAt).
	GetConsoleSession(ctx context.Context, idHash [32]byte) (ConsoleSession, error)
	// DeleteConsoleSession ends a session; deleting one that is not kept
	// is not an error.
	DeleteConsoleSession(ctx context.Context, idHash [32]byte) error
	// DeleteExpiredConsoleSessions deletes sessions that expired before
	// before and returns how many.
	DeleteExpiredConsoleSessions(ctx context.Context, before time.Time) (int, error)
	// ListBatches returns one page of imported batches, newest first
	// (ImportedAt, then ID, descending); f.After is the ID of the last
	// batch of the previous page (it need not match f's other fields).
	// An unknown After is ErrNotFound.
	ListBatches(ctx context.Context, f BatchFilter) ([]Batch, error)
}

// BatchFilter selects batches; zero fields match everything.
type BatchFilter struct {
	ProductID string
	StationID identity.ID
	After     string
	// Limit caps the page as PageLimit does.
	Limit int
}

// MaxSessionRemoteAddr bounds ConsoleSession.RemoteAddr.
const MaxSessionRemoteAddr = 256

// ErrBadFilter reports a DeviceFilter value that is malformed (an
// identity prefix that is not hex, a cloud state that is not a filter):
// the caller's mistake, refused before anything is read.
var ErrBadFilter = errors.New("bad filter")

// maxFilterText bounds the text fields of a DeviceFilter that name
// something (root of trust), so a filter never carries megabytes.
const maxFilterText = 64

// Validate checks the fields of f that can be malformed; an error wraps
// ErrBadFilter. ListDevices calls it; a caller may call it first to
// answer a bad request without a store round trip.
func (f DeviceFilter) Validate() error {
	if f.IdentityPrefix != "" {
		if _, _, err := IdentityPrefixRange(f.IdentityPrefix); err != nil {
			return err
		}
	}
	if len(f.RootOfTrust) > maxFilterText {
		return fmt.Errorf("root of trust longer than %d bytes: %w", maxFilterText, ErrBadFilter)
	}
	switch f.CloudState {
	case "", CloudPending, CloudFailed:
	default:
		return fmt.Errorf("cloud state %q is not a filter (want %s or %s): %w", truncateText(f.CloudState), CloudPending, CloudFailed, ErrBadFilter)
	}
	return nil
}

// IdentityPrefixRange returns the first and last identity whose hex
// starts with prefix: 1 to 64 hex digits, either case (an identity pasted
// in upper case finds its device). An odd length fixes the high half of
// the last byte. Anything else is an error wrapping ErrBadFilter.
func IdentityPrefixRange(prefix string) (lo, hi identity.ID, err error) {
	if len(prefix) == 0 || len(prefix) > 2*len(lo) {
		return lo, hi, fmt.Errorf("identity prefix has %d characters, want 1 to %d hex digits: %w", len(prefix), 2*len(lo), ErrBadFilter)
	}
	p := strings.ToLower(prefix)
	if len(p)%2 == 1 {
		p += "0"
	}
	n, err := hex.Decode(lo[:], []byte(p))
	if err != nil {
		return identity.ID{}, identity.ID{}, fmt.Errorf("identity prefix %q is not hex: %w", truncateText(prefix), ErrBadFilter)
	}
	hi = lo
	for i := n; i < len(hi); i++ {
		hi[i] = 0xff
	}
	if len(prefix)%2 == 1 {
		hi[n-1] |= 0x0f
	}
	return lo, hi, nil
}

// truncateText keeps an error message about a caller's value short.
func truncateText(s string) string {
	if len(s) > maxFilterText {
		return s[:maxFilterText] + "…"
	}
	return s
}
