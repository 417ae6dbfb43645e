package servecmd

import (
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/hallmark-iot/hallmark/internal/app"
	"github.com/hallmark-iot/hallmark/internal/cli/cmdline"
	"github.com/hallmark-iot/hallmark/internal/onboarding"
)

// TestServeIssuanceFlags: serve requires bound certificate requests by
// default; flags win over HALLMARK_* variables; a grace of 0 means none.
func TestServeIssuanceFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		env  [2]string
		want onboarding.IssuancePolicy
	}{
		{nil, [2]string{}, onboarding.IssuancePolicy{RenewLimit: 3, RenewWindow: time.Hour, SupersededGrace: 10 * time.Minute}},
		{[]string{"--csr-binding", "optional", "--renew-limit", "-1", "--superseded-grace", "0"}, [2]string{"HALLMARK_RENEW_WINDOW", "24h"},
			onboarding.IssuancePolicy{AllowUnboundCSR: true, RenewLimit: -1, RenewWindow: 24 * time.Hour, SupersededGrace: -1}},
		{[]string{"--renew-window", "2h"}, [2]string{"HALLMARK_RENEW_WINDOW", "24h"},
			onboarding.IssuancePolicy{RenewLimit: 3, RenewWindow: 2 * time.Hour, SupersededGrace: 10 * time.Minute}},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			if c.env[0] != "" {
				t.Setenv(c.env[0], c.env[1])
			}
			var fl issuanceFlags
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
			if err := fl.apply(&cfg); err != nil {
				t.Fatal(err)
			}
			if cfg.Issuance != c.want {
				t.Errorf("got %+v, want %+v", cfg.Issuance, c.want)
			}
		})
	}
}
