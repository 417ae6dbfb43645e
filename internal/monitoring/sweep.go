package monitoring

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// SweepResult counts the events one sweep added.
type SweepResult struct {
	Expiring int
	Silent   int
}

// Sweep adds the events that time alone causes: certificate.expiring for
// each threshold, device.silent past each product's heartbeat. Each is
// one indexed range read per batch of sweepBatch (per product for the
// silence: store.Monitoring), so a sweep of a million devices reads only
// the certificates inside the widest threshold and the devices past
// their heartbeat.
func (s *Service) Sweep(ctx context.Context) (SweepResult, error) {
	var res SweepResult
	now := s.cfg.Now().UTC().Truncate(time.Microsecond)
	for _, within := range s.cfg.ExpiryThresholds {
		n, err := drain(func() (int, error) {
			return s.cfg.Store.NoteExpiringCertificates(ctx, now, within, sweepBatch)
		})
		res.Expiring += n
		if err != nil {
			return res, fmt.Errorf("expiry sweep (within %v): %w", within, err)
		}
	}
	cutoffs, err := s.SilenceCutoffs(ctx, now)
	if err != nil {
		return res, fmt.Errorf("silence sweep: %w", err)
	}
	for product, since := range cutoffs {
		n, err := drain(func() (int, error) {
			return s.cfg.Store.NoteSilentDevices(ctx, now, product, since, sweepBatch)
		})
		res.Silent += n
		if err != nil {
			return res, fmt.Errorf("silence sweep of %q: %w", product, err)
		}
	}
	return res, nil
}

// SilenceCutoffs maps each product whose devices may fall silent to the
// time their last report must be before: now less the product's heartbeat
// interval, or the platform's when it has none. A product with neither
// is left out. The sweep and the metrics count by it.
func (s *Service) SilenceCutoffs(ctx context.Context, now time.Time) (map[string]time.Time, error) {
	list, err := s.cfg.Store.ListProducts(ctx)
	if err != nil {
		return nil, fmt.Errorf("read products: %w", err)
	}
	s.products.mu.Lock()
	s.products.set(list, s.cfg.Now())
	s.products.mu.Unlock()
	out := map[string]time.Time{}
	for _, p := range list {
		interval := p.HeartbeatInterval
		if interval == 0 {
			interval = s.cfg.Heartbeat
		}
		if interval > 0 {
			out[p.ID] = now.Add(-interval)
		}
	}
	return out, nil
}

// drain repeats one batch until it comes back short.
func drain(batch func() (int, error)) (int, error) {
	total := 0
	for {
		n, err := batch()
		total += n
		if err != nil || n < sweepBatch {
			return total, err
		}
	}
}

// Run sweeps once at start and then every SweepEvery, until ctx ends. A
// failed sweep is logged and tried again at the next tick: the events it
// missed are found then, since a sweep looks at the state, not at what
// changed.
//
// Run also handles the onboarding outcomes queued by Onboarded and
// ProofRefused, in a goroutine of its own, until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { s.runFeed(ctx) })
	t := time.NewTicker(s.cfg.SweepEvery)
	defer t.Stop()
	for {
		res, err := s.Sweep(ctx)
		switch {
		case err != nil && ctx.Err() == nil && !errors.Is(err, context.Canceled):
			s.cfg.Log.Warn("monitoring sweep", "err", err)
		case res.Expiring+res.Silent > 0:
			s.cfg.Log.Info("monitoring sweep", "certificates_expiring", res.Expiring, "devices_silent", res.Silent)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
