package app

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hallmark-iot/hallmark/internal/campaign"
	"github.com/hallmark-iot/hallmark/internal/connector"
)

// Update hints (docs/ota.md, "Notification over MQTT"): the connectors
// that can reach devices on their own topics (connector.Notifier: the
// Mosquitto connector) tell the devices a campaign offers an update to
// that they should poll now. Without such a connector there is no
// dispatcher and devices learn of updates by polling alone.

// hintMetrics counts hints by connector and outcome (sent, failed).
type hintMetrics struct{ hints *prometheus.CounterVec }

func (m hintMetrics) ObserveHints(connector, outcome string, n int) {
	m.hints.WithLabelValues(connector, outcome).Add(float64(n))
}

// newHintDispatcher makes the dispatcher of the configured notifiers, or
// nil when no connector is one.
func (p *Platform) newHintDispatcher(reg prometheus.Registerer) (*connector.Dispatcher, error) {
	var notifiers []connector.Notifier
	for _, c := range p.cfg.Connectors {
		if n, ok := c.(connector.Notifier); ok {
			notifiers = append(notifiers, n)
		}
	}
	if len(notifiers) == 0 {
		return nil, nil
	}
	m := hintMetrics{hints: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hallmark_update_hints_total",
		Help: "Update hints sent to devices on their own topics, by connector and outcome (sent, failed).",
	}, []string{"connector", "outcome"})}
	if err := reg.Register(m.hints); err != nil {
		return nil, err
	}
	return connector.NewDispatcher(p.Store, notifiers, connector.DispatcherConfig{Log: p.cfg.Log, Metrics: m}), nil
}

// campaignNotifier is the dispatcher as the campaign service's Notifier:
// nil, not a nil pointer in an interface, when there is none.
func (p *Platform) campaignNotifier() campaign.Notifier {
	if p.hints == nil {
		return nil
	}
	return p.hints
}
