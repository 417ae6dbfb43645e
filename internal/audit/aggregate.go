package audit

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hallmark-iot/hallmark/internal/store"
)

// Defaults of an Aggregator.
const (
	DefaultInterval = time.Minute
	// DefaultMaxSources bounds the distinct (source, action, reason) keys
	// tallied per interval; later keys fold into one "other sources"
	// entry per action and reason.
	DefaultMaxSources = 1000
	// maxOverflowKeys bounds the "other sources" entries themselves, in
	// case a caller's actions or reasons were not the closed sets they
	// should be.
	maxOverflowKeys = 64
	// OtherSources is the subject of the summary of the keys that did not
	// fit.
	OtherSources = "address:other"
)

// Refusal is one refused anonymous attempt.
type Refusal struct {
	// Interface is the metric's interface label: "admin", "onboarding".
	Interface string
	// Action is the audit action attempted, e.g. device.onboard.
	Action string
	// Reason is a short code from a closed set (unknown-token,
	// proof-rejected, rate-limited): the metric's reason label and the
	// event's detail.
	Reason string
	// Source is the client address.
	Source string
	// Actor and Subject name the first attempt of an interval, which is
	// written on its own (escaped all the same); empty: anonymous, and the
	// source address.
	Actor, Subject string
	// SummaryOnly marks an attempt refused before any lookup (a rate limit
	// or lock-out): it is counted and summarised, never written on its
	// own, so refusing it touches no store.
	SummaryOnly bool
}

// Config configures an Aggregator.
type Config struct {
	Store Appender
	// Metrics receives hallmark_refused_requests_total; nil registers
	// nothing (the counter still counts).
	Metrics prometheus.Registerer
	// Interval is how often summaries are written; zero selects
	// DefaultInterval.
	Interval time.Duration
	// MaxSources bounds the keys tallied per interval; zero selects
	// DefaultMaxSources.
	MaxSources int
	Now        func() time.Time
	Log        *slog.Logger
}

// Aggregator records refused anonymous attempts. Each is counted in
// Prometheus. In the audit log, the first attempt of each (source,
// action, reason) in an interval is written at once, and the rest are
// tallied in memory and written as one summary event at the end of the
// interval with their count and the times of the first and the last: at
// most two events per key and interval, however many attempts. Memory is
// bounded by MaxSources keys; attempts beyond them are tallied under
// "other sources". Run writes the summaries; call it once.
type Aggregator struct {
	cfg     Config
	rec     *Recorder
	refused *prometheus.CounterVec
	mu      sync.Mutex
	tallies map[tallyKey]*tally
	// overflow holds the attempts of keys that did not fit, by action
	// and reason.
	overflow map[tallyKey]*tally
}

type tallyKey struct{ iface, action, reason, source string }

type tally struct {
	count       int
	logged      int // attempts written on their own (0 or 1)
	first, last time.Time
}

// New checks cfg and builds an Aggregator.
func New(cfg Config) (*Aggregator, error) {
	if cfg.Store == nil {
		return nil, errors.New("audit: no store")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.MaxSources <= 0 {
		cfg.MaxSources = DefaultMaxSources
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	a := &Aggregator{cfg: cfg, rec: NewRecorder(cfg.Store, cfg.Log, cfg.Now), tallies: map[tallyKey]*tally{}, overflow: map[tallyKey]*tally{},
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hallmark_refused_requests_total",
			Help: "Refused anonymous requests by interface (admin, onboarding) and reason.",
		}, []string{"interface", "reason"})}
	if cfg.Metrics != nil {
		if err := cfg.Metrics.Register(a.refused); err != nil {
			return nil, fmt.Errorf("audit: register metrics: %w", err)
		}
	}
	return a, nil
}

// Refuse records one refused attempt. It writes to the store only for the
// first attempt of its key in the interval, unless r.SummaryOnly.
func (a *Aggregator) Refuse(ctx context.Context, r Refusal) {
	a.refused.WithLabelValues(r.Interface, r.Reason).Inc()
	now := a.cfg.Now()
	src := Source(r.Source)
	k := tallyKey{iface: r.Interface, action: r.Action, reason: r.Reason, source: src}
	a.mu.Lock()
	t := a.tallies[k]
	if t == nil && len(a.tallies) >= a.cfg.MaxSources {
		t = a.overflowTally(k, now)
	} else if t == nil {
		t = &tally{first: now}
		a.tallies[k] = t
	}
	t.count++
	t.last = now
	writeNow := !r.SummaryOnly && t.logged == 0 && a.tallies[k] == t
	if writeNow {
		t.logged = 1
	}
	a.mu.Unlock()
	if !writeNow {
		return
	}
	actor, subject := r.Actor, r.Subject
	if actor == "" {
		actor = "anonymous"
	}
	if subject == "" {
		subject = "address:" + src
	}
	a.append(ctx, store.AuditEvent{Time: now, Actor: actor, Action: r.Action, Subject: subject,
		Outcome: "denied", Detail: r.Reason, RemoteAddr: src})
}

