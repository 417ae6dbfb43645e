package cmdline

import (
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func newTestFlags() (*pflag.FlagSet, *int, *time.Duration, *string) {
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	n := fs.Int("max-conns", 4, "connections")
	d := fs.Duration("job-lease", time.Minute, "lease")
	s := fs.String("data-dir", "data", "`DIR`")
	return fs, n, d, s
}

func TestBindEnvNamesTheVariableInTheHelp(t *testing.T) {
	fs, _, _, _ := newTestFlags()
	BindEnv(fs, EnvPrefix, "max-conns", "data-dir")
	BindEnv(fs, EnvPrefix, "max-conns") // twice changes nothing
	help := fs.FlagUsages()
	for _, want := range []string{"connections [$HALLMARK_MAX_CONNS] (default 4)", "--data-dir DIR", "DIR [$HALLMARK_DATA_DIR]"} {
		if !strings.Contains(help, want) {
			t.Errorf("help lacks %q:\n%s", want, help)
		}
	}
	if strings.Count(help, "HALLMARK_MAX_CONNS") != 1 || strings.Contains(help, "HALLMARK_JOB_LEASE") {
		t.Errorf("help names the wrong variables:\n%s", help)
	}
	if v, ok := EnvVar(fs.Lookup("job-lease")); ok {
		t.Errorf("unbound flag bound to %s", v)
	}
}

func TestApplyEnv(t *testing.T) {
	t.Setenv("HALLMARK_MAX_CONNS", "9")
	t.Setenv("HALLMARK_JOB_LEASE", "5s")
	t.Setenv("HALLMARK_DATA_DIR", "from-env")
	fs, n, d, s := newTestFlags()
	BindEnv(fs, EnvPrefix, "max-conns", "data-dir")
	if err := fs.Parse([]string{"--data-dir", "from-flag"}); err != nil {
		t.Fatal(err)
	}
	if err := ApplyEnv(fs); err != nil {
		t.Fatal(err)
	}
	// Bound and not given: the environment's; given: the command line's;
	// not bound: the default, whatever the environment says.
	if *n != 9 || *s != "from-flag" || *d != time.Minute {
		t.Errorf("got --max-conns %d, --data-dir %q, --job-lease %s", *n, *s, *d)
	}
}

func TestApplyEnvRefusesABadValue(t *testing.T) {
	t.Setenv("HALLMARK_JOB_LEASE", "soon")
	fs, _, _, _ := newTestFlags()
	BindEnv(fs, EnvPrefix)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	err := ApplyEnv(fs)
	if err == nil || !IsUsage(err) || !strings.Contains(err.Error(), `HALLMARK_JOB_LEASE="soon"`) {
		t.Fatalf("got %v, want a usage error naming the variable", err)
	}
}

func TestBindEnvPanicsOnAnUnknownFlag(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("no panic")
		}
	}()
	fs, _, _, _ := newTestFlags()
	BindEnv(fs, EnvPrefix, "no-such-flag")
}
