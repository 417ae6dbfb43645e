package devicecmd

import (
	"context"
	"crypto/tls"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/hallmark-iot/hallmark/internal/cli/cmdline"
	"github.com/hallmark-iot/hallmark/internal/device"
	"github.com/hallmark-iot/hallmark/internal/firmware"
	"github.com/hallmark-iot/hallmark/internal/httpapi"
	"github.com/hallmark-iot/hallmark/internal/onboarding/onboardpki"
	"github.com/hallmark-iot/hallmark/internal/ota"
)

// newDeviceUpdateCmd drives A/B updates: with --image, one local update
// (boot, install into the inactive slot, reset, confirm); with --server,
// the update agent (internal/ota) polling the platform, downloading with
// resume and reporting each step.
func newDeviceUpdateCmd(s *cmdline.Streams) *cobra.Command {
	var statePath, imagePath string
	var noConfirm, once bool
	var interval time.Duration
	var pf cmdline.PlatformFlags
	cmd := &cobra.Command{
		Use:   "update --state STATE (--image IMAGE [--no-confirm] | --server URL --ca-file ROOT.pem [--once])",
		Short: "Install a firmware update into the inactive slot, reboot into it and confirm it",
		Long: `With --image: boot the device, check the image with the ROM's rules and write
it into the inactive slot, reset, and confirm the new firmware if the ROM
started it. An image the ROM refuses is never written; one that does not boot
is rolled back to the previous slot. --no-confirm stops after the trial boot:
the next boot then rolls back.

With --server: run the device's update agent over mutual TLS with the device
certificate. It asks the platform for its assignment, downloads the image
beside the state file (STATE.download, resumed with a range request after an
interruption), checks its SHA-256, installs it by the ROM's rules, reboots and
confirms, or reports the rollback; each step is reported to the platform and
recorded in STATE.ota.json, so a killed process resumes where it stopped.
Without --once it polls until interrupted, as often as the platform's
Retry-After says (at most every --interval).

Refusals and rollbacks exit 1 with a stable reason code (docs/ota.md).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case imagePath != "" && (pf.Server != "" || once):
				return cmdline.Usagef("--image (a local update) and --server/--once (the update agent) cannot be combined")
			case imagePath == "" && pf.Server == "":
				return cmdline.Usagef("give --image FILE for a local update or --server URL for the update agent")
			case pf.Server != "" && noConfirm:
				return cmdline.Usagef("--no-confirm applies to --image only: the agent always confirms an image that boots")
			case pf.Server != "":
				return runAgent(cmd.Context(), s, statePath, pf, once, interval)
			}
			dev, err := loadDevice(statePath)
			if err != nil {
				return err
			}
			img, err := s.ReadInput(imagePath, firmware.MaxImageSize, "image")
			if err != nil {
				return err
			}
			if err := dev.Boot(); err != nil {
				return withReason(err)
			}
			if err := dev.InstallUpdate(img); err != nil {
				return withReason(err)
			}
			st := dev.LastUpdate()
			fmt.Fprintf(s.Out, "installed: %s (security counter %d) in slot %s\n", st.Version, st.SecurityCounter, st.Slot)
			if err := dev.Boot(); err != nil { // the reset; falls back on its own
				dev.Save(statePath)
				return withReason(err)
			}
			if st = dev.LastUpdate(); st.Outcome == device.UpdateRolledBack {
				if err := dev.Save(statePath); err != nil {
					return err
				}
				return fmt.Errorf("update rolled back to the previous slot [reason %s]: %s", st.Reason, st.Detail)
			}
			fmt.Fprintf(s.Out, "booted: slot %s on trial\n", st.Slot)
			if !noConfirm {
				if err := dev.ConfirmUpdate(); err != nil {
					return err
				}
				fmt.Fprintf(s.Out, "confirmed: slot %s active; anti-rollback counter %d; retired root slots: %s\n",
					st.Slot, dev.SecurityCounter(), dev.RetiredRootSlots())
			}
			return dev.Save(statePath)
		},
	}
	bindState(cmd, &statePath)
	pf.Bind(cmd)
	cmd.Flags().StringVar(&imagePath, "image", "", "firmware image `FILE` (local update)")
	cmd.Flags().BoolVar(&noConfirm, "no-confirm", false, "with --image: stop after the trial boot, without confirming")
	cmd.Flags().BoolVar(&once, "once", false, "with --server: poll once, apply any assignment, and exit")
	cmd.Flags().DurationVar(&interval, "interval", DefaultUpdateInterval, "with --server: longest wait between two polls")
	return cmd
}

// DefaultUpdateInterval is the longest wait between two polls when the
// platform gives no Retry-After.
const DefaultUpdateInterval = 10 * time.Minute

// runAgent polls and applies until ctx ends, or once.
func runAgent(ctx context.Context, s *cmdline.Streams, statePath string, pf cmdline.PlatformFlags, once bool, interval time.Duration) error {
	if interval <= 0 {
		return cmdline.Usagef("--interval must be positive")
	}
	for {
		res, err := updateStep(ctx, s, statePath, pf)
		if err != nil {
			return err
		}
		if err := outcomeError(res.Outcome); err != nil || once {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(pollWait(res.RetryAfter, interval)):
		}
	}
}

// pollWait is how long to wait before the next poll: as long as the
// platform asked, but at most interval, and at least a second.
func pollWait(retryAfter, interval time.Duration) time.Duration {
	if retryAfter <= 0 {
		return interval
	}
	return max(min(retryAfter, interval), time.Second)
}

// updateStep loads and boots the onboarded device and runs one step of
// its update agent over mutual TLS with its certificate.
func updateStep(ctx context.Context, s *cmdline.Streams, statePath string, pf cmdline.PlatformFlags) (ota.Result, error) {
	dev, _, cert, err := onboardedDevice(statePath, "update")
	if err != nil {
		return ota.Result{}, err
	}
	tr, err := otaTransport(s, pf, cert)
	if err != nil {
		return ota.Result{}, err
	}
	// Onboarding, without a client certificate, recovers a migration
	// the platform committed but this device did not save.
	onboardHTTP, err := pf.HTTPClient(s, nil)
	if err != nil {
		return ota.Result{}, err
	}
	onboarder, err := httpapi.NewOnboardingClient(pf.Server, onboardHTTP, onboardpki.CSRs{})
	if err != nil {
		return ota.Result{}, err
	}
	agent := &ota.Agent{Device: dev, StatePath: statePath, Transport: tr, Migrator: tr, CSRs: onboardpki.CSRs{}, Onboarding: onboarder, Out: s.Out,
		Reconnect: func(d *device.Device) (ota.Transport, error) {
			held := d.Credentials()
			key, err := d.OperationalKey(held.OperationalAlg)
			if err != nil {
				return nil, err
			}
			cert, err := tlsCertificate(held.CertificateChain, key)
			if err != nil {
				return nil, err
			}
			return otaTransport(s, pf, cert)
		}}
	res, err := agent.Step(ctx)
	if err == nil && res.Assignment == nil {
		fmt.Fprintf(s.Out, "no update assigned\n")
	}
	return res, err
}

func otaTransport(s *cmdline.Streams, pf cmdline.PlatformFlags, cert *tls.Certificate) (*httpapi.OTATransport, error) {
	httpc, err := pf.HTTPClient(s, cert)
	if err != nil {
		return nil, err
	}
	return httpapi.NewOTATransport(pf.Server, httpc)
}

// outcomeError is the exit of an update that failed or rolled back.
func outcomeError(r *ota.Report) error {
	if r == nil || (r.State != ota.StateFailed && r.State != ota.StateRolledBack) {
		return nil
	}
	return fmt.Errorf("update %s, firmware %s runs [reason %s]", r.State, r.FirmwareVersion, r.Reason)
}

func withReason(err error) error {
	return fmt.Errorf("%w [reason %s]", err, device.ReasonCode(err))
}
