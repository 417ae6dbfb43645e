package campaign

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hallmark-iot/hallmark/internal/ota"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// Metrics are the campaigns' Prometheus metrics. Label values are
// bounded: device states are the protocol's, reasons the first
// maxReasons codes seen (any further one is "other"), and per-campaign
// series exist only for open (running or paused) campaigns.
type Metrics struct {
	reports *prometheus.CounterVec
	refusal prometheus.Counter

	mu      sync.Mutex
	reasons map[string]struct{}
}

const maxReasons = 64

// NewMetrics registers the report counters with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		reports: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hallmark_campaign_reports_total",
			Help: "Device reports that moved a device forward, by state reported and failure reason (a repeated report is not counted)."}, []string{"state", "reason"}),
		refusal: prometheus.NewCounter(prometheus.CounterOpts{Name: "hallmark_campaign_reports_refused_total",
			Help: "Device reports refused (another campaign, a step back, before the offer)."}),
		reasons: map[string]struct{}{},
	}
	for _, c := range []prometheus.Collector{m.reports, m.refusal} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Metrics) report(r ota.Report) {
	if m == nil {
		return
	}
	reason := r.Reason
	if reason != "" {
		m.mu.Lock()
		if _, ok := m.reasons[reason]; !ok {
			if len(m.reasons) >= maxReasons {
				reason = "other"
			} else {
				m.reasons[reason] = struct{}{}
			}
		}
		m.mu.Unlock()
	}
	m.reports.WithLabelValues(string(r.State), reason).Inc()
}

func (m *Metrics) refused() {
	if m != nil {
		m.refusal.Inc()
	}
}

// Collector exports campaigns by state and the devices of each open
// campaign by device state, read from the store at most once per
// interval however often Prometheus scrapes.
type Collector struct {
	s     *Service
	every time.Duration

	mu        sync.Mutex
	at        time.Time
	byState   map[store.CampaignState]int
	perDevice map[string][]store.CampaignCount
}

var (
	campaignsDesc = prometheus.NewDesc("hallmark_campaigns", "Campaigns by state.", []string{"state"}, nil)
	devicesDesc   = prometheus.NewDesc("hallmark_campaign_devices",
		"Devices of each running or paused campaign by device state.", []string{"campaign", "state"}, nil)
)

// NewCollector returns the collector of s's campaigns, reading the store
// at most once per every.
func NewCollector(s *Service, every time.Duration) *Collector {
	return &Collector{s: s, every: every}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- campaignsDesc
	ch <- devicesDesc
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if now := c.s.cfg.Now(); c.byState == nil || now.Sub(c.at) >= c.every {
		if err := c.read(context.Background()); err != nil {
			c.s.cfg.Log.Warn("campaign metrics", "error", err)
		} else {
			c.at = now
		}
	}
	for _, st := range store.CampaignStates {
		ch <- prometheus.MustNewConstMetric(campaignsDesc, prometheus.GaugeValue, float64(c.byState[st]), string(st))
	}
	for id, counts := range c.perDevice {
		sum := map[string]int{}
		for _, n := range counts {
			sum[n.State] += n.N
		}
		for _, st := range ota.DeviceStates {
			ch <- prometheus.MustNewConstMetric(devicesDesc, prometheus.GaugeValue, float64(sum[string(st)]), id, string(st))
		}
	}
}

func (c *Collector) read(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	byState := map[store.CampaignState]int{}
	perDevice := map[string][]store.CampaignCount{}
	for _, st := range store.CampaignStates {
		list, err := c.s.cfg.Store.ListCampaigns(ctx, store.CampaignFilter{States: []store.CampaignState{st}, Limit: store.MaxPageSize})
		if err != nil {
			return err
		}
		byState[st] = len(list)
		if st == store.CampaignRunning || st == store.CampaignPaused {
			for _, camp := range list {
				counts, err := c.s.cfg.Store.CountCampaignDevices(ctx, camp.ID)
				if err != nil {
					return err
				}
				perDevice[camp.ID] = counts
			}
		}
	}
	c.byState, c.perDevice = byState, perDevice
	return nil
}
