package democmd_test

import (
	"strings"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/cli/clitest"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// TestDemoShowsEverySuite runs the whole demo once, with --keep-running:
// its steps, then the platform kept up for a newcomer (keeprunning_test.go).
func TestDemoShowsEverySuite(t *testing.T) {
	demo := startDemo(t, "demo", "--keep-running")
	out := demo.waitFor(t, keepRunningHeading)
	steps := out[:strings.Index(out, keepRunningHeading)]
	for _, suite := range sigalg.Names() {
		line := ""
		for _, l := range strings.Split(steps, "\n") {
			if strings.HasPrefix(l, suite+" ") {
				line = l
			}
		}
		fields := strings.Fields(line)
		if len(fields) < 8 || len(fields[1]) != 64 || fields[6] != "yes" || fields[7] != "verified" {
			t.Errorf("demo row for %s: %q", suite, line)
		}
	}
	checkOverTheAir(t, steps)
	checkKeptRunning(t, demo, steps)
	if code, _, errOut := clitest.Run(t, nil, "demo", "--ber", "0.7"); code == 0 || !strings.Contains(errOut, "bit error rate") {
		t.Errorf("demo --ber 0.7: exit %d, %q", code, errOut)
	}
}

// checkOverTheAir checks the demo's last part: one ECDSA P-256 device of
// each class that can take a key over the air (puf, keygen, inject with
// its channel) moved to ML-DSA-65 by a migration campaign, with the
// classical firmware root retired, and nothing after it.
func checkOverTheAir(t *testing.T, out string) {
	t.Helper()
	start := strings.LastIndex(out, "\nOver the air, no factory involved:")
	if start < 0 {
		t.Fatalf("no over-the-air part in %q", out)
	}
	part := out[start:]
	classes := map[string]bool{}
	for _, l := range strings.Split(part, "\n") {
		f := strings.Fields(l)
		if len(f) < 11 || f[5] != "→" {
			continue
		}
		// DEVICE CLASS OLD NEW ecdsa-p256 → ml-dsa-65 FIRMWARE slot (alg) refused (device-migrated) [cloud]
		if f[4] != "ecdsa-p256" || f[6] != "ml-dsa-65" || f[7] != "2.0.0" || f[8] != "1" || f[9] != "(ML-DSA-65)" ||
			!strings.Contains(l, "refused (device-migrated)") || f[2] == f[3] {
			t.Errorf("over-the-air row %q", l)
		}
		classes[f[1]] = true
	}
	if len(classes) != 3 || !classes["puf"] || !classes["keygen"] || !classes["inject"] {
		t.Errorf("over-the-air rows for %v, want puf, keygen and inject", classes)
	}
	for _, want := range []string{"completed: 3 of 3 devices migrated", "refused a classical-only image (firmware-retired-root)",
		"(retired-root)", "inject-clear: not migrated over the air"} {
		if !strings.Contains(part, want) {
			t.Errorf("the over-the-air part lacks %q:\n%s", want, part)
		}
	}
	if !strings.HasSuffix(strings.TrimSpace(out), "in the clear.") {
		t.Errorf("the demo does not end with the over-the-air part: %q", out[max(0, len(out)-300):])
	}
}
