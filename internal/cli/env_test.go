package cli

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/hallmark-iot/hallmark/internal/cli/cmdline"
)

// secretVariables hold secrets, which are never flag values: the commands
// read them directly, and their help may name them.
var secretVariables = []string{"HALLMARK_TOKEN", "HALLMARK_KEYSTORE_PASSPHRASE", "HALLMARK_CA_PASSPHRASE",
	"HALLMARK_MQTT_ADMIN_PASSWORD", "HALLMARK_WEBHOOK_SECRET", "HALLMARK_PKCS11_PIN"}

// findCommand is the command at path in a new tree, its flags parsed from
// args as Execute would.
func findCommand(t *testing.T, path []string, args ...string) (root, cmd *cobra.Command) {
	t.Helper()
	root = newRootCmd(&cmdline.Streams{})
	cmd, _, err := root.Find(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.ParseFlags(args); err != nil {
		t.Fatal(err)
	}
	return root, cmd
}

// boundFlags maps the variables of the command's bound flags to the flags.
func boundFlags(cmd *cobra.Command) map[string]*pflag.Flag {
	bound := map[string]*pflag.Flag{}
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if name, ok := cmdline.EnvVar(f); ok {
			bound[name] = f
		}
	})
	return bound
}

// envValues are two values a flag of the type accepts, neither of them
// the default: one for the environment, one for the command line.
func envValues(t *testing.T, f *pflag.Flag) (env, cli string) {
	switch f.Value.Type() {
	case "string":
		return "env-value", "cli-value"
	case "stringSlice", "stringArray":
		return "env-a,env-b", "cli-a"
	case "int", "int64", "uint32", "uint64":
		return "7", "8"
	case "duration":
		return "7s", "8s"
	case "float64":
		return "0.25", "0.125"
	case "bool":
		if f.DefValue == "true" {
			return "false", "true"
		}
		return "true", "false"
	}
	t.Fatalf("--%s: no test values for type %s", f.Name, f.Value.Type())
	return "", ""
}

// TestEnvironmentBinding checks, for every flag of every command bound to
// a variable, that setting the variable sets the flag as the same value
// on the command line would, before the command runs (root's pre-run
// hook), and that the command line wins.
func TestEnvironmentBinding(t *testing.T) {
	total := 0
	for _, path := range leafCommands(newRootCmd(&cmdline.Streams{}), nil) {
		_, cmd := findCommand(t, path)
		for name, f := range boundFlags(cmd) {
			total++
			t.Run(strings.Join(path, " ")+" "+name, func(t *testing.T) {
				envValue, cliValue := envValues(t, f)
				_, want := findCommand(t, path, "--"+f.Name+"="+envValue)
				_, wantCLI := findCommand(t, path, "--"+f.Name+"="+cliValue)
				t.Setenv(name, envValue)
				for _, c := range []struct {
					args []string
					want string
				}{
					{nil, want.Flags().Lookup(f.Name).Value.String()},
					{[]string{"--" + f.Name + "=" + cliValue}, wantCLI.Flags().Lookup(f.Name).Value.String()},
				} {
					root, cmd := findCommand(t, path, c.args...)
					if err := root.PersistentPreRunE(cmd, nil); err != nil {
						t.Fatal(err)
					}
					if got := cmd.Flags().Lookup(f.Name).Value.String(); got != c.want || got == f.DefValue {
						t.Errorf("args %q: %s=%s gives --%s %q, want %q (default %q)", c.args, name, envValue, f.Name, got, c.want, f.DefValue)
					}
				}
			})
		}
	}
	if total < 40 {
		t.Fatalf("only %d bound flags found", total)
	}
}

var (
	helpBinding  = regexp.MustCompile(`\[\$(HALLMARK_[A-Z0-9_]+)\]`)
	helpVariable = regexp.MustCompile(`HALLMARK_[A-Z][A-Z0-9_]*`)
)

// TestHelpNamesTheBoundVariables checks each command's help: each bound
// flag names its variable, no flag names one it is not bound to, and any
// other variable the help mentions is a bound one or a secret read
// directly. serve's help promises that every flag has a variable.
func TestHelpNamesTheBoundVariables(t *testing.T) {
	for _, path := range leafCommands(newRootCmd(&cmdline.Streams{}), nil) {
		name := strings.Join(path, " ")
		_, cmd := findCommand(t, path)
		bound := boundFlags(cmd)
		code, help, errOut := run(t, nil, append(path, "--help")...)
		if code != 0 {
			t.Fatalf("%s --help: exit %d, %q", name, code, errOut)
		}
		var named []string
		for _, m := range helpBinding.FindAllStringSubmatch(help, -1) {
			named = append(named, m[1])
		}
		var want []string
		for v := range bound {
			want = append(want, v)
		}
		slices.Sort(named)
		slices.Sort(want)
		if !slices.Equal(slices.Compact(named), want) {
			t.Errorf("%s --help names %v, the bound variables are %v", name, named, want)
		}
		for _, v := range helpVariable.FindAllString(help, -1) {
			if bound[v] == nil && !slices.Contains(secretVariables, v) {
				t.Errorf("%s --help mentions %s, which sets nothing", name, v)
			}
		}
	}
	_, serve := findCommand(t, []string{"serve"})
	serve.Flags().VisitAll(func(f *pflag.Flag) {
		if _, ok := cmdline.EnvVar(f); !ok && f.Name != "help" {
			t.Errorf("serve --%s has no variable, though serve's help says every flag has one", f.Name)
		}
	})
}

// TestHelpShowsNoValueFromTheEnvironment: a variable's value, which may
// be a secret (a database URL's password), is never shown as a default.
func TestHelpShowsNoValueFromTheEnvironment(t *testing.T) {
	t.Setenv("HALLMARK_DATABASE", "postgres://hallmark:s3cret-pw@db/hallmark")
	t.Setenv("HALLMARK_SERVER", "https://s3cret-pw.example")
	for _, path := range [][]string{{"serve"}, {"admin", "device", "list"}, {"device", "onboard"}, {"fleet", "onboard"}} {
		code, help, _ := run(t, nil, append(path, "--help")...)
		if code != 0 || strings.Contains(help, "s3cret-pw") {
			t.Errorf("%s --help: exit %d, shows a value from the environment:\n%s", strings.Join(path, " "), code, help)
		}
	}
}
