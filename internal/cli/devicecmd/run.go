package devicecmd

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/hallmark-iot/hallmark/internal/cli/cmdline"
	"github.com/hallmark-iot/hallmark/internal/httpapi"
	"github.com/hallmark-iot/hallmark/internal/onboarding"
	"github.com/hallmark-iot/hallmark/internal/onboarding/onboardpki"
)

// "hallmark device run": the device's own renewal loop (docs/lifecycle.md,
// "Renewal and supersession"). The platform says in every credentials
// answer when the device should renew (renew_after, the start of its
// product's renewal window); the device checks, renews once that time has
// come and keeps the new certificate, then waits for the next check.

// DefaultRunInterval is how often `device run` checks by default.
const DefaultRunInterval = time.Hour

func newDeviceRunCmd(s *cmdline.Streams) *cobra.Command {
	var statePath, notify, broker, brokerCA, topicPrefix string
	var interval time.Duration
	var once, noUpdate bool
	var pf cmdline.PlatformFlags
	cmd := &cobra.Command{
		Use:   "run --state STATE --server URL --ca-file ROOT.pem [--interval 1h] [--once] [--no-update] [--notify auto|on|off]",
		Short: "Keep the device's certificate renewed and its firmware updated, on its own",
		Long: `Run the device's renewal loop: fetch the credentials over mutual TLS, and once
the time the platform gives in them (renew_after: the start of the product's
renewal window) has come, renew with a new request bound to the connection and
store the new certificate; then wait until the next check, at most --interval
and no later than the renewal is due. --once checks (and renews if due) once
and exits. A refusal stops the loop with an error, except renewal-not-due
(the device's clock ahead of the platform's), which waits as the platform
says.

Each cycle also runs the update agent (see device update --server): it polls
for an assignment and applies it; the next cycle comes no later than the
platform's Retry-After asks. An update's failure is reported to the platform
and printed, and does not stop the loop. --no-update turns the agent off.

--notify (auto by default: on when the credentials' cloud endpoint is an
mqtts:// broker, and the agent is on) also keeps an MQTT connection to the
broker with the device's certificate, subscribed to the device's own update
topic (PREFIX<identity>/update). An update hint there makes the loop poll at
once instead of at the end of its wait. The hint carries no authority: the
poll over mutual TLS decides, and the ROM verifies the image. A broker that
cannot be reached is reported once and polling goes on.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if interval <= 0 {
				return cmdline.Usagef("--interval must be positive")
			}
			events, stop, err := startHints(cmd.Context(), s, statePath, notify, broker, brokerCA, topicPrefix, interval, once || noUpdate)
			if err != nil {
				return err
			}
			defer stop()
			for {
				next, err := renewIfDue(cmd.Context(), s, statePath, pf)
				if err != nil {
					return err
				}
				var retry time.Duration
				if !noUpdate {
					retry = updateCycle(cmd.Context(), s, statePath, pf)
				}
				if once {
					return nil
				}
				wait := cycleWait(next, retry, time.Now(), interval)
				if !waitOrHint(cmd.Context(), s, wait, events) {
					return nil
				}
			}
		},
	}
	bindState(cmd, &statePath)
	pf.Bind(cmd)
	cmd.Flags().DurationVar(&interval, "interval", DefaultRunInterval, "longest wait between two checks")
	cmd.Flags().BoolVar(&once, "once", false, "check once, renew if due, poll for an update once, and exit")
	cmd.Flags().BoolVar(&noUpdate, "no-update", false, "do not poll for firmware updates")
	cmd.Flags().StringVar(&notify, "notify", notifyAuto, "listen for update hints on the broker: auto (when the credentials name an mqtts:// broker), on or off")
	cmd.Flags().StringVar(&broker, "broker", "", "broker `URL` for update hints (default: the credentials' cloud endpoint)")
	cmd.Flags().StringVar(&brokerCA, "broker-ca-file", "", "PEM `FILE` of roots that verify the broker (default: the device's trust bundle)")
	cmd.Flags().StringVar(&topicPrefix, "topic-prefix", "devices/", "root of the device's topic tree")
	return cmd
}

// nextCheck is how long to wait before checking again: until due, but
// at most interval, and at least a second.
func nextCheck(due, now time.Time, interval time.Duration) time.Duration {
	return max(min(due.Sub(now), interval), time.Second)
}

// cycleWait is the wait before the next cycle: the renewal's
// (nextCheck), shortened to the update poll's (pollWait) when the
// platform gave a Retry-After.
func cycleWait(due time.Time, retryAfter time.Duration, now time.Time, interval time.Duration) time.Duration {
	wait := nextCheck(due, now, interval)
	if retryAfter > 0 {
		wait = min(wait, pollWait(retryAfter, interval))
	}
	return wait
}

// updateCycle runs one step of the update agent and returns the
// platform's Retry-After. Its errors are printed, not returned: a
// platform that cannot be reached now, or a failed update (reported),
// must not stop the renewals.
func updateCycle(ctx context.Context, s *cmdline.Streams, statePath string, pf cmdline.PlatformFlags) time.Duration {
	res, err := updateStep(ctx, s, statePath, pf)
	if err == nil {
		err = outcomeError(res.Outcome)
	}
	if err != nil {
		fmt.Fprintf(s.Err, "update: %v\n", err)
	}
	return res.RetryAfter
}

// renewIfDue runs one check with the device's current certificate and
// returns when the next renewal is due.
func renewIfDue(ctx context.Context, s *cmdline.Streams, statePath string, pf cmdline.PlatformFlags) (time.Time, error) {
	dev, held, cert, err := onboardedDevice(statePath, "run")
	if err != nil {
		return time.Time{}, err
	}
	httpc, err := pf.HTTPClient(s, cert)
	if err != nil {
		return time.Time{}, err
	}
	client, err := httpapi.NewOnboardingClient(pf.Server, httpc, onboardpki.CSRs{})
	if err != nil {
		return time.Time{}, err
	}
	id, err := dev.Identity()
	if err != nil {
		return time.Time{}, err
	}
	creds, renewed, err := client.RenewIfDue(ctx, id, cert.PrivateKey.(crypto.Signer), time.Now())
	if wait, ok := onboarding.RetryAfter(err); ok && errors.Is(err, onboarding.ErrRenewalNotDue) {
		fmt.Fprintf(s.Out, "renewal refused as not due yet (clocks apart?); retrying in %s\n", wait)
		return time.Now().Add(wait), nil
	}
	if err != nil {
		return time.Time{}, err
	}
	due, err := onboarding.RenewalDue(creds)
	if err != nil {
		return time.Time{}, err
	}
	if !renewed {
		_, err = fmt.Fprintf(s.Out, "certificate valid until %s; renewal due at %s\n",
			creds.NotAfter.UTC().Format(time.RFC3339), due.UTC().Format(time.RFC3339))
		return due, err
	}
	if err := keepCredentials(s, dev, statePath, creds, held.OperationalAlg); err != nil {
		return time.Time{}, err
	}
	_, err = fmt.Fprintf(s.Out, "renewed; next renewal due at %s\n", due.UTC().Format(time.RFC3339))
	return due, err
}
