package admincmd

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hallmark-iot/hallmark/internal/campaign"
	"github.com/hallmark-iot/hallmark/internal/cli/cmdline"
	"github.com/hallmark-iot/hallmark/internal/httpapi"
)

// Update campaigns (docs/ota.md, "Campaigns").

func newAdminCampaignCmd(s *cmdline.Streams, f *adminFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "campaign", Short: "Roll firmware out to devices in waves: create, follow, pause, resume, cancel"}
	cmd.AddCommand(newCampaignCreateCmd(s, f), newCampaignListCmd(s, f), newCampaignStatusCmd(s, f), newCampaignDevicesCmd(s, f))
	for _, a := range []struct{ verb, short string }{
		{"pause", "Pause a running campaign: no new offers; devices under way may finish"},
		{"resume", "Resume a paused campaign"},
		{"cancel", "Cancel a campaign for good; open assignments are withdrawn"},
	} {
		cmd.AddCommand(newCampaignActionCmd(s, f, a.verb, a.short))
	}
	return cmd
}

// createCampaign reads the device list, if any, and creates the campaign.
func createCampaign(ctx context.Context, s *cmdline.Streams, c *httpapi.Client, req httpapi.CampaignRequest, devicesFile string, asJSON bool) error {
	if req.Product == "" || req.Image == "" {
		return cmdline.Usagef("--product and --image are required")
	}
	if devicesFile != "" {
		data, err := s.ReadInput(devicesFile, maxDeviceList, "device list")
		if err != nil {
			return err
		}
		ids, err := campaign.ParseDeviceList(data)
		if err != nil {
			return cmdline.Usage(err)
		}
		if len(ids) == 0 {
			return cmdline.Usagef("%s lists no device", devicesFile)
		}
		for _, id := range ids {
			req.Devices = append(req.Devices, id.String())
		}
	}
	out, err := c.CreateCampaign(ctx, req)
	if err != nil {
		return err
	}
	if asJSON {
		return s.PrintJSON(out)
	}
	fmt.Fprintf(s.Out, "created campaign %s: %d devices in %d waves\n", out.ID, out.DeviceCount, len(out.Waves))
	if out.Unmatched > 0 || out.Busy > 0 {
		fmt.Fprintf(s.Err, "left out: %d listed devices that do not match, %d in another open campaign\n", out.Unmatched, out.Busy)
	}
	return nil
}

// maxDeviceList bounds a --devices file: campaign.MaxDevices lines of 64
// hex characters and a line end, with room for comments.
const maxDeviceList = 8 << 20

