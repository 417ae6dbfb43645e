package connector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// JobStore is what the worker needs of the registry.
type JobStore interface {
	ClaimJobs(ctx context.Context, workerID string, now time.Time, lease time.Duration, limit int) ([]store.Job, error)
	CompleteJob(ctx context.Context, id int64, at time.Time) error
	RetryJob(ctx context.Context, id int64, nextRunAt time.Time, lastError string, at time.Time) error
	FailJob(ctx context.Context, id int64, lastError string, at time.Time) error
	GetDevice(ctx context.Context, id identity.ID) (store.Device, error)
	GetProduct(ctx context.Context, id string) (store.Product, error)
	ListCertificates(ctx context.Context, id identity.ID) ([]store.Certificate, error)
}

// WorkerConfig configures a worker; zero fields take the defaults.
type WorkerConfig struct {
	ID          string        // names the worker in leases; default "worker"
	Poll        time.Duration // wait between empty claims; default 200ms
	Lease       time.Duration // how long a claimed job is the worker's; default 60s
	JobTimeout  time.Duration // bound on one connector call; default 10s (less for short leases)
	MaxAttempts int           // attempts before a job fails for good; default 20
	BackoffBase time.Duration // default 1s
	BackoffCap  time.Duration // default 5min
	Batch       int           // jobs claimed at once; default 4
	Log         *slog.Logger  // default: discard
	Now         func() time.Time
	// Metrics observes every attempt; nil records nothing.
	Metrics Metrics
}

// Metrics observes job attempts: outcome is done, retry or failed.
type Metrics interface {
	ObserveJob(connector, kind, outcome string, took time.Duration)
}

// Worker runs registration jobs: at least once, so connectors' effects
// must be idempotent (see Connector).
type Worker struct {
	store      JobStore
	connectors map[string]Connector
	cfg        WorkerConfig
}

// NewWorker returns a worker running jobs for the given connectors, keyed
// by the name jobs carry.
func NewWorker(s JobStore, connectors map[string]Connector, cfg WorkerConfig) (*Worker, error) {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if cfg.ID == "" {
		cfg.ID = "worker"
	}
	def(&cfg.Poll, 200*time.Millisecond)
	def(&cfg.Lease, 60*time.Second)
	def(&cfg.BackoffBase, time.Second)
	def(&cfg.BackoffCap, 5*time.Minute)
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 20
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 4
	}
	def(&cfg.JobTimeout, min(10*time.Second, cfg.Lease/time.Duration(cfg.Batch+1)))
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	// A batch runs one job after another: all of them must fit in a lease,
	// or a slow batch would let another worker claim its tail.
	if time.Duration(cfg.Batch)*cfg.JobTimeout >= cfg.Lease {
		return nil, fmt.Errorf("connector worker: %d jobs of up to %v do not fit in a lease of %v", cfg.Batch, cfg.JobTimeout, cfg.Lease)
	}
	for name, c := range connectors {
		if c == nil || c.Name() != name {
			return nil, fmt.Errorf("connector worker: connector %q is nil or named otherwise", name)
		}
	}
	return &Worker{store: s, connectors: connectors, cfg: cfg}, nil
}

// Run claims and runs jobs until ctx ends, then returns nil. A job whose
// run ctx interrupts stays leased and runs again when its lease expires.
func (w *Worker) Run(ctx context.Context) error {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		n, err := w.RunOnce(ctx)
		if err != nil && ctx.Err() == nil {
			w.cfg.Log.Warn("connector jobs", "worker", w.cfg.ID, "err", err)
		}
		wait := w.cfg.Poll
		if n == w.cfg.Batch && err == nil {
			wait = 0 // more may be waiting
		}
		t.Reset(wait)
	}
}

// RunOnce claims one batch of due jobs, runs them and returns how many it
// claimed.
func (w *Worker) RunOnce(ctx context.Context) (int, error) {
	jobs, err := w.store.ClaimJobs(ctx, w.cfg.ID, w.cfg.Now(), w.cfg.Lease, w.cfg.Batch)
	if err != nil {
		return 0, err
	}
	var errs []error
	for _, j := range jobs {
		if ctx.Err() != nil {
			break
		}
		start := time.Now()
		runErr := w.run(ctx, j)
		errs = append(errs, w.finish(ctx, j, runErr, time.Since(start)))
	}
	return len(jobs), errors.Join(errs...)
}

