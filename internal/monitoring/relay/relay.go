// Package relay owns delivering the device event log to the customer's
// systems (docs/lifecycle.md, "Events to your systems"): for each event
// sink (connector.EventSink: the webhook connector today) one follower
// reads the log after the sink's durable cursor (store.EventCursors),
// delivers each event in log order, at least once, with an ID that is the
// same in every delivery of it, and moves the cursor past it. Replicas
// sharing a database each run a relay; a lease on each cursor lets one
// of them deliver to a sink at a time.
//
// A retryable failure retries the same event with capped exponential
// backoff, and the events after it wait: a receiver sees them in order. A
// permanent one (connector.ErrPermanent: a 4xx from a webhook) is logged,
// counted and skipped, since no retry would deliver it.
package relay

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/hallmark-iot/hallmark/internal/connector"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// Store is what the relay reads and writes: the event log, the device an
// event is about (for its product), and the sinks' cursors.
type Store interface {
	ListEvents(ctx context.Context, f store.EventFilter) ([]store.DeviceEvent, error)
	GetDevice(ctx context.Context, id identity.ID) (store.Device, error)
	store.EventCursors
}

// Start is where a sink without a cursor starts.
type Start string

// Where a new sink starts: at the end of the log (the default: an
// operator adding a webhook wants what happens from now on, not a year
// of history), or at its beginning.
const (
	StartEnd       Start = "end"
	StartBeginning Start = "beginning"
)

// ParseStart reads a Start; empty is StartEnd.
func ParseStart(s string) (Start, error) {
	switch Start(s) {
	case "", StartEnd:
		return StartEnd, nil
	case StartBeginning:
		return StartBeginning, nil
	}
	return "", fmt.Errorf("event relay: start %q: want %s or %s", s, StartEnd, StartBeginning)
}

// Delivery outcomes, as Metrics sees them.
const (
	OutcomeDelivered = "delivered"
	OutcomeRetry     = "retry"  // a retryable failure: the event is tried again
	OutcomeFailed    = "failed" // a permanent failure: the event is skipped
)

// Metrics observes the relay. Behind is what a sink has still to be
// told: events (counted within one page of the log, so at most Config.Page)
// and how old the oldest of them is; zero when it is caught up.
type Metrics interface {
	ObserveDelivery(sink, outcome string)
	SetBehind(sink string, events int, oldest time.Duration)
}

// Defaults.
const (
	DefaultPoll    = time.Second
	DefaultTimeout = 10 * time.Second
	DefaultLease   = 30 * time.Second
	DefaultPage    = 500
)

// Config configures a Relay; zero fields take the defaults.
type Config struct {
	Store Store
	// Sinks receive every event; their names must differ.
	Sinks []connector.EventSink
	// Start is where a sink that has no cursor yet starts (StartEnd).
	Start Start
	// Poll is the wait between reads of the log that found nothing new
	// (DefaultPoll); Wake cuts it short.
	Poll time.Duration
	// Timeout bounds one delivery attempt (DefaultTimeout).
	Timeout time.Duration
	// Lease is how long a relay holds a sink once it claimed it
	// (DefaultLease), renewed while it runs; more than twice Timeout, so
	// an attempt started under a lease ends under it. A relay that
	// stopped without giving its sinks up (a crash) holds them this long.
	Lease time.Duration
	// Holder names this relay in leases (default host/pid/random).
	Holder string
	// BackoffBase and BackoffCap shape the waits between attempts at one
	// event (1s doubling up to 5 minutes, with full jitter).
	BackoffBase, BackoffCap time.Duration
	// Page is how many events one read of the log returns (DefaultPage).
	Page    int
	Metrics Metrics
	Log     *slog.Logger
	Now     func() time.Time
}

// Relay follows the event log for each sink.
type Relay struct {
	cfg       Config
	followers []*follower
}

// New checks cfg and returns a relay; Run starts it.
func New(cfg Config) (*Relay, error) {
	if cfg.Store == nil {
		return nil, errors.New("event relay: a store is required")
	}
	start, err := ParseStart(string(cfg.Start))
	if err != nil {
		return nil, err
	}
	cfg.Start = start
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.Poll, DefaultPoll)
	def(&cfg.Timeout, DefaultTimeout)
	def(&cfg.Lease, max(DefaultLease, 3*cfg.Timeout))
	if cfg.Lease <= 2*cfg.Timeout {
		return nil, fmt.Errorf("event relay: a lease of %v is not more than twice the delivery timeout of %v", cfg.Lease, cfg.Timeout)
	}
	if cfg.Holder == "" {
		cfg.Holder = defaultHolder()
	}
	def(&cfg.BackoffBase, time.Second)
	def(&cfg.BackoffCap, 5*time.Minute)
	if cfg.Page <= 0 || cfg.Page > store.MaxPageSize {
		cfg.Page = min(DefaultPage, store.MaxPageSize)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = noMetrics{}
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	r := &Relay{cfg: cfg}
	seen := map[string]bool{}
	for _, s := range cfg.Sinks {
		if s == nil {
			return nil, errors.New("event relay: a sink is nil")
		}
		name := s.Name()
		if err := store.CheckCursorName(name); err != nil {
			return nil, fmt.Errorf("event relay: sink %q: %w", name, err)
		}
		if seen[name] {
			return nil, fmt.Errorf("event relay: two sinks are named %q", name)
		}
		seen[name] = true
		r.followers = append(r.followers, &follower{cfg: &r.cfg, sink: s, wake: make(chan struct{}, 1),
			log: cfg.Log.With("sink", name)})
	}
	return r, nil
}

// Run delivers events to every sink until ctx ends, then returns nil.
func (r *Relay) Run(ctx context.Context) error {
	done := make(chan struct{})
	for _, f := range r.followers {
		go func() { f.run(ctx); done <- struct{}{} }()
	}
	for range r.followers {
		<-done
	}
	return nil
}

// Wake tells every sink's follower to read the log now rather than at its
// next poll: a hint from a process that has just written an event. It
// never blocks.
func (r *Relay) Wake() {
	for _, f := range r.followers {
		select {
		case f.wake <- struct{}{}:
		default:
		}
	}
}

// defaultHolder names this process: host, pid and a random part, since
// pids repeat across containers.
func defaultHolder() string {
	host, _ := os.Hostname()
	suffix := make([]byte, 4)
	rand.Read(suffix)
	return fmt.Sprintf("%s/%d/%x", host, os.Getpid(), suffix)
}

type noMetrics struct{}

func (noMetrics) ObserveDelivery(string, string)       {}
func (noMetrics) SetBehind(string, int, time.Duration) {}
