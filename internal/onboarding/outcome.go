package onboarding

import (
	"context"
	"errors"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/store"
)

func (s *Service) audit(ctx context.Context, id identity.ID, action, outcome, detail, addr string) {
	ev := store.AuditEvent{Time: s.cfg.Now(), Actor: "device:" + id.String(), Action: action,
		Subject: id.String(), Outcome: outcome, Detail: detail, RemoteAddr: addr}
	if _, err := s.cfg.Store.AppendAudit(ctx, ev); err != nil {
		s.cfg.Log.Error("audit append failed", "action", action, "err", err)
	}
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
		{ErrProofRejected, "proof-rejected"}, {ErrRevoked, "revoked"}, {ErrBadCSR, "bad-csr"},
		{ErrNotOnboarded, "not-onboarded"},
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
