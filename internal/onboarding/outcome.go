package onboarding

import (
	"context"
	"errors"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
)

// Refusal is one refused attempt at an action of a device's.
type Refusal struct {
	Identity identity.ID // claimed, not proven
	Action   string      // device.challenge, device.onboard
	Reason   string      // an ErrorCode
	Source   string      // the client address
	// SummaryOnly marks an attempt refused before any lookup (a rate
	// limit): it is counted and summarised, never recorded on its own.
	SummaryOnly bool
}

// Refusals records refused attempts, which anyone can make in any number:
// the platform's counts them and writes a bounded number of audit events
// per source and interval (onboardstore.Refusals over *audit.Aggregator).
type Refusals interface {
	Refuse(ctx context.Context, r Refusal)
}

// Onboarding is one successful onboarding, as Watch is told of it.
type Onboarding struct {
	Identity identity.ID // proven
	Source   string      // the client address
	At       time.Time
	// Again: the device was onboarded already (its credentials lost or
	// taken), as opposed to registered or reprovisioned.
	Again bool
}

// Watch is told of successful onboardings, where monitoring looks for
// signs of a clone (an identity onboarded again from elsewhere). It is
// called on the request path and must return at once. Refused attempts
// reach it, if at all, through Refusals, which is told of every identity
// alike.
type Watch interface {
	Onboarded(ctx context.Context, o Onboarding)
}

// refuse records a refused attempt at action. An internal error is no
// attempt of the client's and stays one audit event of its own. Without
// Refusals, a refused proof is one event too, except a rate-limited one,
// which like a refused challenge is only observed: a limit that writes
// for every request it refuses limits nothing.
func (s *Service) refuse(ctx context.Context, id identity.ID, action string, err error, addr string) {
	code := ErrorCode(err)
	summaryOnly := code == "rate-limited" || action == "device.challenge"
	switch {
	case code == "internal":
		s.audit(ctx, id, action, "error", code, addr)
	case s.cfg.Refusals != nil:
		// Summary-only: refused before any lookup, so counting it must
		// not cost a write either.
		s.cfg.Refusals.Refuse(ctx, Refusal{Identity: id, Action: action, Reason: code, Source: addr, SummaryOnly: summaryOnly})
	case !summaryOnly:
		s.audit(ctx, id, action, "denied", code, addr)
	}
}

func (s *Service) audit(ctx context.Context, id identity.ID, action, outcome, detail, addr string) {
	s.cfg.State.Record(ctx, Event{Time: s.cfg.Now(), Identity: id, Action: action, Outcome: outcome, Detail: detail, Source: addr})
}

func (s *Service) observe(step, outcome string, start time.Time) {
	if s.cfg.Metrics != nil {
		s.cfg.Metrics.Observe(step, outcome, s.cfg.Now().Sub(start))
	}
}

// ErrorCode names an error for the audit log, metrics and the transport's
// problem codes, without its detail.
func ErrorCode(err error) string {
	for _, c := range []struct {
		err  error
		code string
	}{
		{ErrMalformed, "malformed"}, {ErrRateLimited, "rate-limited"}, {ErrChallengeUnknown, "challenge-unknown"},
		{ErrChallengeUsed, "challenge-used"}, {ErrChallengeExpired, "challenge-expired"},
		{ErrProofRejected, "proof-rejected"}, {ErrRevoked, "revoked"}, {ErrSuspended, "suspended"},
		{ErrDecommissioned, "decommissioned"}, {ErrMigrated, "migrated"}, {ErrBadCSR, "bad-csr"},
		{ErrNotOnboarded, "not-onboarded"}, {ErrNotLocked, "not-locked"},
		{ErrRenewalLimited, "renewal-too-soon"}, {ErrSuperseded, "certificate-superseded"},
		{ErrRenewalNotDue, "renewal-not-due"}, {ErrAllocationUnavailable, "allocation-unavailable"},
	} {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	if err == nil {
		return "ok"
	}
	return "internal"
}
