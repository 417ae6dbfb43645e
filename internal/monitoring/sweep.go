package monitoring

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// SweepResult counts the events one sweep added.
type SweepResult struct {
	Expiring int
	Silent   int
}

// Sweep adds the events that time alone causes: certificate.expiring for
// each threshold, device.silent past the heartbeat. Each is one indexed
// range read per batch of sweepBatch (store.Monitoring), so a sweep of a
// million devices reads only the certificates inside the widest
// threshold and the devices past their heartbeat.
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
	if s.cfg.Heartbeat > 0 {
		n, err := drain(func() (int, error) {
			return s.cfg.Store.NoteSilentDevices(ctx, now, now.Add(-s.cfg.Heartbeat), sweepBatch)
		})
		res.Silent += n
		if err != nil {
			return res, fmt.Errorf("silence sweep: %w", err)
		}
	}
	return res, nil
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
func (s *Service) Run(ctx context.Context) error {
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