func newCampaignCreateCmd(s *cmdline.Streams, f *adminFlags) *cobra.Command {
	var req httpapi.CampaignRequest
	var devicesFile string
	var haltAt float64
	var asJSON bool
	var cmd *cobra.Command
	cmd = &cobra.Command{
		Use: "create --product P --image DIGEST [--batch B] [--firmware-below V] [--algorithm A] [--devices FILE] " +
			"[--waves 10,25%,100%] [--halt-at 0.2] [--halt-min N] [--migrate-to ml-dsa-65] [--json]",
		Short: "Create a campaign; it starts running",
		Long: `Creates an update campaign of the image DIGEST (its SHA-256, in the firmware
repository for the product) for the onboarded devices of the product that match
every criterion given. --devices reads identities from FILE, one per line (#
starts a comment; - is standard input). The target is resolved now, once.

--waves are cumulative counts or percentages of the target: 10,25%,100% offers
the update to 10 devices, then to a quarter of them, then to all; the next wave
opens when every device of the current one has finished. --halt-at is the
failure rate of a wave (failed and rolled back over finished) above which the
campaign halts by itself, once --halt-min of its devices have finished.`,
		Args: cobra.NoArgs,
		RunE: adminRun(s, f, func(ctx context.Context, c *httpapi.Client, _ []string) error {
			if cmd.Flags().Changed("halt-at") {
				req.HaltAt = &haltAt
			}
			return createCampaign(ctx, s, c, req, devicesFile, asJSON)
		}),
	}
	fl := cmd.Flags()
	fl.StringVar(&req.Product, "product", "", "the product `ID` whose devices are targeted (required)")
	fl.StringVar(&req.Image, "image", "", "the image's SHA-256, 64 hex `DIGEST` (required)")
	fl.StringVar(&req.Batch, "batch", "", "only devices of `BATCH`")
	fl.StringVar(&req.FirmwareBelow, "firmware-below", "", "only devices reporting a firmware version below `V`")
	fl.StringVar(&req.Algorithm, "algorithm", "", "only devices enrolled with suite `A`")
	fl.StringVar(&devicesFile, "devices", "", "only the identities listed in `FILE`")
	fl.StringVar(&req.Waves, "waves", "", "cumulative `WAVES`, counts or percentages (default 100%)")
	fl.Float64Var(&haltAt, "halt-at", campaign.DefaultHaltThreshold, "halt when a wave's failure `RATE` passes this, 0 to 1")
	fl.IntVar(&req.HaltMinFinished, "halt-min", 0, "finished devices a wave needs before the halt rule applies (default 5)")
	fl.StringVar(&req.MigrateTo, "migrate-to", "", "make a migration campaign to suite `ALG`, e.g. ml-dsa-65")
	fl.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newCampaignListCmd(s *cmdline.Streams, f *adminFlags) *cobra.Command {
	var state, product string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list [--state S] [--product P] [--json]",
		Short: "List campaigns, newest first",
		Args:  cobra.NoArgs,
		RunE: adminRun(s, f, func(ctx context.Context, c *httpapi.Client, _ []string) error {
			list, err := c.ListCampaigns(ctx, state, product)
			if err != nil {
				return err
			}
			if asJSON {
				return s.PrintJSON(httpapi.CampaignList{Campaigns: list})
			}
			var rows [][]string
			for _, cp := range list {
				rows = append(rows, []string{cp.ID, cmdline.Safe(cp.Product), cmdline.Safe(cp.State),
					fmt.Sprintf("%d/%d", cp.CurrentWave, len(cp.Waves)), strconv.Itoa(cp.DeviceCount),
					cmdline.Safe(cp.Image.Version), formatTime(cp.CreatedAt)})
			}
			return s.Table("ID\tPRODUCT\tSTATE\tWAVE\tDEVICES\tVERSION\tCREATED", rows)
		}),
	}
	cmd.Flags().StringVar(&state, "state", "", "only campaigns in `STATE`: running, paused, halted, cancelled, completed")
	cmd.Flags().StringVar(&product, "product", "", "only campaigns of product `ID`")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newCampaignStatusCmd(s *cmdline.Streams, f *adminFlags) *cobra.Command {
	var asJSON, watch bool
	var every time.Duration
	cmd := &cobra.Command{
		Use:   "status ID [--watch [--every D]] [--json]",
		Short: "Show a campaign's state and progress, overall and per wave",
		Long: `Shows a campaign's state, the reason of its last change, and its devices by
state, overall and per wave. With --watch it shows them again every --every
until the campaign ends (halted, cancelled or completed) or Ctrl-C.`,
		Args: cobra.ExactArgs(1),
		RunE: adminRun(s, f, func(ctx context.Context, c *httpapi.Client, args []string) error {
			if every <= 0 {
				return cmdline.Usagef("--every must be positive")
			}
			for {
				cp, err := c.GetCampaign(ctx, args[0])
				if err != nil {
					return err
				}
				if asJSON {
					err = s.PrintJSON(cp)
				} else {
					err = printCampaign(s.Out, cp)
				}
				if err != nil || !watch || cp.State != "running" && cp.State != "paused" {
					return err
				}
				select {
				case <-ctx.Done():
					return nil // interrupted: the way --watch ends
				case <-time.After(every):
				}
			}
		}),
	}
	cmd.Flags().BoolVar(&watch, "watch", false, "show it again until the campaign ends")
	cmd.Flags().DurationVar(&every, "every", 5*time.Second, "with --watch, every `DURATION`")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// printCampaign writes a campaign's status, escaped.
func printCampaign(w io.Writer, c httpapi.Campaign) error {
	var b strings.Builder
	fmt.Fprintf(&b, "campaign %s  %s  wave %d of %d  %d devices\n", c.ID, cmdline.Safe(c.State), c.CurrentWave, len(c.Waves), c.DeviceCount)
	fmt.Fprintf(&b, "image %s (%s)  target %s  waves %s  halt at %g after %d\n", c.Image.Digest, cmdline.Safe(c.Image.Version),
		cmdline.Safe(c.Target), cmdline.Safe(c.WaveSpec), c.HaltAt, c.HaltMinFinished)
	if c.MigrateTo != "" {
		fmt.Fprintf(&b, "migrates to %s\n", cmdline.Safe(c.MigrateTo))
	}
	if c.Reason != "" {
		fmt.Fprintf(&b, "reason: %s\n", cmdline.Safe(c.Reason))
	}
	fmt.Fprintf(&b, "all: %s\n", countsLine(c.Counts))
	for _, wv := range c.Waves {
		open := ""
		if wv.Open {
			open = " open"
		}
		fmt.Fprintf(&b, "wave %d: %d devices, %d finished, %d failed%s: %s\n", wv.Wave, wv.Size, wv.Finished, wv.Failed, open, countsLine(wv.Counts))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func countsLine(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", cmdline.Safe(k), m[k]))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

func newCampaignDevicesCmd(s *cmdline.Streams, f *adminFlags) *cobra.Command {
	var state, after string
	var limit int
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "devices ID [--state S] [--after IDENTITY] [--limit N] [--json]",
		Short: "List a campaign's devices in identity order, one page",
		Args:  cobra.ExactArgs(1),
		RunE: adminRun(s, f, func(ctx context.Context, c *httpapi.Client, args []string) error {
			page, err := c.ListCampaignDevices(ctx, args[0], state, after, limit)
			if err != nil {
				return err
			}
			if asJSON {
				return s.PrintJSON(page)
			}
			var rows [][]string
			for _, d := range page.Devices {
				reason := d.Reason
				if reason == "" {
					reason = "-"
				}
				rows = append(rows, []string{d.Identity, strconv.Itoa(d.Wave), cmdline.Safe(d.State), cmdline.Safe(reason),
					cmdline.Safe(d.FirmwareVersion), formatTime(d.UpdatedAt)})
			}
			if err := s.Table("IDENTITY\tWAVE\tSTATE\tREASON\tFIRMWARE\tUPDATED", rows); err != nil {
				return err
			}
			if page.Next != "" {
				fmt.Fprintf(s.Err, "more devices: --after %s\n", cmdline.Safe(page.Next))
			}
			return nil
		}),
	}
	cmd.Flags().StringVar(&state, "state", "", "only devices in `STATE`, e.g. failed")
	cmd.Flags().StringVar(&after, "after", "", "start after `IDENTITY` (the previous page's last)")
	cmd.Flags().IntVar(&limit, "limit", 0, "page size, 1 to 1000 (default 100)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newCampaignActionCmd(s *cmdline.Streams, f *adminFlags, verb, short string) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   verb + " ID --reason TEXT",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: adminRun(s, f, func(ctx context.Context, c *httpapi.Client, args []string) error {
			if reason == "" {
				return cmdline.Usagef("--reason is required")
			}
			cp, err := c.CampaignAction(ctx, args[0], verb, reason)
			if err != nil {
				return err
			}
			fmt.Fprintf(s.Out, "campaign %s: %s\n", cp.ID, cmdline.Safe(cp.State))
			return nil
		}),
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the audit log (required)")
	return cmd
}
