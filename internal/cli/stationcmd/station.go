// Package stationcmd owns "hallmark station": running the provisioning
// station over a batch (station.go) and the station's signing key in its
// key store (key.go).
package stationcmd

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/hallmark-iot/hallmark/internal/cli/cmdline"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/station"
)

// New returns the station command group.
func New(s *cmdline.Streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "station",
		Short: "Run the provisioning station: enrol a batch of devices into a signed manifest",
	}
	cmd.AddCommand(newStationRunCmd(s), newStationKeyCmd(s))
	return cmd
}

type stationRunFlags struct {
	dir, ief, app, classKey, keystore, keyName, passFile, batch string
	roots, classes, algs                                        []string
	count, workers                                              int
	leaveOpen                                                   bool
	tpm                                                         string // tpm-class devices' TPM (tpm.go)
}

func newStationRunCmd(s *cmdline.Streams) *cobra.Command {
	var f stationRunFlags
	cmd := &cobra.Command{
		Use:   "run --dir DIR --count N --ief IEF --root ROOT.pub --keystore KS",
		Short: "Make, program, boot and enrol N devices; write DIR/manifest.jsonl",
		Long: `Make N simulated devices, burn the vendor root-key hash into their OTP,
program and boot the signed initial enrolment firmware, inject keys into
inject-class chips (sealed to the chip's transport key when it offers one),
verify each device's proof of possession over a fresh nonce, lock each chip
(debug port disabled, key store behind the flash access window, bootloader
taking only signed images), and write a manifest signed by the station key
that records each device's lock state.

--leave-open skips the locking, for development boards that must stay
debuggable: the manifest records them "open", and a product created with
--require-locked refuses them.

Devices cycle through every combination of --classes and --algs. The batch
directory holds the plan, a journal and one state file per device: run the
same command again after a crash or kill and the batch resumes where it
stopped, without losing or duplicating a device.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runStation(ctx, s, &f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.dir, "dir", "", "batch `DIR` (created if absent; resumed if it holds this batch)")
	fl.IntVarP(&f.count, "count", "n", 0, "number of devices")
	fl.StringVar(&f.ief, "ief", "", "signed initial enrolment firmware image `FILE`")
	fl.StringVar(&f.app, "app", "", "customer firmware image `FILE` to program after enrolment")
	fl.StringArrayVar(&f.roots, "root", nil, "vendor root public key `FILE` to burn into OTP (repeat for hybrid)")
	fl.StringVar(&f.classKey, "class-key", "", "device-class KEM private key `FILE`, for encrypted firmware")
	fl.StringSliceVar(&f.classes, "classes", station.ClassLabels, "device classes to cycle through; inject:p256-ecdh makes inject chips whose channel a PKCS #11 key store can wrap to, inject:x-wing (the default) HPKE chips")
	fl.StringSliceVar(&f.algs, "algs", sigalg.Names(), "enrolment key suites to cycle through")
	fl.StringVar(&f.keystore, "keystore", "", "station key store `DIR`")
	fl.StringVar(&f.keyName, "key-name", "station", "name of the station key in the key store")
	fl.StringVar(&f.passFile, "passphrase-file", "", "key store passphrase `FILE` (default: $"+cmdline.KeyStorePassphraseEnv+")")
	fl.StringVar(&f.batch, "batch", "", "batch ID (default: random)")
	fl.BoolVar(&f.leaveOpen, "leave-open", false, "do not lock the chips (development boards; recorded as open in the manifest)")
	fl.IntVar(&f.workers, "workers", 0, "devices programmed at once (default: number of CPUs)")
	bindStationTPM(fl, &f.tpm)
	return cmd
}

func runStation(ctx context.Context, s *cmdline.Streams, f *stationRunFlags) error {
	if f.dir == "" || f.count <= 0 || f.ief == "" {
		return cmdline.Usagef("--dir, --count (at least 1) and --ief are required")
	}
	plan, err := station.NewPlan(f.classes, f.algs)
	if err != nil {
		return cmdline.Usage(err)
	}
	ief, err := s.ReadInput(f.ief, cmdline.MaxImageFile, "IEF image")
	if err != nil {
		return err
	}
	var app []byte
	if f.app != "" {
		if app, err = s.ReadInput(f.app, cmdline.MaxImageFile, "application image"); err != nil {
			return err
		}
	}
	roots, err := s.RequiredRoots(f.roots)
	if err != nil {
		return err
	}
	classKey, err := s.OptionalClassKey(f.classKey)
	if err != nil {
		return err
	}
	km, err := cmdline.KeyStoreFlags{Keystore: f.keystore, PassFile: f.passFile}.Open(ctx, s, false)
	if err != nil {
		return err
	}
	defer km.Close()
	sum, err := station.Run(ctx, station.Config{
		Dir: f.dir, BatchID: f.batch, Count: f.count, Plan: plan, IEF: ief, App: app,
		RootKeyHashes: roots, ClassKey: classKey, LeaveOpen: f.leaveOpen, Keys: km, KeyName: f.keyName, Workers: f.workers, TPM: f.tpm,
		Log: slog.New(slog.NewTextHandler(s.Err, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return err
	}
	return printStationSummary(s, sum)
}

func printStationSummary(s *cmdline.Streams, sum *station.Summary) error {
	fmt.Fprintf(s.Out, "batch %s: %d enrolled, %d rejected", sum.BatchID, sum.Enrolled, sum.Rejected)
	if sum.Resumed > 0 {
		fmt.Fprintf(s.Out, " (%d recorded before this run)", sum.Resumed)
	}
	secs := sum.Elapsed.Seconds()
	fmt.Fprintf(s.Out, " in %s (%.0f devices/s)\n", sum.Elapsed.Round(time.Millisecond), float64(sum.Enrolled-sum.Resumed)/max(secs, 1e-9))
	if sum.LeftOpen > 0 {
		fmt.Fprintf(s.Out, "left open (not locked): %d devices\n", sum.LeftOpen)
	} else if sum.Enrolled > 0 {
		fmt.Fprintf(s.Out, "locked: debug port, key-store window and bootloader of every device\n")
	}
	tw := tabwriter.NewWriter(s.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tDEVICES")
	kinds := make([]string, 0, len(sum.ByKind))
	for k := range sum.ByKind {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		fmt.Fprintf(tw, "%s\t%d\n", k, sum.ByKind[k])
	}
	tw.Flush()
	for _, r := range sum.Rejection {
		fmt.Fprintf(s.Out, "rejected: %s\n", r)
	}
	_, err := fmt.Fprintf(s.Out, "manifest: %s\n", sum.Manifest)
	return err
}
