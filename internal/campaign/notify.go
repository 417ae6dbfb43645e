package campaign

import "github.com/hallmark-iot/hallmark/internal/store"

// Notifier is told when a campaign offers its update to more devices,
// so that it can hint each of them to poll now (docs/ota.md,
// "Notification over MQTT"; connector.Dispatcher). Offered must not
// block: it is called on the request path, after the change committed.
// A hint carries no authority; the poll decides.
type Notifier interface {
	// Offered says that c (as written) now offers its update to the
	// pending devices of waves from to to, inclusive.
	Offered(c store.Campaign, from, to int)
}

// offered tells the notifier, if any, of waves from to to of c.
func (s *Service) offered(c store.Campaign, from, to int) {
	if s.cfg.Notifier == nil || c.State != store.CampaignRunning || from > to {
		return
	}
	s.cfg.Notifier.Offered(c, from, to)
}

// offeredByDecision tells the notifier of the waves a device's report
// opened: after the decision seen, c's current wave moved forward.
func (s *Service) offeredByDecision(seen decided, c store.Campaign) {
	if c.CurrentWave > seen.wave {
		s.offered(c, seen.wave+1, c.CurrentWave)
	}
}

// offeredByTransition tells the notifier of a resumed campaign's open
// waves: devices that polled while it was paused were offered nothing.
func (s *Service) offeredByTransition(seen decided, c store.Campaign) {
	if seen.before == store.CampaignPaused && c.State == store.CampaignRunning {
		s.offered(c, 0, c.CurrentWave)
	}
}
