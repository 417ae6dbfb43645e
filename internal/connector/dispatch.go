package connector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// The hint dispatcher sends update hints (Hint) off the request path.
//
// Its queue is derived from committed state rather than written beside
// it: what is to be hinted is "the pending devices of the open waves of a
// running campaign", which the campaign's rows hold durably. A change
// made in this process (a campaign created, a wave opened, a campaign
// resumed) queues a task at once (Offered); at start, Run queues one for
// every running campaign, which redoes whatever a crash or a restart
// left unsent. Redoing is harmless: a hint is idempotent (the same
// retained message again) and only devices still pending, which have not
// polled since their wave opened, get it. A task pages through the
// campaign's pending devices in bounded batches, by identity, so a wave
// of 100,000 devices is never in memory at once, and stops as soon as
// the campaign is no longer running.

// DispatchStore is what the dispatcher reads of the registry.
type DispatchStore interface {
	GetCampaign(ctx context.Context, id string) (store.Campaign, error)
	ListCampaigns(ctx context.Context, f store.CampaignFilter) ([]store.Campaign, error)
	ListCampaignDevices(ctx context.Context, campaignID string, f store.CampaignDeviceFilter) ([]store.CampaignDevice, error)
}

// DispatchMetrics counts hints: outcome is sent or failed.
type DispatchMetrics interface {
	ObserveHints(connector, outcome string, n int)
}

// DispatcherConfig configures a Dispatcher; zero fields take defaults.
type DispatcherConfig struct {
	// Batch is how many devices one page reads and one Notify call sends;
	// default 500.
	Batch       int
	BackoffBase time.Duration // default 1s
	BackoffCap  time.Duration // default 5min
	// MaxAttempts is how many failed sends in a row drop a task; default
	// 20. The devices then learn of their update at their next poll.
	MaxAttempts int
	Log         *slog.Logger // default: discard
	Metrics     DispatchMetrics
}

// Dispatcher sends the update hints of campaigns through notifiers. Its
// methods are safe for concurrent use.
type Dispatcher struct {
	store     DispatchStore
	notifiers []Notifier
	cfg       DispatcherConfig
	wake      chan struct{}

	mu    sync.Mutex
	tasks []*hintTask
	busy  bool
}

// hintTask hints the pending devices of waves From to To of a campaign
// through one notifier, from the identity after which it stopped.
type hintTask struct {
	notifier Notifier
	campaign string
	from, to int
	at       time.Time
	after    identity.ID
	failures int
	notUntil time.Time
}

// NewDispatcher returns a dispatcher for the notifiers, or nil when there
// are none (no connector can send hints).
func NewDispatcher(s DispatchStore, notifiers []Notifier, cfg DispatcherConfig) *Dispatcher {
	if len(notifiers) == 0 {
		return nil
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 500
	}
	cfg.Batch = min(cfg.Batch, store.MaxPageSize)
	if cfg.BackoffBase <= 0 {
		cfg.BackoffBase = time.Second
	}
	if cfg.BackoffCap <= 0 {
		cfg.BackoffCap = 5 * time.Minute
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 20
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Dispatcher{store: s, notifiers: notifiers, cfg: cfg, wake: make(chan struct{}, 1)}
}

// Offered queues the hints of a campaign that now offers its update to
// the devices of waves from to to (inclusive): it was created (0, 0), a
// wave opened (the new wave), or it was resumed (0 to its current wave).
// It does not wait: the hints go out from Run.
func (d *Dispatcher) Offered(c store.Campaign, from, to int) {
	if d == nil || c.State != store.CampaignRunning || from > to {
		return
	}
	d.mu.Lock()
	for _, n := range d.notifiers {
		d.tasks = append(d.tasks, &hintTask{notifier: n, campaign: c.ID, from: from, to: to, at: c.UpdatedAt})
	}
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Idle reports whether no hint waits to be sent.
func (d *Dispatcher) Idle() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.tasks) == 0 && !d.busy
}

