package app

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hallmark-iot/hallmark/internal/audit"
	"github.com/hallmark-iot/hallmark/internal/campaign"
	"github.com/hallmark-iot/hallmark/internal/httpapi"
	"github.com/hallmark-iot/hallmark/internal/revocation"
)

// campaignMetricsEvery is how long the campaign gauges are reused before
// the store is asked again.
const campaignMetricsEvery = 30 * time.Second

// startCampaigns builds the campaign service (docs/ota.md, "Campaigns"),
// adds its admin and device routes and registers its metrics. Its view
// of open campaigns refreshes itself on the polls that find it stale, so
// it needs no background loop.
func (p *Platform) startCampaigns(api *httpapi.Server, devices campaign.Authenticator, verify httpapi.DeviceVerifier, reg prometheus.Registerer) error {
	m, err := campaign.NewMetrics(reg)
	if err != nil {
		return err
	}
	if p.hints, err = p.newHintDispatcher(reg); err != nil {
		return err
	}
	// Polls of untargeted devices are answered from memory; the revoked
	// serials, read once a minute and at once after a local revocation,
	// pick out the suspended, revoked and decommissioned devices to refuse.
	if p.revoked, err = revocation.NewListed(p.Store, p.cfg.Now, p.cfg.Log); err != nil {
		return err
	}
	svc, err := campaign.New(campaign.Config{Store: p.Store, Images: p.Store, Devices: devices,
		Recorder: audit.NewRecorder(p.Store, p.cfg.Log, p.cfg.Now), Log: p.cfg.Log, Now: p.cfg.Now, Metrics: m,
		Notifier: p.campaignNotifier(), Revoked: p.revoked})
	if err != nil {
		return err
	}
	if err := api.HandleCampaigns(svc, verify); err != nil {
		return err
	}
	if err := reg.Register(campaign.NewCollector(svc, campaignMetricsEvery)); err != nil {
		return err
	}
	p.campaigns = svc
	return nil
}
