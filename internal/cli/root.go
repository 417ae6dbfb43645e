// Package cli owns Hallmark's command-line interface: the cobra command tree,
// flag parsing, reading and writing files or standard streams, and turning
// errors into one clear line on standard error with a non-zero exit status.
// It holds no domain logic; every command calls into the package that owns
// the concept.
package cli

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
)

// Exit statuses follow the usual Unix split between a failed operation and
// a command line that could not be understood.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// usageError marks errors caused by how the command was invoked, so Main can
// exit with status 2 as Go and Unix tools do.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// streams carries the process's standard streams so that commands never touch
// os.Stdin/os.Stdout directly and tests can run them in-process.
type streams struct {
	in  io.Reader
	out io.Writer
	err io.Writer
}

// Main runs the hallmark command line with args (without the program name)
// and returns the process exit status.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	s := &streams{in: stdin, out: stdout, err: stderr}
	root := newRootCmd(s)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.Execute()
	if err == nil {
		return exitOK
	}
	// The message may quote a server (a problem's detail): escaped (safe).
	fmt.Fprintf(stderr, "hallmark: %s\n", safe(oneLine(err.Error())))
	var ue usageError
	if errors.As(err, &ue) || isCobraUsageError(err) {
		return exitUsage
	}
	return exitError
}

func newRootCmd(s *streams) *cobra.Command {
	root := &cobra.Command{
		Use:   "hallmark",
		Short: "Zero-trust provisioning and onboarding of IoT devices",
		Long: `Hallmark gives every device a provable identity, from the factory to the cloud,
without trusting the factory. A device's identity is the SHA-256 of its
enrolment public key; it is proven by signing a fresh challenge.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.CompletionOptions.HiddenDefaultCmd = true
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return usageError{err}
	})
	root.AddCommand(newDemoCmd(s), newKeysCmd(s), newPUFCmd(s), newFirmwareCmd(s),
		newDeviceCmd(s), newStationCmd(s), newManifestCmd(s), newServeCmd(s), newAdminCmd(s), newFleetCmd(s))
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
			return usagef("unknown command %q for %q", args[0], cmd.CommandPath())
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

// oneLine keeps the error on one line: a multi-line error is hard to read in
// logs and scripts.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
