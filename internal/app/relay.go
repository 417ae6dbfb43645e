package app

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hallmark-iot/hallmark/internal/connector"
	"github.com/hallmark-iot/hallmark/internal/monitoring/relay"
)

// EventsConfig configures the relay of the device event log to the
// connectors that are event sinks (the webhook connector): docs/lifecycle.md,
// "Events to your systems". Zero values are relay's defaults.
type EventsConfig struct {
	// Start is where a sink that has never been relayed to starts:
	// relay.StartEnd (default: what happens from now on) or
	// relay.StartBeginning (the whole log).
	Start relay.Start
	// Poll is how often the log is read when nothing is new (1s).
	Poll time.Duration
	// BackoffBase and BackoffCap shape the waits between attempts at an
	// event a receiver failed (1s doubling, up to 5 minutes).
	BackoffBase, BackoffCap time.Duration
	// Lease is how long a replica relays a sink before another may take
	// it over, should it stop without giving it up (30s).
	Lease time.Duration
}

// newRelay makes the event relay for the configured connectors that are
// event sinks; nil if none is.
func (p *Platform) newRelay() (*relay.Relay, error) {
	var sinks []connector.EventSink
	for _, c := range p.cfg.Connectors {
		if s, ok := c.(connector.EventSink); ok {
			sinks = append(sinks, s)
		}
	}
	if len(sinks) == 0 {
		return nil, nil
	}
	m, err := newRelayMetrics(p.registry)
	if err != nil {
		return nil, err
	}
	ec := p.cfg.Events
	return relay.New(relay.Config{Store: p.Store, Sinks: sinks, Start: ec.Start, Poll: ec.Poll,
		BackoffBase: ec.BackoffBase, BackoffCap: ec.BackoffCap, Lease: ec.Lease, Metrics: m, Log: p.cfg.Log, Now: p.cfg.Now})
}

// certificatesChanged is told of every admin transition that changes
// certificates (suspend, resume, revoke, decommission): revocation is
// published at once, and the relay reads the event log now rather than
// at its next poll (docs/lifecycle.md has the delays).
func (p *Platform) certificatesChanged() {
	p.NotifyRevocation()
	if r := p.relay.Load(); r != nil {
		r.Wake()
	}
}

// relayMetrics adapts the relay's observations to Prometheus.
type relayMetrics struct {
	deliveries     *prometheus.CounterVec
	behind, oldest *prometheus.GaugeVec
}

func newRelayMetrics(reg prometheus.Registerer) (*relayMetrics, error) {
	m := &relayMetrics{
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hallmark_event_deliveries_total",
			Help: "Device event delivery attempts by sink and outcome (delivered, retry, failed: refused for good and skipped).",
		}, []string{"sink", "outcome"}),
		behind: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "hallmark_event_relay_behind",
			Help: "Device events not yet delivered to the sink, counted within one page of the log (at most 500); 0 in a replica not relaying the sink.",
		}, []string{"sink"}),
		oldest: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "hallmark_event_relay_oldest_seconds",
			Help: "Age of the oldest device event not yet delivered to the sink; 0 when it is caught up.",
		}, []string{"sink"}),
	}
	for _, c := range []prometheus.Collector{m.deliveries, m.behind, m.oldest} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *relayMetrics) ObserveDelivery(sink, outcome string) {
	m.deliveries.WithLabelValues(sink, outcome).Inc()
}

func (m *relayMetrics) SetBehind(sink string, events int, oldest time.Duration) {
	m.behind.WithLabelValues(sink).Set(float64(events))
	m.oldest.WithLabelValues(sink).Set(oldest.Seconds())
}

var _ relay.Metrics = (*relayMetrics)(nil)
