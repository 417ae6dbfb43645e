package app

import (
	"context"
	"strconv"
	"time"

	"github.com/hallmark-iot/hallmark/internal/store"
)

// Supersession → revocation (docs/lifecycle.md, "Renewal and
// supersession"): a certificate a renewal or a new onboarding replaced
// keeps working for the grace of Config.Issuance, then the platform
// revokes it with reason superseded, so that the CRL and OCSP say what
// the device routes already refuse. Every replica runs the sweep: the
// store's RevokeSuperseded reads one range of an index of the pending
// certificates, batch by batch, and concurrent sweeps revoke each
// certificate once.

const (
	// DefaultSupersededSweep is how often the sweep runs unless
	// Config.SupersededSweep says otherwise: it bounds how late after
	// its grace a superseded certificate is published revoked.
	DefaultSupersededSweep = time.Minute
	// supersededBatch is how many certificates one store call revokes:
	// one write transaction of bounded size.
	supersededBatch = store.MaxRevokedPageSize
)

// supersededSweep revokes superseded certificates past their grace every
// interval until ctx ends.
func (p *Platform) supersededSweep(ctx context.Context) {
	interval := p.cfg.SupersededSweep
	if interval <= 0 {
		interval = DefaultSupersededSweep
	}
	every(ctx, interval, func() {
		if _, err := p.RevokeSuperseded(ctx); err != nil && ctx.Err() == nil {
			p.cfg.Log.Warn("revoke superseded certificates", "err", err)
		}
	})
}

// RevokeSuperseded revokes, batch by batch, every certificate superseded
// longer ago than the grace, tells the revocation publisher if it revoked
// any, records one audit event for the sweep and returns how many it
// revoked.
func (p *Platform) RevokeSuperseded(ctx context.Context) (int, error) {
	now := p.cfg.Now()
	cutoff := now.Add(-p.cfg.Issuance.Grace())
	total := 0
	var err error
	for {
		var n int
		n, err = p.Store.RevokeSuperseded(ctx, cutoff, now, supersededBatch)
		total += n
		if err != nil || n < supersededBatch {
			break
		}
	}
	if total > 0 {
		p.NotifyRevocation()
		p.cfg.Log.Info("revoked superseded certificates", "count", total)
		if _, aerr := p.Store.AppendAudit(context.WithoutCancel(ctx), store.AuditEvent{Time: now, Actor: "system",
			Action: "certificate.revoke-superseded", Subject: "certificates", Outcome: "ok",
			Detail: strconv.Itoa(total) + " revoked (superseded)"}); aerr != nil {
			p.cfg.Log.Error("audit revoked superseded certificates", "err", aerr)
		}
	}
	return total, err
}
