package servecmd_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/cli/clitest"
)

// TestServeIssuanceFlagsRefused: a bad policy is a one-line usage error
// before anything starts.
func TestServeIssuanceFlagsRefused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	for _, args := range [][]string{
		{"--csr-binding", "maybe"}, {"--renew-limit", "0"}, {"--renew-window", "0s"}, {"--superseded-grace", "-1m"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			code, out, errOut := clitest.Run(t, nil, append([]string{"serve", "--data-dir", dir}, args...)...)
			if code != 2 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, "hallmark: ") {
				t.Errorf("exit %d, stdout %q, stderr %q; want a one-line usage error", code, out, errOut)
			}
		})
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
			code, out, errOut := clitest.Run(t, nil, append([]string{"serve", "--data-dir", dir}, tc.args...)...)
			if code != 2 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, "hallmark: ") {
				t.Errorf("exit %d, stdout %q, stderr %q; want a one-line usage error", code, out, errOut)
			}
		})
	}
}
