package admincmd

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/hallmark-iot/hallmark/internal/cli/cmdline"
	"github.com/hallmark-iot/hallmark/internal/httpapi"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// parseIdentityArg reads an identity argument as a usage error if bad.
func parseIdentityArg(arg string) (identity.ID, error) {
	id, err := identity.Parse(arg)
	if err != nil {
		return id, cmdline.Usagef("%q is not a device identity (64 lowercase hex characters)", arg)
	}
	return id, nil
}
func newAdminDeviceCmd(s *cmdline.Streams, f *adminFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "device", Short: "List and show registered devices; suspend, resume, revoke, decommission, reprovision them"}
	cmd.AddCommand(newAdminDeviceListCmd(s, f), newAdminDeviceGetCmd(s, f), newAdminDeviceForceRenewalCmd(s, f))
	for _, t := range transitionCmds {
		cmd.AddCommand(newAdminDeviceTransitionCmd(s, f, t))
	}
	return cmd
}
func newAdminDeviceListCmd(s *cmdline.Streams, f *adminFlags) *cobra.Command {
	var q httpapi.DeviceQuery
	var asJSON, all bool
	cmd := &cobra.Command{
		Use:   "list [--state S] [--product ID] [--batch B] [--algorithm A] [--after IDENTITY] [--limit N] [--all] [--json]",
		Short: "List devices in identity order, one page (or --all)",
		Args:  cobra.NoArgs,
		RunE: adminRun(s, f, func(ctx context.Context, c *httpapi.Client, _ []string) error {
			var devices []httpapi.Device
			next := ""
			for {
				page, err := c.ListDevices(ctx, q)
				if err != nil {
					return err
				}
				devices = append(devices, page.Devices...)
				if page.Next == "" || !all {
					next = page.Next
					break
				}
				q.After = page.Next
			}
			if err := printDevices(s, devices, asJSON); err != nil {
				return err
			}
			// After the page, where a reader at its end looks for what
			// follows (on standard error, so a pipe gets the page alone).
			if next != "" {
				fmt.Fprintf(s.Err, "more devices: --after %s (or --all)\n", cmdline.Safe(next))
			}
			return nil
		}),
	}
	fl := cmd.Flags()
	fl.StringVar(&q.State, "state", "", "only devices in `STATE`: registered, onboarded, suspended, revoked, decommissioned")
	fl.StringVar(&q.Product, "product", "", "only devices of product `ID`")
	fl.StringVar(&q.Batch, "batch", "", "only devices of `BATCH`")
	fl.StringVar(&q.Algorithm, "algorithm", "", "only devices whose key is of suite `ALG`: "+strings.Join(sigalg.Names(), ", "))
	fl.StringVar(&q.After, "after", "", "start after `IDENTITY` (the previous page's last)")
	fl.IntVar(&q.Limit, "limit", 0, "page size, 1 to 1000 (default 100)")
	fl.BoolVar(&all, "all", false, "follow every page")
	fl.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
func printDevices(s *cmdline.Streams, devices []httpapi.Device, asJSON bool) error {
	if asJSON {
		return s.PrintJSON(httpapi.DeviceList{Devices: devices})
	}
	var rows [][]string
	for _, d := range devices {
		rows = append(rows, []string{d.Identity.String(), d.State, d.Cloud.State, d.Algorithm, d.Product, d.Batch, d.RootOfTrust})
	}
	return s.Table("IDENTITY\tSTATE\tCLOUD\tALGORITHM\tPRODUCT\tBATCH\tROOT OF TRUST", rows)
}

func newAdminDeviceGetCmd(s *cmdline.Streams, f *adminFlags) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "get IDENTITY [--json]",
		Short: "Show a device: state, product, batch, station, key, certificates, cloud registration",
		Args:  cobra.ExactArgs(1),
		RunE: adminRun(s, f, func(ctx context.Context, c *httpapi.Client, args []string) error {
			id, err := parseIdentityArg(args[0])
			if err != nil {
				return err
			}
			d, err := c.GetDevice(ctx, id)
			if err != nil || asJSON {
				return errOrJSON(s, err, d)
			}
			printDevice(s, d)
			return nil
		}),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// printDevice shows a device, a property a line, each value escaped
// (cmdline.Safe).
func printDevice(s *cmdline.Streams, d httpapi.Device) {
	tw := tabwriter.NewWriter(s.Out, 0, 4, 2, ' ', 0)
	line := func(key, value string) { fmt.Fprintf(tw, "%s:\t%s\n", key, cmdline.Safe(value)) }
	for _, kv := range [][2]string{
		{"identity", d.Identity.String()}, {"state", d.State}, {"algorithm", d.Algorithm},
		{"product", d.Product}, {"batch", d.Batch}, {"station", d.Station.String()},
		{"root of trust", d.RootOfTrust}, {"injection", d.Injection}, {"imported", formatTime(d.CreatedAt)},
		{"onboarded", formatOptionalTime(d.OnboardedAt)}, {"revoked", formatOptionalTime(d.RevokedAt)},
	} {
		line(kv[0], kv[1])
	}
	if d.RevokeReason != "" {
		line("revoke reason", d.RevokeReason)
	}
	if d.StateChangedAt != nil {
		line("state changed", formatTime(*d.StateChangedAt)+"  "+d.StateReason)
	}
	for _, c := range d.Certificates {
		status := "valid"
		if c.RevokedAt != nil {
			status = "revoked " + formatTime(*c.RevokedAt)
			if c.RevocationReason != "" {
				status += " (" + c.RevocationReason + ")"
			}
		}
		line("certificate", fmt.Sprintf("%s  %s .. %s  %s", c.Serial, formatTime(c.NotBefore), formatTime(c.NotAfter), status))
	}
	line("cloud", d.Cloud.State)
	if d.Cloud.LastError != "" {
		line("cloud error", d.Cloud.LastError)
	}
	for _, j := range d.Cloud.Jobs {
		text := fmt.Sprintf("%s %s: %s after %d attempts", j.Kind, j.Connector, j.State, j.Attempts)
		if j.State == "pending" && j.Attempts > 0 {
			text += ", next at " + formatTime(j.NextRunAt)
		}
		line(fmt.Sprintf("job %d", j.ID), text)
	}
	tw.Flush()
}

// transitionCmd is one lifecycle transition's command (docs/lifecycle.md).
type transitionCmd struct {
	name, done, short string
}

var transitionCmds = []transitionCmd{
	{"suspend", "suspended", "Suspend an onboarded device (quarantine): certificates on hold, refused, cloud access withdrawn"},
	{"resume", "resumed", "Resume a suspended device: certificates good again, cloud access restored"},
	{"revoke", "revoked", "Revoke a device and its certificates; it is refused from then on"},
	{"decommission", "decommissioned", "Decommission a device: certificates revoked; it may be reprovisioned later"},
	{"reprovision", "reprovisioned", "Reprovision a decommissioned device: registered again, it must onboard afresh"},
}

func newAdminDeviceTransitionCmd(s *cmdline.Streams, f *adminFlags, t transitionCmd) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   t.name + " IDENTITY --reason TEXT",
		Short: t.short,
		Args:  cobra.ExactArgs(1),
		RunE: adminRun(s, f, func(ctx context.Context, c *httpapi.Client, args []string) error {
			id, err := parseIdentityArg(args[0])
			if err != nil {
				return err
			}
			if reason == "" {
				return cmdline.Usagef("--reason is required")
			}
			d, err := c.TransitionDevice(ctx, id, t.name, reason)
			if err != nil {
				return err
			}
			fmt.Fprintf(s.Out, "%s device %s at %s: state %s\n", t.done, d.Identity, formatOptionalTime(d.StateChangedAt), cmdline.Safe(d.State))
			return nil
		}),
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the audit log (required)")
	return cmd
}
