package admincmd

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/hallmark-iot/hallmark/internal/atomicfile"
	"github.com/hallmark-iot/hallmark/internal/cli/cmdline"
	"github.com/hallmark-iot/hallmark/internal/httpapi"
)

func newAdminEvidenceCmd(s *cmdline.Streams, f *adminFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "evidence",
		Short: "Export signed compliance evidence packs",
	}
	cmd.AddCommand(newAdminEvidenceExportCmd(s, f))
	return cmd
}

func newAdminEvidenceExportCmd(s *cmdline.Streams, f *adminFlags) *cobra.Command {
	var q httpapi.EvidenceQuery
	var out string
	var force bool
	cmd := &cobra.Command{
		Use:   "export (--device ID | --batch NAME | --product ID) --out FILE",
		Short: "Write the evidence pack of a device, a batch or a product",
		Long: `Write a signed, self-contained evidence pack (a tar archive; docs/evidence.md,
"Evidence packs"): the device records, the station and batch the device came
from, its certificates with the CA certificates, its events and status report,
the product's firmware images, and every audit entry about it with its proof to
a checkpoint the audit key signed. An auditor checks it offline with
hallmark evidence verify. The pack streams to a temporary file beside FILE,
renamed into place only once complete: a refusal or a broken transfer leaves
no file. A product of more than 10,000 devices is refused: export its batches.
The token needs the audit:read scope.`,
		Args: cobra.NoArgs,
		RunE: adminRun(s, f, func(ctx context.Context, c *httpapi.Client, _ []string) error {
			n := 0
			for _, v := range []string{q.Device, q.Batch, q.Product} {
				if v != "" {
					n++
				}
			}
			if n != 1 {
				return cmdline.Usagef("give exactly one of --device, --batch and --product")
			}
			if out == "" || cmdline.IsStdio(out) {
				return cmdline.Usagef("--out FILE is required (a pack is binary)")
			}
			if !force && cmdline.FileExists(out) {
				return fmt.Errorf("write %s: file exists (use --force to replace it)", out)
			}
			var size int64
			err := atomicfile.WriteFunc(out, 0o644, func(w io.Writer) error {
				var err error
				size, err = c.ExportEvidence(ctx, q, w)
				return err
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(s.Out, "wrote %s (%d bytes)\n", cmdline.Safe(out), size)
			return nil
		}),
	}
	fl := cmd.Flags()
	fl.StringVar(&q.Device, "device", "", "the device `IDENTITY` (64 hex characters)")
	fl.StringVar(&q.Batch, "batch", "", "every device of batch `NAME`")
	fl.StringVar(&q.Product, "product", "", "every device of product `ID`")
	fl.StringVar(&out, "out", "", "write the pack to `FILE`")
	fl.BoolVar(&force, "force", false, "replace FILE if it exists")
	return cmd
}
