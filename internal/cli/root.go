// Package cli owns Hallmark's command line as a whole: Main, which turns
// an error into one clear line on standard error and an exit status, and
// the root of the cobra command tree, which wires the command groups
// (internal/cli/*cmd, one package each) together and binds flags to the
// environment before any command runs. What commands share lives in
// internal/cli/cmdline; no command lives here.
package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hallmark-iot/hallmark/internal/cli/admincmd"
	"github.com/hallmark-iot/hallmark/internal/cli/auditcmd"
	"github.com/hallmark-iot/hallmark/internal/cli/brokercmd"
	"github.com/hallmark-iot/hallmark/internal/cli/cmdline"
	"github.com/hallmark-iot/hallmark/internal/cli/democmd"
	"github.com/hallmark-iot/hallmark/internal/cli/devicecmd"
	"github.com/hallmark-iot/hallmark/internal/cli/evidencecmd"
	"github.com/hallmark-iot/hallmark/internal/cli/firmwarecmd"
	"github.com/hallmark-iot/hallmark/internal/cli/fleetcmd"
	"github.com/hallmark-iot/hallmark/internal/cli/keyscmd"
	"github.com/hallmark-iot/hallmark/internal/cli/manifestcmd"
	"github.com/hallmark-iot/hallmark/internal/cli/pufcmd"
	"github.com/hallmark-iot/hallmark/internal/cli/servecmd"
	"github.com/hallmark-iot/hallmark/internal/cli/stationcmd"
)

// Main runs the hallmark command line with args (without the program name)
// and returns the process exit status.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRootCmd(&cmdline.Streams{In: stdin, Out: stdout, Err: stderr})
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.Execute()
	if err == nil {
		return cmdline.ExitOK
	}
	// The message may quote a server (a problem's detail): escaped (Safe).
	fmt.Fprintf(stderr, "hallmark: %s\n", cmdline.Safe(cmdline.OneLine(err.Error())))
	if cmdline.IsUsage(err) || isCobraUsageError(err) {
		return cmdline.ExitUsage
	}
	return cmdline.ExitError
}

func newRootCmd(s *cmdline.Streams) *cobra.Command {
	root := &cobra.Command{
		Use:   "hallmark",
		Short: "Zero-trust provisioning and onboarding of IoT devices",
		Long: `Hallmark gives every device a provable identity, from the factory to the cloud,
without trusting the factory. A device's identity is the SHA-256 of its
enrolment public key; it is proven by signing a fresh challenge.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		// Every command's flags bound to HALLMARK_* variables are set from
		// the environment here, once the command line is parsed and before
		// the command runs, so the command line wins.
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return cmdline.ApplyEnv(cmd.Flags())
		},
	}
	root.CompletionOptions.HiddenDefaultCmd = true
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return cmdline.Usage(err)
	})
	root.AddCommand(democmd.New(s), keyscmd.New(s), pufcmd.New(s), firmwarecmd.New(s),
		devicecmd.New(s), stationcmd.New(s), manifestcmd.New(s), servecmd.New(s), admincmd.New(s), fleetcmd.New(s),
		brokercmd.New(s), auditcmd.New(s), evidencecmd.New(s))
	requireSubcommands(root)
	return root
}

// requireSubcommands makes every command group refuse an unknown
// subcommand with a usage error; cobra itself would print the group's help
// and exit 0, which hides a typo from scripts.
func requireSubcommands(cmd *cobra.Command) {
	for _, sub := range cmd.Commands() {
		requireSubcommands(sub)
	}
	if !cmd.HasSubCommands() || cmd.Runnable() || !cmd.HasParent() {
		return
	}
	cmd.Args = cobra.ArbitraryArgs
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) > 0 {
			return cmdline.Usagef("unknown command %q for %q", args[0], cmd.CommandPath())
		}
		return cmd.Help()
	}
}

// isCobraUsageError recognises the argument errors cobra builds itself
// (unknown command, wrong number of arguments), which carry no type.
func isCobraUsageError(err error) bool {
	msg := err.Error()
	for _, prefix := range []string{"unknown command", "accepts ", "requires at least", "requires at most", "unknown flag", "unknown shorthand flag"} {
		if strings.HasPrefix(msg, prefix) {
			return true
		}
	}
	return false
}
