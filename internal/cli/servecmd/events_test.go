package servecmd

import (
	"testing"

	"github.com/spf13/pflag"

	"github.com/hallmark-iot/hallmark/internal/cli/cmdline"
	"github.com/hallmark-iot/hallmark/internal/monitoring/relay"
)

// TestWebhookEventsFrom: a new webhook starts at the end of the event log
// unless told beginning (flag or HALLMARK_WEBHOOK_EVENTS_FROM); anything
// else is a usage error.
func TestWebhookEventsFrom(t *testing.T) {
	for _, c := range []struct {
		args, env string
		want      relay.Start
		usage     bool
	}{
		{"", "", relay.StartEnd, false},
		{"beginning", "", relay.StartBeginning, false},
		{"", "beginning", relay.StartBeginning, false},
		{"end", "beginning", relay.StartEnd, false},
		{"yesterday", "", "", true},
	} {
		t.Run(c.args+"/"+c.env, func(t *testing.T) {
			if c.env != "" {
				t.Setenv("HALLMARK_WEBHOOK_EVENTS_FROM", c.env)
			}
			var cf connectorFlags
			f := pflag.NewFlagSet("serve", pflag.ContinueOnError)
			cf.register(f)
			cmdline.BindEnv(f, cmdline.EnvPrefix)
			var args []string
			if c.args != "" {
				args = []string{"--webhook-events-from", c.args}
			}
			if err := f.Parse(args); err != nil {
				t.Fatal(err)
			}
			if err := cmdline.ApplyEnv(f); err != nil {
				t.Fatal(err)
			}
			ev, err := cf.events()
			if c.usage != cmdline.IsUsage(err) || c.usage == (err == nil) || ev.Start != c.want {
				t.Fatalf("events() = %+v, %v; want start %q, usage error %v", ev, err, c.want, c.usage)
			}
		})
	}
}
