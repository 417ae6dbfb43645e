package servecmd_test

import (
	"strings"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/cli/clitest"
)

// TestServeDefenceFlagsRefuseBadValues: a bad lock-out or refusal setting,
// given as a flag or in the environment, is a usage error before anything
// starts.
func TestServeDefenceFlagsRefuseBadValues(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"--admin-auth-failures", "0"},
		{"--admin-lockout", "0s"},
		{"--admin-lockout-max", "-1m"},
		{"--admin-auth-window", "0s"},
		{"--refusal-interval", "10ms"},
		{"--refusal-max-sources", "0"},
	} {
		code, _, errOut := clitest.Run(t, nil, append([]string{"serve", "--data-dir", dir, "--listen", "127.0.0.1:0"}, args...)...)
		if code != 2 || strings.Count(errOut, "\n") != 1 {
			t.Errorf("serve %v: exit %d, %q", args, code, errOut)
		}
	}
	t.Setenv("HALLMARK_ADMIN_AUTH_FAILURES", "many")
	code, _, errOut := clitest.Run(t, nil, "serve", "--data-dir", dir, "--listen", "127.0.0.1:0")
	if code != 2 || !strings.Contains(errOut, "HALLMARK_ADMIN_AUTH_FAILURES") {
		t.Errorf("bad environment value: exit %d, %q", code, errOut)
	}
}
