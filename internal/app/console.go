package app

import (
	"github.com/hallmark-iot/hallmark/internal/admin"
	"github.com/hallmark-iot/hallmark/internal/console"
	"github.com/hallmark-iot/hallmark/internal/httpapi"
)

// startConsole serves the operators' web console under console.Prefix,
// beside the API on the same port, inside the API server's middleware
// (request IDs, access log, metrics, panic recovery) but outside its
// route table and OpenAPI document (docs/console.md).
func (p *Platform) startConsole(api *httpapi.Server, svc *admin.Service) error {
	var cfg admin.ConsoleConfig // zero fields: admin's defaults
	if p.monitor != nil {
		// Expiring soon is the longest threshold of the expiry events; silent
		// is the heartbeat interval, when one is set.
		for _, d := range p.monitor.ExpiryThresholds() {
			cfg.ExpiringWithin = max(cfg.ExpiringWithin, d)
		}
		if hb := p.monitor.Heartbeat(); hb > 0 && cfg.SilentAfter == 0 {
			cfg.SilentAfter = hb
		}
	}
	h, err := console.New(console.Config{Admin: svc, Console: admin.NewConsole(p.Store, svc.Tokens, cfg),
		Log: p.cfg.Log, MaxManifestBytes: p.cfg.MaxManifestBytes, AuthGuard: api.AuthGuard()})
	if err != nil {
		return err
	}
	return api.Mount(console.Prefix, h)
}
