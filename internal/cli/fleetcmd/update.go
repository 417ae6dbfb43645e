package fleetcmd

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/hallmark-iot/hallmark/internal/cli/cmdline"
	"github.com/hallmark-iot/hallmark/internal/firmware"
	"github.com/hallmark-iot/hallmark/internal/fleet"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

type fleetUpdateFlags struct {
	fleetFlags
	pf          cmdline.PlatformFlags
	opSuite     string
	credentials string
	roots       []string
	baseImage   string
	concurrency int
	timeout     time.Duration
	scratch     string
	attempts    int
	asJSON      bool
}

func newFleetUpdateCmd(s *cmdline.Streams) *cobra.Command {
	var f fleetUpdateFlags
	cmd := &cobra.Command{
		Use:   "update --server URL --ca-file ROOT.pem --seed-file SEED --devices N --credentials FILE --firmware-root KEY [--firmware-root KEY...] --base-image FILE [--from I] [--concurrency C] [--json]",
		Short: "Take a fleet's onboarded devices through their update campaign concurrently and report updates/s and migrations/s",
		Long: `Each device of --from to --from+N-1 that fleet onboard --credentials-out kept a
certificate chain for becomes a simulated keygen chip trusting the
--firmware-root keys, running --base-image, holding the keys the seed derives
for it. C devices at a time then run the real update agent against the
platform over mutual TLS, each on its own connection: poll the assignment,
download the whole image, verify it with the ROM's rules, install it in the
inactive slot, boot, confirm and report booted; for a migration campaign,
migrate the enrolment key (continuity proof, new certificate) and report
migrated. The agent's files of a device in flight live in --scratch-dir
and are removed when it is done.

The report gives devices updated and migrated, updates/s and migrations/s,
failures by reason (failed:REASON, rolled-back:REASON, no-assignment, or a
transport error's kind), and the latency of each step: poll, download,
report-STATE, migrate-challenge, migrate, and the whole device. The exit
status is 1 if any device failed. See docs/fleet.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runFleetUpdate(ctx, s, &f)
		},
	}
	f.bind(cmd)
	f.pf.Bind(cmd)
	fl := cmd.Flags()
	fl.StringVar(&f.opSuite, "op-suite", string(sigalg.ECDSAP256), "operational key suite, as at onboarding")
	fl.StringVar(&f.credentials, "credentials", "", "the `FILE` fleet onboard --credentials-out wrote")
	fl.StringArrayVar(&f.roots, "firmware-root", nil, "a vendor root public key `FILE` burned into the chips' OTP; repeat in slot order")
	fl.StringVar(&f.baseImage, "base-image", "", "the signed image `FILE` the chips run before the update")
	fl.IntVarP(&f.concurrency, "concurrency", "c", 16, "devices updating at once")
	fl.DurationVar(&f.timeout, "timeout", 30*time.Second, "limit on each HTTP request")
	fl.StringVar(&f.scratch, "scratch-dir", "", "`DIR` for the agent files of devices in flight (default: the system's temporary directory; a tmpfs such as /dev/shm keeps fsyncs out of the figures)")
	fl.IntVar(&f.attempts, "attempts", 3, "agent steps a device gets before a transient error is its failure")
	fl.BoolVar(&f.asJSON, "json", false, "print the report as JSON")
	return cmd
}

func runFleetUpdate(ctx context.Context, s *cmdline.Streams, f *fleetUpdateFlags) error {
	switch {
	case f.pf.Server == "" || f.pf.CAFile == "":
		return cmdline.Usagef("--server URL and --ca-file FILE are required")
	case f.credentials == "" || f.baseImage == "" || len(f.roots) == 0:
		return cmdline.Usagef("--credentials FILE, --base-image FILE and at least one --firmware-root KEY are required")
	case len(f.roots) > firmware.MaxRootSlots:
		return cmdline.Usagef("at most %d --firmware-root keys (the OTP has %d root-key slots)", firmware.MaxRootSlots, firmware.MaxRootSlots)
	case f.concurrency < 1 || f.timeout <= 0 || f.attempts < 1:
		return cmdline.Usagef("--concurrency and --attempts must be at least 1 and --timeout positive")
	}
	fl, err := f.fleet(s, f.opSuite)
	if err != nil {
		return err
	}
	hashes, err := s.RootHashes(f.roots, nil)
	if err != nil {
		return err
	}
	base, err := s.ReadInput(f.baseImage, firmware.MaxImageSize, "base image")
	if err != nil {
		return err
	}
	chips, err := fleet.NewChipTemplate(fl, hashes, base)
	if err != nil {
		return err
	}
	pool, err := s.ReadTrustBundle(f.pf.CAFile, "CA certificate")
	if err != nil {
		return err
	}
	credFile, err := os.Open(f.credentials)
	if err != nil {
		return fmt.Errorf("read %s: %w", cmdline.DisplayPath(f.credentials), cmdline.PathError(err))
	}
	defer credFile.Close()
	creds, err := fleet.NewCredentialReader(credFile)
	if err != nil {
		return fmt.Errorf("read %s: %w", cmdline.DisplayPath(f.credentials), err)
	}
	cfg := fleet.UpdateConfig{Fleet: fl, First: f.from, Count: f.devices, Credentials: creds, Chips: chips,
		Server: f.pf.Server, Roots: pool, Timeout: f.timeout, Concurrency: f.concurrency, ScratchDir: f.scratch,
		Attempts: f.attempts, Progress: &fleet.Progress{}}
	stopBar := s.StartProgress(cmdline.Progress{
		Unit: "devices", Total: int64(f.devices), Keep: true, Always: f.progress,
		Read: func() (int64, int64) { return cfg.Progress.Done.Load(), cfg.Progress.Failed.Load() },
	})
	rep, err := fleet.Update(ctx, cfg)
	stopBar()
	if err != nil {
		return err
	}
	if f.asJSON {
		if err := s.PrintJSON(rep); err != nil {
			return err
		}
	} else if err := printUpdateReport(s.Out, rep); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("fleet update: interrupted after %d devices: %w", rep.Attempted, err)
	}
	if rep.Attempted < int64(rep.Requested) {
		return fmt.Errorf("fleet update: the credentials file holds %d of the %d devices asked for", rep.Attempted, rep.Requested)
	}
	if rep.Failed > 0 {
		return fmt.Errorf("fleet update: %d of %d devices failed", rep.Failed, rep.Attempted)
	}
	return nil
}

// stepOrder is the order a device goes through the steps.
var stepOrder = []string{fleet.StepPoll, "report-downloading", fleet.StepDownload, "report-installed", "report-booted",
	fleet.StepChallenge, fleet.StepMigrate, "report-migrated", "report-failed", "report-rolled-back", fleet.StepDevice}

func printUpdateReport(w io.Writer, rep *fleet.UpdateReport) error {
	fmt.Fprintf(w, "%d of %d devices: %d updated, %d migrated, %d failed (concurrency %d) in %.2f s: %.1f updates/s, %.1f migrations/s; %d image bytes downloaded\n",
		rep.Attempted, rep.Requested, rep.Updated, rep.Migrated, rep.Failed, rep.Concurrency, rep.Wall.Seconds(),
		rep.UpdatesPerSecond, rep.MigrationsPerSecond, rep.Bytes)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STEP\tCOUNT\tP50\tP95\tP99\tMAX")
	seen := map[string]bool{}
	names := append([]string{}, stepOrder...)
	for name := range rep.Steps {
		names = append(names, name)
	}
	for _, name := range names {
		l, ok := rep.Steps[name]
		if !ok || seen[name] {
			continue
		}
		seen[name] = true
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", name, l.Count, fmtLatency(l.P50), fmtLatency(l.P95), fmtLatency(l.P99), fmtLatency(l.Max))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if rep.Failed == 0 {
		_, err := fmt.Fprintln(w, "failures: none")
		return err
	}
	kinds := make([]string, 0, len(rep.Failures))
	for k := range rep.Failures {
		kinds = append(kinds, k)
	}
	sort.Slice(kinds, func(i, j int) bool {
		if rep.Failures[kinds[i]] != rep.Failures[kinds[j]] {
			return rep.Failures[kinds[i]] > rep.Failures[kinds[j]]
		}
		return kinds[i] < kinds[j]
	})
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FAILURE\tCOUNT\tFIRST DETAIL")
	for _, k := range kinds {
		fmt.Fprintf(tw, "%s\t%d\t%s\n", cmdline.Safe(k), rep.Failures[k], cmdline.Safe(cmdline.OneLine(rep.ErrorSamples[k])))
	}
	return tw.Flush()
}

// credentialsOut opens path for fleet onboard's credentials, refusing to
// replace a file, and returns the function that completes it.
func credentialsOut(path string, cfg *fleet.OnboardConfig) (func() error, error) {
	file, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("write %s: %w", cmdline.DisplayPath(path), cmdline.PathError(err))
	}
	w, err := fleet.NewCredentialWriter(file)
	if err != nil {
		file.Close()
		return nil, err
	}
	cfg.Credentials = w
	return func() error {
		err := w.Flush()
		if cerr := file.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("write %s: %w", cmdline.DisplayPath(path), cerr)
		}
		return err
	}, nil
}
