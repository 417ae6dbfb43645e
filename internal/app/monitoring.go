package app

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hallmark-iot/hallmark/internal/httpapi"
	"github.com/hallmark-iot/hallmark/internal/monitoring"
	"github.com/hallmark-iot/hallmark/internal/onboarding"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// MonitoringConfig configures device monitoring (docs/lifecycle.md,
// "Monitoring"); zero values are monitoring's defaults.
type MonitoringConfig struct {
	// ExpiryThresholds: a certificate.expiring event once per certificate
	// for each (default 30 and 7 days).
	ExpiryThresholds []time.Duration
	// Heartbeat is how long an onboarded device that has reported may be
	// silent before a device.silent event, for products without their own
	// heartbeat interval; zero: never for those.
	Heartbeat time.Duration
	// Clone configures the possible-clone signals (thresholds, the rate
	// limit of their events, the queue of onboarding outcomes).
	Clone monitoring.CloneConfig
	// SweepEvery is how often the sweeps run (default 5 minutes).
	SweepEvery time.Duration
	// MetricsEvery is how long the metrics' counts are reused before the
	// store is asked again (default 30 seconds): a scrape never costs
	// more than one set of grouped counts per interval.
	MetricsEvery time.Duration
}

// startMonitoring builds the monitoring service, adds its routes and
// registers its metrics; Run starts its sweeps (startBackground).
func (p *Platform) startMonitoring(api *httpapi.Server, devices monitoring.Authenticator, verify httpapi.DeviceVerifier, reg prometheus.Registerer) error {
	mc := p.cfg.Monitoring
	svc, err := monitoring.New(monitoring.Config{Store: p.Store, Devices: devices, ExpiryThresholds: mc.ExpiryThresholds,
		Heartbeat: mc.Heartbeat, SweepEvery: mc.SweepEvery, Clone: mc.Clone, Log: p.cfg.Log, Now: p.cfg.Now})
	if err != nil {
		return err
	}
	if err := api.HandleMonitoring(svc, verify); err != nil {
		return err
	}
	every := mc.MetricsEvery
	if every <= 0 {
		every = 30 * time.Second
	}
	col := newMonitoringCollector(p.Store, svc, svc.ExpiryThresholds(), every, p.cfg.Now, p.cfg.Log)
	if err := reg.Register(col); err != nil {
		return err
	}
	p.monitor = svc
	return nil
}

// countStore is what the metrics read.
type countStore interface {
	CountMonitoring(ctx context.Context, now time.Time, expiring []time.Duration, silentSince map[string]time.Time) (store.MonitoringCounts, error)
}

// watchCounts is what the metrics ask of the monitoring service: the
// rule by which a device is silent, and the outcomes it dropped.
type watchCounts interface {
	SilenceCutoffs(ctx context.Context, now time.Time) (map[string]time.Time, error)
	Dropped() int64
}

// monitoringCollector exports the fleet's counts, read from the store at
// most once per interval whatever the number of scrapes.
type monitoringCollector struct {
	store    countStore
	watch    watchCounts
	expiring []time.Duration
	every    time.Duration
	now      func() time.Time
	log      *slog.Logger

	devices, expiringDesc, silent, events, dropped *prometheus.Desc

	mu     sync.Mutex
	counts store.MonitoringCounts
	readAt time.Time
}

func newMonitoringCollector(st countStore, watch watchCounts, expiring []time.Duration, every time.Duration, now func() time.Time, log *slog.Logger) *monitoringCollector {
	return &monitoringCollector{store: st, watch: watch, expiring: expiring, every: every, now: now, log: log,
		devices: prometheus.NewDesc("hallmark_devices", "Devices by product and lifecycle state.", []string{"product", "state"}, nil),
		expiringDesc: prometheus.NewDesc("hallmark_certificates_expiring",
			"Current, good device certificates expiring within the threshold (e.g. 7d, 30d).", []string{"within"}, nil),
		silent: prometheus.NewDesc("hallmark_devices_silent",
			"Onboarded devices whose last status report is older than their product's heartbeat interval (or the platform's).", nil, nil),
		events: prometheus.NewDesc("hallmark_device_events_total", "Device events in the event log, by kind.", []string{"kind"}, nil),
		dropped: prometheus.NewDesc("hallmark_monitoring_dropped_total",
			"Onboarding outcomes (refused proofs, onboardings) monitoring dropped because its queue was full.", nil, nil),
	}
}

func (c *monitoringCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.devices
	ch <- c.expiringDesc
	ch <- c.silent
	ch <- c.events
	ch <- c.dropped
}

func (c *monitoringCollector) Collect(ch chan<- prometheus.Metric) {
	counts := c.read()
	for product, states := range counts.Devices {
		for state, n := range states {
			ch <- prometheus.MustNewConstMetric(c.devices, prometheus.GaugeValue, float64(n), product, string(state))
		}
	}
	for within, n := range counts.Expiring {
		ch <- prometheus.MustNewConstMetric(c.expiringDesc, prometheus.GaugeValue, float64(n), thresholdLabel(within))
	}
	ch <- prometheus.MustNewConstMetric(c.silent, prometheus.GaugeValue, float64(counts.Silent))
	ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(c.watch.Dropped()))
	for kind, n := range counts.Events {
		ch <- prometheus.MustNewConstMetric(c.events, prometheus.CounterValue, float64(n), string(kind))
	}
}

// read returns the counts, read again once they are older than the
// interval; concurrent scrapes wait for one read. A failed read keeps the
// last counts (logged): a scrape does not fail for the store.
func (c *monitoringCollector) read() store.MonitoringCounts {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if !c.readAt.IsZero() && now.Sub(c.readAt) < c.every {
		return c.counts
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cutoffs, err := c.watch.SilenceCutoffs(ctx, now)
	var counts store.MonitoringCounts
	if err == nil {
		counts, err = c.store.CountMonitoring(ctx, now, c.expiring, cutoffs)
	}
	if err != nil {
		c.log.Warn("monitoring metrics", "err", err)
		return c.counts
	}
	c.counts, c.readAt = counts, now
	return counts
}

// monitorFeed hands onboarding's outcomes to monitoring: every
// successful onboarding (onboarding.Watch), and every refused proof of
// possession, teed from the refusals the audit aggregator records
// (onboarding.Refusals). Both only queue (monitoring.Service), for every
// identity alike, so the refusal of an unknown identity takes what a
// registered one's does. p.monitor is set before the platform serves.
type monitorFeed struct {
	p    *Platform
	next onboarding.Refusals
}

func (f monitorFeed) Onboarded(_ context.Context, o onboarding.Onboarding) {
	if m := f.p.monitor; m != nil {
		m.Onboarded(o.Identity, o.Source, o.At, o.Again)
	}
}

func (f monitorFeed) Refuse(ctx context.Context, r onboarding.Refusal) {
	if f.next != nil {
		f.next.Refuse(ctx, r)
	}
	if m := f.p.monitor; m != nil && r.Action == "device.onboard" && r.Reason == onboarding.ErrorCode(onboarding.ErrProofRejected) {
		m.ProofRefused(r.Identity, r.Source, f.p.cfg.Now())
	}
}

// thresholdLabel writes a threshold in days when it is whole days.
func thresholdLabel(d time.Duration) string {
	const day = 24 * time.Hour
	if d%day == 0 {
		return strconv.FormatInt(int64(d/day), 10) + "d"
	}
	return fmt.Sprint(d)
}
