package servecmd

import (
	"time"

	"github.com/spf13/pflag"

	"github.com/hallmark-iot/hallmark/internal/app"
	"github.com/hallmark-iot/hallmark/internal/cli/cmdline"
	"github.com/hallmark-iot/hallmark/internal/monitoring"
)

// monitoringFlags configure device monitoring: the expiry thresholds,
// the heartbeat interval and how often the sweeps run.
type monitoringFlags struct {
	expiryWarn         []string // durations; a string slice so the environment binds it like other lists
	heartbeat, sweepEv time.Duration
	clone              monitoring.CloneConfig
}

func (m *monitoringFlags) register(f *pflag.FlagSet) {
	f.StringSliceVar(&m.expiryWarn, "expiry-warn", []string{"720h", "168h"},
		"add a certificate.expiring event once per certificate when it expires within each `DURATION` (comma-separated)")
	f.DurationVar(&m.heartbeat, "heartbeat-interval", 0,
		"add a device.silent event for an onboarded device that reported once and then not for `DURATION`, unless its product sets its own (default: off)")
	f.DurationVar(&m.sweepEv, "monitor-every", 5*time.Minute, "run the expiry and silence sweeps every `DURATION`")
	f.IntVar(&m.clone.FailedProofs, "clone-failed-proofs", monitoring.DefaultFailedProofs,
		"add a device.clone_suspected event after `N` refused proofs of possession for one registered identity within --clone-window")
	f.DurationVar(&m.clone.FailedProofWindow, "clone-window", monitoring.DefaultFailedProofWindow,
		"the `DURATION` within which --clone-failed-proofs refused proofs are a sign of a clone")
	f.DurationVar(&m.clone.Every, "clone-every", monitoring.DefaultCloneEvery,
		"add at most one device.clone_suspected event per device per `DURATION`")
}

func (m *monitoringFlags) apply(cfg *app.Config) error {
	var thresholds []time.Duration
	for _, v := range m.expiryWarn {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Hour || d%time.Second != 0 {
			return cmdline.Usagef("--expiry-warn %q: a duration of at least 1h, in whole seconds (e.g. 720h,168h)", v)
		}
		thresholds = append(thresholds, d)
	}
	if m.heartbeat < 0 || m.sweepEv <= 0 {
		return cmdline.Usagef("--heartbeat-interval must not be negative, --monitor-every must be positive")
	}
	if m.clone.FailedProofs < 1 || m.clone.FailedProofs > 1000 || m.clone.FailedProofWindow <= 0 || m.clone.Every <= 0 {
		return cmdline.Usagef("--clone-failed-proofs must be 1 to 1000, --clone-window and --clone-every positive")
	}
	cfg.Monitoring = app.MonitoringConfig{ExpiryThresholds: thresholds, Heartbeat: m.heartbeat, SweepEvery: m.sweepEv, Clone: m.clone}
	return nil
}
