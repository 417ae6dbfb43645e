package onboarding

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
)

// The renewal window (docs/lifecycle.md, "Renewal and supersession"): a
// product says how long before its certificates expire a device may
// renew; the credentials tell the device when that is (RenewAfter); a
// renewal before it is refused unless an administrator granted the
// device one, which the renewal consumes. The Service checks before the
// CA signs anything, and the State again in the transaction that records
// the certificate, which is what concurrent renewals cannot race.

// ErrRenewalNotDue refuses a renewal before the device's current
// certificate enters its product's renewal window; the error is a
// *RenewalNotDueError saying when it does.
var ErrRenewalNotDue = errors.New("renewal not due yet")

// RenewalNotDueError is ErrRenewalNotDue with the time the window opens.
// A State sets DueAt; the Service adds RetryAfter, the wait from its
// clock's now.
type RenewalNotDueError struct {
	DueAt      time.Time
	RetryAfter time.Duration
}

func (e *RenewalNotDueError) Error() string {
	return fmt.Sprintf("%v: the renewal window opens at %s", ErrRenewalNotDue, e.DueAt.UTC().Format(time.RFC3339))
}

// Is makes errors.Is(err, ErrRenewalNotDue) hold.
func (e *RenewalNotDueError) Is(target error) bool { return target == ErrRenewalNotDue }

// RenewalTerms is what a State checks with a renewal's write.
type RenewalTerms struct {
	Limit RenewalLimit
	// Window is the product's renewal window; zero allows a renewal at
	// any time.
	Window time.Duration
}

// renewAfter is when the holder of cert, of product p, should renew:
// the start of the product's window (not before the certificate's
// NotBefore), or two thirds into the validity without a window.
func renewAfter(cert Certificate, p Product) time.Time {
	if p.RenewalWindow <= 0 {
		return cert.NotAfter.Add(-cert.NotAfter.Sub(cert.NotBefore) / 3)
	}
	due := cert.NotAfter.Add(-p.RenewalWindow)
	if due.Before(cert.NotBefore) {
		return cert.NotBefore
	}
	return due
}

// checkRenewalDue refuses a renewal of a device whose current
// certificate (certs, newest first) is not yet in product's window,
// unless the device has a grant.
func (s *Service) checkRenewalDue(ctx context.Context, id identity.ID, certs []Certificate, product Product) error {
	if product.RenewalWindow <= 0 || len(certs) == 0 {
		return nil
	}
	now := s.cfg.Now()
	due := certs[0].NotAfter.Add(-product.RenewalWindow)
	if !now.Before(due) {
		return nil
	}
	granted, err := s.cfg.State.RenewalGranted(ctx, id)
	if err != nil {
		return fmt.Errorf("read renewal grant: %w", err)
	}
	if granted {
		return nil
	}
	return &RenewalNotDueError{DueAt: due, RetryAfter: due.Sub(now)}
}

// renewalNotDueError adds the wait to the State's refusal.
func (s *Service) renewalNotDueError(err error) error {
	var notDue *RenewalNotDueError
	if !errors.As(err, &notDue) {
		return err
	}
	return &RenewalNotDueError{DueAt: notDue.DueAt, RetryAfter: notDue.DueAt.Sub(s.cfg.Now())}
}
