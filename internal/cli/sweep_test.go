package cli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/hallmark-iot/hallmark/internal/cli/cmdline"
)

// run executes the command line in-process, as clitest.Run does for the
// command groups' tests (this package cannot import clitest, which imports
// it).
func run(t *testing.T, stdin []byte, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Main(args, bytes.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

// leafCommands lists every runnable command path under root.
func leafCommands(cmd *cobra.Command, prefix []string) [][]string {
	var out [][]string
	for _, sub := range cmd.Commands() {
		if sub.Hidden || sub.Name() == "help" {
			continue
		}
		path := append(append([]string(nil), prefix...), sub.Name())
		if sub.HasSubCommands() {
			out = append(out, leafCommands(sub, path)...)
		} else {
			out = append(out, path)
		}
	}
	return out
}

// commandsThatSucceedBare run happily with no arguments and empty input.
var commandsThatSucceedBare = map[string]bool{
	"demo": true, "keys algorithms": true, "device ief-payload": true, "puf table": true,
	"firmware class-key generate": true, // writes a new key to standard output, as openssl genpkey does
	"serve":                       true, // serves until stopped, on embedded defaults
}

// TestEveryCommandRefusesBadInput sweeps the whole command tree: an unknown
// flag is a usage error (exit 2), and a bare invocation with empty input
// either succeeds by design or fails with one line and a non-zero status.
func TestEveryCommandRefusesBadInput(t *testing.T) {
	t.Setenv("HALLMARK_KEYSTORE_PASSPHRASE", "")
	leaves := leafCommands(newRootCmd(&cmdline.Streams{}), nil)
	if len(leaves) < 25 {
		t.Fatalf("only %d commands found", len(leaves))
	}
	for _, path := range leaves {
		name := strings.Join(path, " ")
		t.Run(name, func(t *testing.T) {
			code, out, errOut := run(t, nil, append(path, "--no-such-flag")...)
			if code != 2 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, "hallmark: ") {
				t.Errorf("unknown flag: exit %d, stdout %q, stderr %q", code, out, errOut)
			}
			if commandsThatSucceedBare[name] {
				return
			}
			code, _, errOut = run(t, nil, path...)
			if code == 0 || strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, "hallmark: ") {
				t.Errorf("bare invocation: exit %d, stderr %q", code, errOut)
			}
		})
	}
}
