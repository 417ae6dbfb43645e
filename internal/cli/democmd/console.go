package democmd

import (
	"context"
	"fmt"
	"path/filepath"
	"text/tabwriter"

	"github.com/hallmark-iot/hallmark/internal/app"
	"github.com/hallmark-iot/hallmark/internal/cli/cmdline"
	"github.com/hallmark-iot/hallmark/internal/pki"
)

// consolePath is where the platform serves its web console, beside the
// API on the same port (docs/console.md).
const consolePath = "/console/"

// showConsole says where the platform's web console is and how to sign
// in, as soon as the platform serves: without keep the platform stops at
// the end of the demo, so the line says how to keep it.
func showConsole(s *cmdline.Streams, p *app.Platform, keep bool) {
	after := "it stops when the demo ends: --keep-running keeps it up"
	if keep {
		after = "it keeps running after the demo's last step"
	}
	fmt.Fprintf(s.Out, "Web console: %s%s, signed in with the API token in %s (%s).\n", p.URL(), consolePath, p.AdminTokenPath(), after)
}

// keepRunning keeps the platform serving until ctx ends (the demo's
// SIGINT or SIGTERM), so that a newcomer can look at the demo's fleet in
// the console or through the admin CLI. Everything the lines name lives
// in the demo's temporary directory, which is removed when it returns.
func keepRunning(ctx context.Context, s *cmdline.Streams, p *app.Platform, dataDir string) error {
	trust := filepath.Join(dataDir, pki.TLSTrustFile)
	fmt.Fprintf(s.Out, "\nThe platform keeps running until interrupted (Ctrl+C, or SIGTERM):\n\n")
	tw := tabwriter.NewWriter(s.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "  Web console\t%s%s\n", p.URL(), consolePath)
	fmt.Fprintf(tw, "  Sign in with\tthe API token in %s\n", p.AdminTokenPath())
	fmt.Fprintf(tw, "  TLS root\t%s (the demo's own CA: a browser warns unless it trusts this file)\n", trust)
	fmt.Fprintf(tw, "  Admin CLI\thallmark admin device list --server %s --ca-file %s --token-file %s\n", p.URL(), trust, p.AdminTokenPath())
	if err := tw.Flush(); err != nil {
		return err
	}
	<-ctx.Done()
	_, err := fmt.Fprintln(s.Out, "\nInterrupted: the platform stops and the demo's temporary directory is removed.")
	return err
}
