package democmd_test

import (
	"strings"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/cli/clitest"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

func TestDemoShowsEverySuite(t *testing.T) {
	out := clitest.MustRun(t, nil, "demo")
	for _, suite := range sigalg.Names() {
		line := ""
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, suite+" ") {
				line = l
			}
		}
		fields := strings.Fields(line)
		if len(fields) < 8 || len(fields[1]) != 64 || fields[6] != "yes" || fields[7] != "verified" {
			t.Errorf("demo row for %s: %q", suite, line)
		}
	}
	if code, _, errOut := clitest.Run(t, nil, "demo", "--ber", "0.7"); code == 0 || !strings.Contains(errOut, "bit error rate") {
		t.Errorf("demo --ber 0.7: exit %d, %q", code, errOut)
	}
}
