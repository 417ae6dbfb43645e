package servecmd

import (
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/hallmark-iot/hallmark/internal/app"
	"github.com/hallmark-iot/hallmark/internal/cli/cmdline"
	"github.com/hallmark-iot/hallmark/internal/store/sqlite"
)

// TestServeTransportFlags: flags win over HALLMARK_* variables, which win
// over the defaults; "0 connections" means no bound; SQLite's mode is
// read in any case.
func TestServeTransportFlags(t *testing.T) {
	t.Setenv("HALLMARK_MIN_RATE_WINDOW", "9s")
	t.Setenv("HALLMARK_MAX_CONNS_PER_ADDRESS", "7")
	t.Setenv("HALLMARK_MAX_CONNS", "0")
	t.Setenv("HALLMARK_SQLITE_SYNCHRONOUS", "NORMAL")
	var tf transportFlags
	f := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	tf.register(f)
	cmdline.BindEnv(f, cmdline.EnvPrefix)
	if err := f.Parse([]string{"--min-rate-window", "3s", "--header-timeout", "4s"}); err != nil {
		t.Fatal(err)
	}
	if err := cmdline.ApplyEnv(f); err != nil {
		t.Fatal(err)
	}
	var cfg app.Config
	if err := tf.apply(&cfg); err != nil {
		t.Fatal(err)
	}
	want := app.TransportLimits{HeaderTimeout: 4 * time.Second, IdleTimeout: app.DefaultIdleTimeout,
		MinRateBytes: app.DefaultMinRateBytes, MinRateWindow: 3 * time.Second, MaxConnsPerAddress: 7, MaxConns: -1}
	if cfg.Transport != want || cfg.SQLiteSynchronous != sqlite.SyncNormal {
		t.Errorf("got %+v %q, want %+v normal", cfg.Transport, cfg.SQLiteSynchronous, want)
	}
}
