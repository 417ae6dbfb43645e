package admincmd_test

import (
	"strings"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/cli/clitest"
)

// TestAdminStationAddRefusesWeakKeys: the key is refused before anything
// is sent, and the platform holds no station afterwards.
func TestAdminStationAddRefusesWeakKeys(t *testing.T) {
	e := newAdminEnv(t)
	publics, _ := clitest.WeakKeyFiles(t)
	for name, path := range publics {
		clitest.WantWeakKeyRefusal(t, name, "admin", "--server", e.ts.URL, "--token-file", e.tokenFile, "--ca-file", e.caFile,
			"station", "add", "--name", name, "--public-key", path)
	}
	if list := e.mustAdmin(t, "station", "list"); strings.Count(list, "\n") > 1 {
		t.Fatalf("stations registered:\n%s", list)
	}
}
