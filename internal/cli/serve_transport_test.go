package cli

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/hallmark-iot/hallmark/internal/app"
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
	if err := f.Parse([]string{"--min-rate-window", "3s", "--header-timeout", "4s"}); err != nil {
		t.Fatal(err)
	}
	var cfg app.Config
	if err := tf.apply(f, &cfg); err != nil {
		t.Fatal(err)
	}
	want := app.TransportLimits{HeaderTimeout: 4 * time.Second, IdleTimeout: app.DefaultIdleTimeout,
		MinRateBytes: app.DefaultMinRateBytes, MinRateWindow: 3 * time.Second, MaxConnsPerAddress: 7, MaxConns: -1}
	if cfg.Transport != want || cfg.SQLiteSynchronous != sqlite.SyncNormal {
		t.Errorf("got %+v %q, want %+v normal", cfg.Transport, cfg.SQLiteSynchronous, want)
	}
}

// TestServeTransportFlagsRefused: a bad limit or durability setting, by
// flag or by variable, is a usage error before anything starts.
func TestServeTransportFlagsRefused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	for _, tc := range []struct {
		args []string
		env  [2]string
	}{
		{args: []string{"--min-rate-window", "0s"}},
		{args: []string{"--min-rate-bytes", "-1"}},
		{args: []string{"--header-timeout", "-2s"}},
		{args: []string{"--idle-timeout", "0"}},
		{args: []string{"--sqlite-synchronous", "off"}},
		{args: []string{"--database", "postgres://hallmark@127.0.0.1/db", "--sqlite-synchronous", "normal"}},
		{env: [2]string{"HALLMARK_MIN_RATE_WINDOW", "soon"}},
		{env: [2]string{"HALLMARK_MAX_CONNS", "many"}},
		{env: [2]string{"HALLMARK_SQLITE_SYNCHRONOUS", "extra"}},
	} {
		name := strings.Join(tc.args, " ")
		if tc.env[0] != "" {
			name = tc.env[0] + "=" + tc.env[1]
		}
		t.Run(name, func(t *testing.T) {
			if tc.env[0] != "" {
				t.Setenv(tc.env[0], tc.env[1])
			}
			code, out, errOut := run(t, nil, append([]string{"serve", "--data-dir", dir}, tc.args...)...)
			if code != 2 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, "hallmark: ") {
				t.Errorf("exit %d, stdout %q, stderr %q; want a one-line usage error", code, out, errOut)
			}
		})
	}
}
