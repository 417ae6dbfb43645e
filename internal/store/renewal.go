package store

import (
	"context"
	"errors"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
)

// The renewal policy's records (docs/lifecycle.md, "Renewal and
// supersession"): a product's renewal window, checked with the renewal's
// write under the device's row lock; a renewal an administrator allowed
// outside the window, consumed by that write; and the revocation of
// superseded certificates once their grace has passed.

// ErrRenewalNotDue reports a renewal refused because the device's
// current certificate is not yet within its product's renewal window;
// the error is a *RenewalNotDueError saying when it will be.
var ErrRenewalNotDue = errors.New("renewal not due")

// RenewalNotDueError is ErrRenewalNotDue with the time the window opens.
type RenewalNotDueError struct {
	DueAt time.Time
}

func (e *RenewalNotDueError) Error() string {
	return ErrRenewalNotDue.Error() + " before " + e.DueAt.UTC().Format(time.RFC3339)
}

// Is makes errors.Is(err, ErrRenewalNotDue) hold.
func (e *RenewalNotDueError) Is(target error) bool { return target == ErrRenewalNotDue }

// RenewalDueAt is when a certificate expiring at notAfter enters a
// renewal window of window: notAfter-window, or the zero time (due from
// the start) for a window of zero or less.
func RenewalDueAt(notAfter time.Time, window time.Duration) time.Time {
	if window <= 0 {
		return time.Time{}
	}
	return notAfter.Add(-window)
}

// RenewalTerms is what RenewCertificate checks before it records a
// renewal.
type RenewalTerms struct {
	// Limit bounds the certificates issued lately, as RecordRenewal's.
	Limit IssuanceLimit
	// Window is the product's renewal window: the renewal is refused
	// while the device's current certificate (the one not superseded)
	// expires more than Window after the renewal, unless a grant is
	// pending. Zero or less allows a renewal at any time.
	Window time.Duration
}

// RenewalGrant is a renewal an administrator allowed outside the
// window: the device's next renewal consumes it.
type RenewalGrant struct {
	Identity  identity.ID
	GrantedAt time.Time
	Reason    string
}

// Renewals keeps what the renewal policy needs beyond RecordRenewal.
type Renewals interface {
	// RenewCertificate is RecordRenewal under terms, in one transaction
	// after the device's record is locked (so concurrent renewals, in
	// any replica, see each other): a device that may hold a certificate
	// and whose current certificate is not yet due (RenewalDueAt of its
	// NotAfter and terms.Window after at) is refused with a
	// *RenewalNotDueError unless it has a grant. A successful renewal
	// consumes the device's grant, if any, whether or not it was due;
	// forced reports that the grant let a renewal that was not due
	// through. Refused, nothing changes and the grant stays.
	RenewCertificate(ctx context.Context, cert Certificate, at time.Time, terms RenewalTerms, jobs ...Job) (forced bool, err error)
	// GrantRenewal allows device g.Identity's next renewal outside the
	// window, replacing a grant it has already. An unknown device is
	// ErrNotFound; one that is not onboarded a *StateError.
	GrantRenewal(ctx context.Context, g RenewalGrant) error
	// GetRenewalGrant returns the device's pending grant, ErrNotFound
	// if it has none.
	GetRenewalGrant(ctx context.Context, id identity.ID) (RenewalGrant, error)
	// RevokeSuperseded revokes, with reason superseded at at, up to
	// limit certificates superseded at or before supersededBy that are
	// good or on hold (a suspended device's), oldest supersession first,
	// and returns how many. It is idempotent and safe to run from every
	// replica at once: a certificate revoked already is not counted, and
	// one that a concurrent call revokes is revoked once. A limit of zero
	// or less is DefaultPageSize, more than MaxRevokedPageSize is
	// MaxRevokedPageSize.
	RevokeSuperseded(ctx context.Context, supersededBy, at time.Time, limit int) (int, error)
}
