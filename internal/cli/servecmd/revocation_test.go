package servecmd

import (
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/hallmark-iot/hallmark/internal/app"
	"github.com/hallmark-iot/hallmark/internal/cli/cmdline"
)

// TestServeRevocationFlags: both flags or neither, from the command line
// or HALLMARK_* variables, the URL checked and kept without a trailing
// slash; anything else is a usage error that leaves the config alone.
func TestServeRevocationFlags(t *testing.T) {
	for _, c := range []struct {
		args       []string
		env        map[string]string
		listen     string
		base       string
		usageError bool
	}{
		{args: nil},
		{args: []string{"--revocation-listen", ":8080", "--revocation-base-url", "http://pki.example:8080/"},
			listen: ":8080", base: "http://pki.example:8080"},
		{env: map[string]string{"HALLMARK_REVOCATION_LISTEN": "127.0.0.1:8081", "HALLMARK_REVOCATION_BASE_URL": "http://10.0.0.1:8081"},
			listen: "127.0.0.1:8081", base: "http://10.0.0.1:8081"},
		{args: []string{"--revocation-listen", ":8080"}, usageError: true},
		{args: []string{"--revocation-base-url", "http://pki.example"}, usageError: true},
		{args: []string{"--revocation-listen", ":8080", "--revocation-base-url", "https://pki.example"}, usageError: true},
		{args: []string{"--revocation-listen", ":8080", "--revocation-base-url", "pki.example"}, usageError: true},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			var fl revocationFlags
			f := pflag.NewFlagSet("serve", pflag.ContinueOnError)
			fl.register(f)
			cmdline.BindEnv(f, cmdline.EnvPrefix)
			if err := f.Parse(c.args); err != nil {
				t.Fatal(err)
			}
			if err := cmdline.ApplyEnv(f); err != nil {
				t.Fatal(err)
			}
			var cfg app.Config
			err := fl.apply(&cfg)
			if c.usageError {
				if !cmdline.IsUsage(err) || cfg.RevocationListen != "" || cfg.RevocationBaseURL != "" {
					t.Fatalf("apply: %v (config %q %q), want a usage error", err, cfg.RevocationListen, cfg.RevocationBaseURL)
				}
				return
			}
			if err != nil || cfg.RevocationListen != c.listen || cfg.RevocationBaseURL != c.base {
				t.Errorf("apply: %v, listen %q, base %q; want %q %q", err, cfg.RevocationListen, cfg.RevocationBaseURL, c.listen, c.base)
			}
		})
	}
}
