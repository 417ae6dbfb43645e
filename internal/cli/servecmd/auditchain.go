package servecmd

import (
	"time"

	"github.com/spf13/pflag"

	"github.com/hallmark-iot/hallmark/internal/app"
	"github.com/hallmark-iot/hallmark/internal/cli/cmdline"
)

// auditChainFlags set how often serve signs a checkpoint of the audit
// chain (docs/evidence.md).
type auditChainFlags struct {
	every    int64
	interval time.Duration
}

// auditChainHelp is serve's help on these flags.
const auditChainHelp = `

Audit chain: serve links every audit event into a hash chain and signs a
checkpoint of its head with the audit key (in the CA's key manager) every
--audit-checkpoint-interval while events arrive, every
--audit-checkpoint-every events, and at shutdown. An event is tamper-evident
once a checkpoint covers it. GET /v1/audit/key publishes the public key for
hallmark audit verify. See docs/evidence.md.`

func (a *auditChainFlags) register(f *pflag.FlagSet) {
	f.DurationVar(&a.interval, "audit-checkpoint-interval", 0,
		"longest `DURATION` between audit checkpoints while events arrive (default 10s; 1s to 1h)")
	f.Int64Var(&a.every, "audit-checkpoint-every", 0,
		"sign an audit checkpoint at least every `N` events (default 10000; 1 to 10000000)")
}

// apply checks the flags into cfg.
func (a *auditChainFlags) apply(cfg *app.Config) error {
	if a.interval != 0 && (a.interval < time.Second || a.interval > time.Hour) {
		return cmdline.Usagef("--audit-checkpoint-interval %s: want 1s to 1h", a.interval)
	}
	if a.every != 0 && (a.every < 1 || a.every > 10_000_000) {
		return cmdline.Usagef("--audit-checkpoint-every %d: want 1 to 10000000", a.every)
	}
	cfg.AuditCheckpointInterval, cfg.AuditCheckpointEvery = a.interval, a.every
	return nil
}