// overflowTally is the "other sources" tally of k; a.mu is held.
func (a *Aggregator) overflowTally(k tallyKey, now time.Time) *tally {
	k.source = ""
	if _, ok := a.overflow[k]; !ok && len(a.overflow) >= maxOverflowKeys {
		k = tallyKey{iface: "other", action: "other", reason: "other"}
	}
	t := a.overflow[k]
	if t == nil {
		t = &tally{first: now}
		a.overflow[k] = t
	}
	return t
}

// Flush writes the summaries of the interval so far and starts a new one.
// An event that cannot be written is logged with its count, not retried.
func (a *Aggregator) Flush(ctx context.Context) {
	a.mu.Lock()
	tallies, overflow := a.tallies, a.overflow
	a.tallies, a.overflow = map[tallyKey]*tally{}, map[tallyKey]*tally{}
	a.mu.Unlock()
	now := a.cfg.Now()
	for _, s := range summaries(tallies, overflow) {
		a.append(ctx, s.event(now))
	}
}

// summary is one key's tally, to write.
type summary struct {
	key tallyKey
	*tally
}

// summaries lists the tallies with attempts not yet written, oldest
// first, the overflow last.
func summaries(tallies, overflow map[tallyKey]*tally) []summary {
	var out []summary
	for k, t := range tallies {
		if t.count > t.logged {
			out = append(out, summary{k, t})
		}
	}
	slices.SortFunc(out, func(x, y summary) int {
		return cmp.Or(x.first.Compare(y.first), cmp.Compare(x.key.source, y.key.source),
			cmp.Compare(x.key.action, y.key.action), cmp.Compare(x.key.reason, y.key.reason))
	})
	n := len(out)
	for k, t := range overflow {
		out = append(out, summary{k, t})
	}
	slices.SortFunc(out[n:], func(x, y summary) int {
		return cmp.Or(cmp.Compare(x.key.action, y.key.action), cmp.Compare(x.key.reason, y.key.reason))
	})
	return out
}

const timeLayout = "2006-01-02T15:04:05.000Z07:00"

func (s summary) event(now time.Time) store.AuditEvent {
	subject := "address:" + s.key.source
	if s.key.source == "" {
		subject = OtherSources
	}
	detail := fmt.Sprintf("%s: %d refused from %s to %s", s.key.reason, s.count,
		s.first.UTC().Format(timeLayout), s.last.UTC().Format(timeLayout))
	if s.logged > 0 {
		detail += " (the first logged on its own)"
	}
	return store.AuditEvent{Time: now, Actor: "anonymous", Action: s.key.action, Subject: subject,
		Outcome: "denied", Detail: detail, RemoteAddr: s.key.source}
}

// Run writes the summaries every interval until ctx ends, then once more,
// so that stopping the platform loses no count.
func (a *Aggregator) Run(ctx context.Context) error {
	t := time.NewTicker(a.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			a.Flush(context.WithoutCancel(ctx))
			return nil
		case <-t.C:
			a.Flush(ctx)
		}
	}
}

// append writes e through the one event builder and recorder.
func (a *Aggregator) append(ctx context.Context, e store.AuditEvent) {
	a.rec.Record(ctx, e)
}

// Clean escapes and bounds every text field of e, and reduces its remote
// address to a canonical IP: the last check before the append-only log.
func Clean(e store.AuditEvent) store.AuditEvent {
	e.Actor = Text(e.Actor, MaxField)
	e.Action = Text(e.Action, MaxField)
	e.Subject = Text(e.Subject, MaxField)
	e.Outcome = Text(e.Outcome, MaxField)
	e.Detail = Text(e.Detail, MaxField)
	e.RemoteAddr = Source(e.RemoteAddr)
	return e
}