// Run queues the hints of every running campaign, then sends hints
// until ctx ends.
func (d *Dispatcher) Run(ctx context.Context) error {
	if err := d.reconcile(ctx); err != nil && ctx.Err() == nil {
		d.cfg.Log.Warn("update hints: read running campaigns", "err", err)
	}
	for {
		wait := d.runDue(ctx)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-d.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// reconcile queues every running campaign's hints for all its open waves.
func (d *Dispatcher) reconcile(ctx context.Context) error {
	cs, err := d.store.ListCampaigns(ctx, store.CampaignFilter{States: []store.CampaignState{store.CampaignRunning}, Limit: store.MaxPageSize})
	if err != nil {
		return err
	}
	for _, c := range cs {
		d.Offered(c, 0, c.CurrentWave)
	}
	return nil
}

// runDue runs the due tasks, one batch each in turn, and returns how long
// to wait for the next one that waits for a retry.
func (d *Dispatcher) runDue(ctx context.Context) time.Duration {
	for ctx.Err() == nil {
		task, wait := d.next()
		if task == nil {
			return wait
		}
		more := d.step(ctx, task)
		d.mu.Lock()
		if more {
			d.tasks = append(d.tasks, task) // round robin between campaigns
		}
		d.busy = false
		d.mu.Unlock()
	}
	return 0
}

// next takes the first due task off the queue, or says how long until one
// is due (an hour when none waits).
func (d *Dispatcher) next() (*hintTask, time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := time.Now()
	wait := time.Hour
	for i, t := range d.tasks {
		if !t.notUntil.After(now) {
			d.tasks = append(d.tasks[:i], d.tasks[i+1:]...)
			d.busy = true
			return t, 0
		}
		wait = min(wait, t.notUntil.Sub(now))
	}
	return nil, wait
}

// step sends one batch of t's hints and reports whether t goes on.
func (d *Dispatcher) step(ctx context.Context, t *hintTask) bool {
	log := d.cfg.Log.With("campaign", t.campaign, "connector", t.notifier.Name())
	pg, err := d.page(ctx, t)
	if err != nil {
		return d.failed(log, t, 0, err)
	}
	if len(pg.notices) > 0 {
		sent, err := t.notifier.Notify(ctx, pg.notices)
		if d.cfg.Metrics != nil && sent > 0 {
			d.cfg.Metrics.ObserveHints(t.notifier.Name(), "sent", sent)
		}
		if err != nil {
			if sent > 0 {
				t.after = pg.notices[sent-1].Identity
			}
			return d.failed(log, t, len(pg.notices)-sent, err)
		}
	}
	t.after, t.failures = pg.end, 0
	if pg.last {
		log.Debug("update hints sent", "waves", fmt.Sprintf("%d-%d", t.from+1, t.to+1))
	}
	return !pg.last
}

// hintPage is one page of a task's devices: the notices of those in its
// waves, the last identity read, and whether the task is done (the
// campaign no longer runs, or this was its last page).
type hintPage struct {
	notices []Notice
	end     identity.ID
	last    bool
}

// page reads the page of t's pending devices after t.after.
func (d *Dispatcher) page(ctx context.Context, t *hintTask) (hintPage, error) {
	c, err := d.store.GetCampaign(ctx, t.campaign)
	if errors.Is(err, store.ErrNotFound) {
		return hintPage{last: true}, nil
	}
	if err != nil {
		return hintPage{}, err
	}
	if c.State != store.CampaignRunning {
		return hintPage{last: true}, nil // paused, or over: a resume queues its own hints
	}
	rows, err := d.store.ListCampaignDevices(ctx, t.campaign, store.CampaignDeviceFilter{State: "pending", After: t.after, Limit: d.cfg.Batch})
	if err != nil {
		return hintPage{}, err
	}
	pg := hintPage{end: t.after, last: len(rows) < d.cfg.Batch}
	for _, r := range rows {
		if r.Wave >= t.from && r.Wave <= t.to {
			pg.notices = append(pg.notices, Notice{Identity: r.Identity, Hint: Hint{Campaign: t.campaign, At: t.at}})
		}
		pg.end = r.Identity
	}
	return pg, nil
}

// failed counts a failed batch and reports whether t is tried again.
func (d *Dispatcher) failed(log *slog.Logger, t *hintTask, unsent int, err error) bool {
	if d.cfg.Metrics != nil && unsent > 0 {
		d.cfg.Metrics.ObserveHints(t.notifier.Name(), "failed", unsent)
	}
	t.failures++
	if errors.Is(err, ErrPermanent) || t.failures >= d.cfg.MaxAttempts {
		log.Error("update hints dropped: devices learn of the update at their next poll", "attempts", t.failures, "err", err)
		return false
	}
	delay := BackoffWith(t.failures, d.cfg.BackoffBase, d.cfg.BackoffCap)
	t.notUntil = time.Now().Add(delay)
	log.Warn("update hints will retry", "attempt", t.failures, "delay", delay, "err", err)
	return true
}
