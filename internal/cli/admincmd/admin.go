// Package admincmd owns "hallmark admin": the administrator's client of a
// running platform's admin API (stations, products, manifest import,
// devices and revocation, the audit log, admin tokens), one file per verb
// group, and the connection flags they share (--server, --ca-file,
// --token-file, bound to HALLMARK_*). It only decodes flags, calls
// httpapi.Client and prints what the server answered, escaped.
package admincmd

import (
	"context"
	"crypto/x509"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hallmark-iot/hallmark/internal/cli/cmdline"
	"github.com/hallmark-iot/hallmark/internal/httpapi"
)

// adminFlags are the connection flags every admin command shares.
type adminFlags struct {
	server, tokenFile, caFile string
}

// New returns the admin command group.
func New(s *cmdline.Streams) *cobra.Command {
	f := &adminFlags{}
	cmd := &cobra.Command{
		Use:   "admin",
		Short: "Administer a Hallmark platform over its admin API",
		Long: `Register stations and products, import manifests, list and revoke devices, read
the audit log and manage admin tokens on a running platform (hallmark serve).

The connection: --server (or $HALLMARK_SERVER) is the platform's https:// URL;
--ca-file (or $HALLMARK_CA_FILE) the PEM bundle its TLS certificate chains to,
for a platform whose CA is its own (the system's roots otherwise). TLS 1.3 only.
The admin token is read from --token-file or $HALLMARK_TOKEN_FILE, or taken
from $HALLMARK_TOKEN; never from a flag value, which would show in the process
list. A first start of hallmark serve writes an admin token to
DATA_DIR/admin.token.

An error the server answers with is one line: title, detail and code.`,
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&f.server, "server", "", "platform `URL`, https://host:port")
	pf.StringVar(&f.tokenFile, "token-file", "", "admin token `FILE` (default: the token in $"+tokenEnv+")")
	pf.StringVar(&f.caFile, "ca-file", "", "PEM trust bundle `FILE` for the platform's certificate, such as ca/tls-root.pem in serve's data directory (default: the system's roots)")
	cmdline.BindEnv(pf, cmdline.EnvPrefix, "server", "token-file", "ca-file")
	cmd.AddCommand(newAdminStationCmd(s, f), newAdminProductCmd(s, f), newAdminManifestCmd(s, f),
		newAdminDeviceCmd(s, f), newAdminAuditCmd(s, f), newAdminTokenCmd(s, f),
		newAdminEventsCmd(s, f), newAdminFirmwareCmd(s, f), newAdminCampaignCmd(s, f), newAdminCACmd(s, f), newAdminEvidenceCmd(s, f))
	return cmd
}

// tokenEnv holds the admin token itself when no token file is named; a
// secret is never a flag value.
const tokenEnv = "HALLMARK_TOKEN"

// maxTokenFile bounds the admin token file the commands read.
const maxTokenFile = 4096

// client connects to the platform the flags and environment name.
func (f *adminFlags) client(s *cmdline.Streams) (*httpapi.Client, error) {
	server := f.server
	if server == "" {
		return nil, cmdline.Usagef("no server: use --server https://host:port or set HALLMARK_SERVER")
	}
	token, err := f.token(s)
	if err != nil {
		return nil, err
	}
	var roots *x509.CertPool
	if caFile := f.caFile; caFile != "" {
		if roots, err = s.ReadTrustBundle(caFile, "CA bundle"); err != nil {
			return nil, err
		}
	}
	c, err := httpapi.NewClient(server, token, roots)
	if err != nil {
		return nil, cmdline.Usage(err)
	}
	return c, nil
}

func (f *adminFlags) token(s *cmdline.Streams) (string, error) {
	path := f.tokenFile
	if path == "" {
		if t := strings.TrimSpace(os.Getenv(tokenEnv)); t != "" {
			return t, nil
		}
		return "", cmdline.Usagef("no admin token: use --token-file FILE, or set HALLMARK_TOKEN_FILE or HALLMARK_TOKEN")
	}
	data, err := s.ReadInput(path, maxTokenFile, "admin token")
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(data)), nil
}

// adminRun wraps a command body that needs a client.
func adminRun(s *cmdline.Streams, f *adminFlags, fn func(ctx context.Context, c *httpapi.Client, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		c, err := f.client(s)
		if err != nil {
			return err
		}
		return fn(cmd.Context(), c, args)
	}
}

func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func formatOptionalTime(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return formatTime(*t)
}

// errOrJSON returns err, or prints v as JSON.
func errOrJSON(s *cmdline.Streams, err error, v any) error {
	if err != nil {
		return err
	}
	return s.PrintJSON(v)
}
