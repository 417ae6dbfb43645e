package servecmd

import (
	"time"

	"github.com/spf13/pflag"

	"github.com/hallmark-iot/hallmark/internal/app"
	"github.com/hallmark-iot/hallmark/internal/audit"
	"github.com/hallmark-iot/hallmark/internal/cli/cmdline"
	"github.com/hallmark-iot/hallmark/internal/httpapi"
)

// defenceFlags are serve's flags for what bounds anonymous clients of the
// admin API and the audit log: the back-off on failed admin
// authentication and the summaries of refused requests.
type defenceFlags struct {
	auth              httpapi.AuthLimit
	refusalInterval   time.Duration
	refusalMaxSources int
}

func (d *defenceFlags) register(f *pflag.FlagSet) {
	f.IntVar(&d.auth.Failures, "admin-auth-failures", httpapi.DefaultAuthFailures,
		"failed admin authentications per --admin-auth-window from one address before it is locked out (-1 disables)")
	f.DurationVar(&d.auth.Window, "admin-auth-window", httpapi.DefaultAuthWindow, "window of --admin-auth-failures")
	f.DurationVar(&d.auth.Lockout, "admin-lockout", httpapi.DefaultAuthLockout,
		"first lock-out of an address; each failure after one doubles it")
	f.DurationVar(&d.auth.MaxLockout, "admin-lockout-max", httpapi.DefaultMaxAuthLockout, "longest lock-out")
	f.DurationVar(&d.refusalInterval, "refusal-interval", audit.DefaultInterval,
		"how often refused anonymous requests are summarised in the audit log")
	f.IntVar(&d.refusalMaxSources, "refusal-max-sources", audit.DefaultMaxSources,
		"(address, action, reason) keys tallied per interval; more are summarised as other sources")
}

// apply checks the flags (the command line's, or the environment's:
// cmdline.ApplyEnv) into cfg.
func (d *defenceFlags) apply(cfg *app.Config) error {
	switch {
	case d.auth.Window <= 0 || d.auth.Lockout <= 0 || d.auth.MaxLockout <= 0:
		return cmdline.Usagef("--admin-auth-window, --admin-lockout and --admin-lockout-max must be positive")
	case d.auth.Failures == 0:
		return cmdline.Usagef("--admin-auth-failures must be positive, or -1 to disable the lock-out")
	case d.refusalInterval < time.Second || d.refusalMaxSources < 1:
		return cmdline.Usagef("--refusal-interval must be at least 1s and --refusal-max-sources at least 1")
	}
	cfg.AdminAuthLimit = d.auth
	cfg.RefusalInterval, cfg.RefusalMaxSources = d.refusalInterval, d.refusalMaxSources
	return nil
}
