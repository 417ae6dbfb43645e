package admincmd

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/hallmark-iot/hallmark/internal/cli/cmdline"
	"github.com/hallmark-iot/hallmark/internal/httpapi"
)

// newAdminDeviceForceRenewalCmd is "hallmark admin device force-renewal":
// one renewal outside the product's renewal window (docs/lifecycle.md,
// "Renewal and supersession").
func newAdminDeviceForceRenewalCmd(s *cmdline.Streams, f *adminFlags) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "force-renewal IDENTITY --reason TEXT",
		Short: "Allow an onboarded device's next renewal outside its product's renewal window, once",
		Long: `Allow an onboarded device's next renewal outside its product's renewal window,
once: the device's next renewal uses the grant up (the renewal limit still
applies). Forcing again before it renews changes nothing more. Needs the
devices:suspend scope.`,
		Args: cobra.ExactArgs(1),
		RunE: adminRun(s, f, func(ctx context.Context, c *httpapi.Client, args []string) error {
			id, err := parseIdentityArg(args[0])
			if err != nil {
				return err
			}
			if reason == "" {
				return cmdline.Usagef("--reason is required")
			}
			g, err := c.ForceRenewal(ctx, id, reason)
			if err != nil {
				return err
			}
			fmt.Fprintf(s.Out, "device %s may renew once outside its renewal window (granted %s)\n", g.Identity, g.GrantedAt.UTC().Format(time.RFC3339))
			return nil
		}),
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the audit log (required)")
	return cmd
}
