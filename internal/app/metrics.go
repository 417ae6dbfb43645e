package app

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hallmark-iot/hallmark/internal/connector"
	"github.com/hallmark-iot/hallmark/internal/onboarding"
)

// metrics adapts onboarding and job outcomes to Prometheus.
type metrics struct {
	steps *prometheus.HistogramVec
	jobs  *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{steps: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "hallmark_onboarding_step_seconds",
		Help:    "Onboarding steps by step (challenge, proof) and outcome code.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
	}, []string{"step", "outcome"}),
		jobs: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "hallmark_connector_job_seconds",
			Help:    "Connector job attempts by connector, kind (register, deregister) and outcome (done, retry, failed).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"connector", "kind", "outcome"}),
	}
	for _, c := range []prometheus.Collector{m.steps, m.jobs} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) Observe(step, outcome string, took time.Duration) {
	m.steps.WithLabelValues(step, outcome).Observe(took.Seconds())
}

func (m *metrics) ObserveJob(connector, kind, outcome string, took time.Duration) {
	m.jobs.WithLabelValues(connector, kind, outcome).Observe(took.Seconds())
}

var (
	_ onboarding.Metrics = (*metrics)(nil)
	_ connector.Metrics  = (*metrics)(nil)
)