// run performs one job's effect.
func (w *Worker) run(ctx context.Context, j store.Job) error {
	c, ok := w.connectors[j.Connector]
	if !ok {
		// Retried, not failed: a configuration fix may bring it back.
		return fmt.Errorf("no connector named %q is configured", j.Connector)
	}
	ctx, cancel := context.WithTimeout(ctx, w.cfg.JobTimeout)
	defer cancel()
	switch j.Kind {
	case store.JobDeregister:
		return c.Deregister(ctx, j.Identity)
	case store.JobRegister:
		d, err := w.device(ctx, j.Identity)
		if err != nil {
			return err
		}
		return c.Register(ctx, d)
	}
	return fmt.Errorf("unknown job kind %q: %w", j.Kind, ErrPermanent)
}

// device builds what a connector learns about a device from the registry.
// A revoked device is never registered: a register job retried past the
// revocation's deregister job would otherwise bring it back.
func (w *Worker) device(ctx context.Context, id identity.ID) (Device, error) {
	d, err := w.store.GetDevice(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return Device{}, fmt.Errorf("device %s: %w: %w", id, err, ErrPermanent)
	}
	if err != nil {
		return Device{}, err
	}
	if d.State != store.StateOnboarded {
		return Device{}, fmt.Errorf("device %s is %s, not onboarded: %w", id, d.State, ErrPermanent)
	}
	p, err := w.store.GetProduct(ctx, d.ProductID)
	if err != nil {
		return Device{}, err
	}
	certs, err := w.store.ListCertificates(ctx, id)
	if err != nil {
		return Device{}, err
	}
	endpoint := d.CloudEndpoint // allocated at its first issuance (internal/allocation)
	if endpoint == "" {
		endpoint = p.CloudEndpoint
	}
	for _, c := range certs { // newest first
		if c.RevokedAt.IsZero() {
			return Device{Identity: id, ProductID: p.ID, CloudEndpoint: endpoint,
				Certificate: c.DER, OnboardedAt: d.OnboardedAt}, nil
		}
	}
	return Device{}, fmt.Errorf("device %s has no valid certificate: %w", id, ErrPermanent)
}

// finish records a job's outcome.
func (w *Worker) finish(ctx context.Context, j store.Job, runErr error, took time.Duration) error {
	now := w.cfg.Now()
	log := w.cfg.Log.With("worker", w.cfg.ID, "job", j.ID, "kind", j.Kind, "connector", j.Connector, "device", j.Identity.String())
	var err error
	outcome := ""
	switch {
	case ctx.Err() != nil:
		// Shutting down: leave the job leased; it runs again after the
		// lease, effects being idempotent.
		return nil
	case runErr == nil:
		err, outcome = w.store.CompleteJob(ctx, j.ID, now), "done"
		log.Info("connector job done", "attempt", j.Attempts+1)
	case errors.Is(runErr, ErrPermanent) || j.Attempts+1 >= w.cfg.MaxAttempts:
		err, outcome = w.store.FailJob(ctx, j.ID, runErr.Error(), now), "failed"
		log.Error("connector job failed", "attempt", j.Attempts+1, "err", runErr)
	default:
		delay := BackoffWith(j.Attempts+1, w.cfg.BackoffBase, w.cfg.BackoffCap)
		err, outcome = w.store.RetryJob(ctx, j.ID, now.Add(delay), runErr.Error(), now), "retry"
		log.Warn("connector job will retry", "attempt", j.Attempts+1, "delay", delay, "err", runErr)
	}
	if w.cfg.Metrics != nil {
		w.cfg.Metrics.ObserveJob(j.Connector, j.Kind, outcome, took)
	}
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("record job %d: %w", j.ID, err)
	}
	return nil
}

// Backoff is the delay before retrying after the given failed attempt
// (1, 2, ...) with the default base (1s) and cap (5min).
func Backoff(attempt int) time.Duration { return BackoffWith(attempt, time.Second, 5*time.Minute) }

// BackoffWith is exponential backoff with full jitter: a uniformly random
// delay in [0, min(maxDelay, base·2^(attempt-1))]. Jitter spreads out the
// retries of many jobs that failed together (a broker outage).
func BackoffWith(attempt int, base, maxDelay time.Duration) time.Duration {
	ceiling := base
	for i := 1; i < attempt && ceiling < maxDelay; i++ {
		ceiling *= 2
	}
	ceiling = min(ceiling, maxDelay)
	if ceiling <= 0 {
		return 0
	}
	return rand.N(ceiling + 1)
}
