package auditcmd

import (
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hallmark-iot/hallmark/internal/cli/cmdline"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// auditKeyPath is app.AuditKeyPath (the CLI does not import the server).
const auditKeyPath = "/v1/audit/key"

func newKeyCmd(s *cmdline.Streams) *cobra.Command {
	var pf cmdline.PlatformFlags
	var out string
	cmd := &cobra.Command{
		Use:   "key --server URL --ca-file FILE [--out FILE]",
		Short: "Fetch the platform's audit public key (PEM)",
		Long: `Fetch the audit key that signs the chain's checkpoints from a running platform
and print it (or write it to --out). Keep a copy where the platform's operators
cannot change it: it is what hallmark audit verify --key trusts.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			client, err := pf.HTTPClient(s, nil)
			if err != nil {
				return err
			}
			req, err := http.NewRequestWithContext(cmd.Context(), "GET", strings.TrimSuffix(pf.Server, "/")+auditKeyPath, nil)
			if err != nil {
				return cmdline.Usagef("--server: %v", err)
			}
			resp, err := client.Do(req)
			if err != nil {
				return fmt.Errorf("fetch audit key: %w", err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("fetch audit key: %s", resp.Status)
			}
			data, err := io.ReadAll(io.LimitReader(resp.Body, maxKeyFile+1))
			if err != nil {
				return fmt.Errorf("fetch audit key: %w", err)
			}
			if len(data) > maxKeyFile {
				return fmt.Errorf("fetch audit key: the answer is over %d bytes", maxKeyFile)
			}
			pub, err := sigalg.ParsePublicKeyPEM(data)
			if err != nil {
				return fmt.Errorf("fetch audit key: %w", err)
			}
			pemKey, err := sigalg.EncodePublicKeyPEM(pub) // re-encoded: only a key is printed
			if err != nil {
				return err
			}
			return s.WriteOutput(out, pemKey, 0o644, true)
		},
	}
	pf.Bind(cmd)
	cmd.Flags().StringVar(&out, "out", "", "output `FILE` (default: standard output)")
	return cmd
}
