package admincmd

import (
	"context"
	"time"

	"github.com/spf13/cobra"

	"github.com/hallmark-iot/hallmark/internal/cli/cmdline"
	"github.com/hallmark-iot/hallmark/internal/httpapi"
)

// newAdminCACmd lists the platform's CAs. They are made by hallmark serve
// (--ca-suite on first start, --ca-suites for further ones), not over the
// API: docs/pki.md, "Several CAs", says why.
func newAdminCACmd(s *cmdline.Streams, f *adminFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "ca", Short: "List the platform's CAs (a product's --issuing-ca names one)"}
	var asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List the platform's CAs",
		Long: `List the platform's CAs, the first one first: the CA made on first start
(serve --ca-suite), which issues for products that name none and signs the
platform's TLS certificate, and one per further suite (serve --ca-suites).
A product names its CA with hallmark admin product add|update --issuing-ca.`,
		Args: cobra.NoArgs,
		RunE: adminRun(s, f, func(ctx context.Context, c *httpapi.Client, _ []string) error {
			cas, err := c.ListCAs(ctx)
			if err != nil || asJSON {
				return errOrJSON(s, err, httpapi.CAList{CAs: cas})
			}
			var rows [][]string
			for _, ca := range cas {
				first := ""
				if ca.First {
					first = "yes"
				}
				rows = append(rows, []string{ca.Name, orDash(first), ca.Subject, ca.SKI, ca.NotAfter.UTC().Format(time.DateOnly), orDash(ca.CRLURL)})
			}
			return s.Table("NAME\tFIRST\tISSUING CA\tSKI\tNOT AFTER\tCRL", rows)
		}),
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.AddCommand(list)
	return cmd
}

// orFirst shows a product's empty issuing CA as the first CA.
func orFirst(name string) string {
	if name == "" {
		return "the first CA"
	}
	return name
}
