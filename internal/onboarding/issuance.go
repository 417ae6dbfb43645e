package onboarding

import (
	"context"
	"crypto"
	"crypto/subtle"
	"errors"
	"fmt"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
)

// What the platform certifies, and how often (issue 10). A certificate
// request must name the device it is for and may be bound to the exchange
// that carries it; an operational key is certified for one device only
// (the store's check); a device is issued a limited number of
// certificates by renewal, and has one current certificate, the one it
// replaced keeping a short grace on the device routes.

// Errors of the issuance policy.
var (
	// ErrRenewalLimited refuses a renewal of a device that was issued
	// IssuancePolicy.RenewLimit certificates within RenewWindow; the error
	// is a *RenewalLimitError saying when to retry.
	ErrRenewalLimited = errors.New("too many certificates issued to this device lately")
	// ErrSuperseded refuses, on the device routes, a certificate a later
	// one replaced once its grace has passed.
	ErrSuperseded = errors.New("device certificate superseded by a newer one")
)

// RenewalLimitError is ErrRenewalLimited with the wait before a renewal
// can succeed.
type RenewalLimitError struct {
	RetryAfter time.Duration
}

func (e *RenewalLimitError) Error() string {
	return fmt.Sprintf("%v; retry after %s", ErrRenewalLimited, e.RetryAfter)
}

// Is makes errors.Is(err, ErrRenewalLimited) hold.
func (e *RenewalLimitError) Is(target error) bool { return target == ErrRenewalLimited }

// RetryAfter is how long a refused client should wait, rounded up to a
// whole second, if err says: a renewal over the limit or not yet due, or
// an endpoint allocation that could not be decided (allocation.go).
func RetryAfter(err error) (time.Duration, bool) {
	var lim *RenewalLimitError
	var notDue *RenewalNotDueError
	var wait time.Duration
	switch {
	case errors.As(err, &lim):
		wait = lim.RetryAfter
	case errors.As(err, &notDue):
		wait = notDue.RetryAfter
	case errors.Is(err, ErrAllocationUnavailable):
		wait = AllocationRetryAfter
	default:
		return 0, false
	}
	return max((wait + time.Second - 1).Truncate(time.Second), time.Second), true
}

// IssuancePolicy configures what a Service certifies and how often.
type IssuancePolicy struct {
	// AllowUnboundCSR accepts a certificate request that carries no
	// binding to its exchange (docs/protocol.md, "Certificate request"),
	// for devices whose firmware predates the binding; a request that
	// carries one must match it whatever this says. The default refuses
	// unbound requests.
	AllowUnboundCSR bool
	// RenewLimit is how many certificates a device may hold issued within
	// RenewWindow for a renewal to succeed: zero selects
	// DefaultRenewLimit, negative disables the limit.
	RenewLimit int
	// RenewWindow is the limit's window; zero selects DefaultRenewWindow.
	RenewWindow time.Duration
	// SupersededGrace is how long a certificate keeps working on the
	// device routes after a later one replaced it (a renewal or a new
	// onboarding), so a device can switch over: zero selects
	// DefaultSupersededGrace, negative gives none. Only the certificate
	// replaced last has a grace.
	SupersededGrace time.Duration
}

// Issuance defaults.
const (
	DefaultRenewLimit      = 3
	DefaultRenewWindow     = time.Hour
	DefaultSupersededGrace = 10 * time.Minute
)

// renewLimit is the policy's limit as the State takes it.
func (p IssuancePolicy) renewLimit() RenewalLimit {
	limit := orDefault(p.RenewLimit, DefaultRenewLimit)
	window := p.RenewWindow
	if window <= 0 {
		window = DefaultRenewWindow
	}
	return RenewalLimit{Max: limit, Window: window}
}

// Grace is how long a replaced certificate keeps working: SupersededGrace
// with its default, zero for none. Past it the platform revokes the
// certificate (reason superseded).
func (p IssuancePolicy) Grace() time.Duration { return p.grace() }

func (p IssuancePolicy) grace() time.Duration {
	switch {
	case p.SupersededGrace == 0:
		return DefaultSupersededGrace
	case p.SupersededGrace < 0:
		return 0
	}
	return p.SupersededGrace
}

// checkCSR parses a certificate request for device id and returns its
// key. The request's self-signature must verify (Issuer.ParseCSR), its
// subject must name id as its one common name, as the certificate will,
// and its challengePassword, if it has one, must be binding; without one
// it is refused when the policy requires it. An empty binding is one the
// transport could not compute, which no request matches.
func (s *Service) checkCSR(der []byte, id identity.ID, binding string) (crypto.PublicKey, error) {
	csr, err := s.cfg.Issuer.ParseCSR(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadCSR, err)
	}
	if csr.CommonName != id.String() {
		return nil, fmt.Errorf("%w: the request's subject must name the device's identity as its common name", ErrBadCSR)
	}
	switch {
	case csr.ChallengePassword == "" && !s.cfg.Issuance.AllowUnboundCSR:
		return nil, fmt.Errorf("%w: the request carries no binding to this exchange (challengePassword)", ErrBadCSR)
	case csr.ChallengePassword == "":
	case binding == "" || subtle.ConstantTimeCompare([]byte(csr.ChallengePassword), []byte(binding)) != 1:
		return nil, fmt.Errorf("%w: the request is bound to another exchange", ErrBadCSR)
	}
	return csr.PublicKey, nil
}

// checkSuperseded refuses a superseded certificate on the device routes
// unless it is the one replaced last and its grace has not passed.
func (s *Service) checkSuperseded(ctx context.Context, cert Certificate) error {
	if cert.SupersededAt.IsZero() {
		return nil
	}
	if !s.cfg.Now().Before(cert.SupersededAt.Add(s.cfg.Issuance.grace())) {
		return ErrSuperseded
	}
	certs, err := s.cfg.State.Certificates(ctx, cert.Identity)
	if err != nil {
		return fmt.Errorf("list certificates: %w", err)
	}
	for _, c := range certs {
		if c.SupersededAt.After(cert.SupersededAt) {
			return ErrSuperseded // replaced by one that was replaced in turn
		}
	}
	return nil
}

// checkRenewalLimit refuses before the CA signs anything when the device,
// holding certs (newest first), is over the limit; the State checks again in the transaction that
// records the certificate, which is what concurrent renewals cannot
// race.
func (s *Service) checkRenewalLimit(certs []Certificate) error {
	limit := s.cfg.Issuance.renewLimit()
	if limit.Max <= 0 {
		return nil
	}
	now := s.cfg.Now()
	n, oldest := 0, time.Time{}
	for _, c := range certs { // newest first
		if !c.IssuedAt.After(now.Add(-limit.Window)) {
			break
		}
		n, oldest = n+1, c.IssuedAt
	}
	if n >= limit.Max {
		return &RenewalLimitError{RetryAfter: oldest.Add(limit.Window).Sub(now)}
	}
	return nil
}

// renewalLimitError turns the State's refusal into the service's.
func (s *Service) renewalLimitError(err error) error {
	var lim *IssuanceLimitError
	if errors.As(err, &lim) {
		return &RenewalLimitError{RetryAfter: lim.RetryAt.Sub(s.cfg.Now())}
	}
	return &RenewalLimitError{RetryAfter: s.cfg.Issuance.renewLimit().Window}
}
