package fleetcmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/hallmark-iot/hallmark/internal/atomicfile"
	"github.com/hallmark-iot/hallmark/internal/cli/cmdline"
	"github.com/hallmark-iot/hallmark/internal/fleet"
	"github.com/hallmark-iot/hallmark/internal/manifest"
)

func newFleetManifestCmd(s *cmdline.Streams) *cobra.Command {
	var f fleetFlags
	var ks cmdline.KeyStoreFlags
	var batch, out string
	var force bool
	cmd := &cobra.Command{
		Use:   "manifest --seed-file SEED --devices N --keystore DIR --out FILE [--suite S] [--from I] [--batch NAME]",
		Short: "Write the signed manifest of a fleet's devices, as a provisioning station would",
		Long: `Derive devices --from to --from+N-1 of the fleet, have each sign its proof of
possession over a fresh station nonce, and write the manifest signed by the
station key (from the key store, as "hallmark station key create" makes it).
Import it with "hallmark admin manifest import --product ID FILE". The file is
written to a temporary name and renamed into place once signed; memory stays
constant (apart from the writer's set of identities, about 100 bytes a device),
so a million devices, the most one manifest holds, is fine.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runFleetManifest(ctx, s, &f, ks, batch, out, force)
		},
	}
	f.bind(cmd)
	ks.Bind(cmd)
	cmd.Flags().StringVar(&batch, "batch", "", "batch `NAME` (default: fleet-FROM-LAST)")
	cmd.Flags().StringVarP(&out, "out", "o", "", "manifest `FILE` (- for standard output)")
	cmd.Flags().BoolVar(&force, "force", false, "replace an existing output file")
	return cmd
}
func runFleetManifest(ctx context.Context, s *cmdline.Streams, f *fleetFlags, ks cmdline.KeyStoreFlags, batch, out string, force bool) error {
	if out == "" {
		return cmdline.Usagef("--out FILE is required")
	}
	if f.devices > manifest.MaxRecords {
		return cmdline.Usagef("--devices %d: a manifest holds at most %d devices", f.devices, manifest.MaxRecords)
	}
	fl, err := f.fleet(s, "")
	if err != nil {
		return err
	}
	if batch == "" {
		batch = fmt.Sprintf("fleet-%d-%d", f.from, f.from+f.devices-1)
	}
	if out != cmdline.Stdio && !force {
		if _, err := os.Stat(out); err == nil {
			return fmt.Errorf("write %s: file exists (use --force to replace it)", out)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("write %s: %w", out, cmdline.PathError(err))
		}
	}
	m, err := ks.Open(ctx, s, false)
	if err != nil {
		return err
	}
	defer m.Close()
	signer, err := m.Signer(ctx, ks.Name)
	if err != nil {
		return err
	}
	var done atomic.Int64
	cfg := fleet.ManifestConfig{Fleet: fl, First: f.from, Count: f.devices, Batch: batch, Station: signer, Workers: f.workers, Done: &done}
	stopBar := s.StartProgress(cmdline.Progress{
		Unit: "devices", Total: int64(f.devices), Keep: true, Always: f.progress,
		Read: func() (int64, int64) { return done.Load(), 0 },
	})
	var sum fleet.ManifestSummary
	write := func(w io.Writer) error {
		sum, err = fleet.WriteManifest(ctx, w, cfg)
		return err
	}
	summaryTo := s.Out
	if out == cmdline.Stdio {
		err, summaryTo = write(s.Out), s.Err
	} else if werr := atomicfile.WriteFunc(out, 0o644, write); werr != nil {
		err = fmt.Errorf("write %s: %w", out, cmdline.PathError(werr))
	}
	stopBar()
	if err != nil {
		return err
	}
	secs := sum.Elapsed.Seconds()
	_, err = fmt.Fprintf(summaryTo, "batch %s: %d devices (%s, indexes %d-%d) signed by station %s in %.1f s (%.0f devices/s)\n",
		sum.Batch, sum.Devices, fl.Suite().ID(), f.from, f.from+f.devices-1, sum.Station, secs, float64(sum.Devices)/max(secs, 1e-9))
	return err
}
