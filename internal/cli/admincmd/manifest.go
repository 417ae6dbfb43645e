package admincmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/hallmark-iot/hallmark/internal/cli/cmdline"
	"github.com/hallmark-iot/hallmark/internal/httpapi"
)

func newAdminManifestCmd(s *cmdline.Streams, f *adminFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "manifest", Short: "Import signed batch manifests"}
	var product string
	imp := &cobra.Command{
		Use:   "import --product ID FILE",
		Short: "Import a manifest; its devices are registered all or none",
		Long: `Upload a manifest (FILE, or "-" for standard input) as the station wrote it. The
platform verifies it against the registered station's key and registers its
devices in one transaction, or none. Importing the same manifest again changes
nothing. If devices of the manifest belong to another batch, their identities
are printed, one a line, and nothing is imported.`,
		Args: cobra.ExactArgs(1),
		RunE: adminRun(s, f, func(ctx context.Context, c *httpapi.Client, args []string) error {
			if product == "" {
				return cmdline.Usagef("--product is required")
			}
			var body io.Reader = s.In
			if args[0] != cmdline.Stdio {
				file, err := os.Open(args[0])
				if err != nil {
					return fmt.Errorf("read manifest: %w", cmdline.PathError(err))
				}
				defer file.Close()
				body = file
			}
			res, err := c.ImportManifest(ctx, product, body)
			if err != nil {
				printDuplicates(s, err)
				return err
			}
			if res.AlreadyImported {
				fmt.Fprintf(s.Out, "batch %s was imported before (%d devices); nothing changed\n", cmdline.Safe(res.Batch), res.Devices)
				return nil
			}
			fmt.Fprintf(s.Out, "imported %d devices of batch %s from station %s into product %s\n", res.Imported, cmdline.Safe(res.Batch), res.Station, cmdline.Safe(res.Product))
			return nil
		}),
	}
	imp.Flags().StringVar(&product, "product", "", "product `ID` of the batch's devices (required)")
	cmd.AddCommand(imp)
	return cmd
}

// printDuplicates lists the identities of a duplicate-devices problem.
func printDuplicates(s *cmdline.Streams, err error) {
	var p *httpapi.Problem
	if !errors.As(err, &p) || p.Code != "duplicate-devices" {
		return
	}
	ids, _ := p.Extensions["duplicates"].([]any)
	for _, id := range ids {
		if id, ok := id.(string); ok {
			fmt.Fprintln(s.Out, cmdline.Safe(id))
		}
	}
}
