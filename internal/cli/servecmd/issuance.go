package servecmd

import (
	"time"

	"github.com/spf13/pflag"

	"github.com/hallmark-iot/hallmark/internal/app"
	"github.com/hallmark-iot/hallmark/internal/cli/cmdline"
	"github.com/hallmark-iot/hallmark/internal/onboarding"
)

// issuanceFlags are serve's certificate issuance policy (issue 10,
// docs/protocol.md): the binding of certificate requests, the renewal
// limit and the grace of a replaced certificate.
type issuanceFlags struct {
	csrBinding      string
	renewLimit      int
	renewWindow     time.Duration
	supersededGrace time.Duration
}

func (i *issuanceFlags) register(f *pflag.FlagSet) {
	f.StringVar(&i.csrBinding, "csr-binding", "required",
		"certificate requests bound to their exchange: required, or optional for devices of protocol version 1")
	f.IntVar(&i.renewLimit, "renew-limit", onboarding.DefaultRenewLimit,
		"certificates a device may hold issued within --renew-window for a renewal to succeed (-1 disables)")
	f.DurationVar(&i.renewWindow, "renew-window", onboarding.DefaultRenewWindow, "window of --renew-limit")
	f.DurationVar(&i.supersededGrace, "superseded-grace", onboarding.DefaultSupersededGrace,
		"how long a replaced certificate keeps working on the device routes (0 for none)")
}

// apply checks the flags (the command line's, or the environment's:
// cmdline.ApplyEnv) into cfg.
func (i *issuanceFlags) apply(cfg *app.Config) error {
	policy := onboarding.IssuancePolicy{RenewLimit: i.renewLimit, RenewWindow: i.renewWindow, SupersededGrace: i.supersededGrace}
	switch i.csrBinding {
	case "required":
	case "optional":
		policy.AllowUnboundCSR = true
	default:
		return cmdline.Usagef("--csr-binding %q: want required or optional", i.csrBinding)
	}
	switch {
	case i.renewLimit == 0:
		return cmdline.Usagef("--renew-limit must be positive, or -1 to disable the limit")
	case i.renewWindow <= 0:
		return cmdline.Usagef("--renew-window must be positive")
	case i.supersededGrace < 0:
		return cmdline.Usagef("--superseded-grace must not be negative")
	case i.supersededGrace == 0:
		policy.SupersededGrace = -1 // none: the policy's zero is its default
	}
	cfg.Issuance = policy
	return nil
}
