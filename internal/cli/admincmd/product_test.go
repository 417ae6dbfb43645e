package admincmd_test

import (
	"strings"
	"testing"
)

// TestProductPolicyCommands: a product's heartbeat interval and minimum
// firmware version are set at creation and changed later, one flag at a
// time (what is not given stays); a minimum that cannot be compared and an
// update with nothing to change are refused.
func TestProductPolicyCommands(t *testing.T) {
	e := newAdminEnv(t)
	e.mustAdmin(t, "product", "add", "--id", "tracker", "--name", "Tracker", "--cert-validity", "8760h",
		"--cloud-endpoint", "mqtts://broker.example.com:8883", "--heartbeat-interval", "2h", "--min-firmware", "1.4.0")
	out := e.mustAdmin(t, "product", "update", "tracker", "--min-firmware", "1.5.0")
	if out != "updated product tracker: renewal window 0s, heartbeat interval 2h, minimum firmware 1.5.0\n" {
		t.Errorf("update of the minimum: %q", out)
	}
	out = e.mustAdmin(t, "product", "update", "tracker", "--heartbeat-interval", "0", "--renewal-window", "720h")
	if out != "updated product tracker: renewal window 720h, heartbeat interval 0s, minimum firmware 1.5.0\n" {
		t.Errorf("update of the durations: %q", out)
	}
	if out := e.mustAdmin(t, "product", "list"); !strings.Contains(out, "1.5.0") || !strings.Contains(out, "MIN FIRMWARE") {
		t.Errorf("product list: %q", out)
	}
	code, _, errOut := e.admin(t, nil, "product", "update", "tracker", "--min-firmware", "latest")
	wantProblemLine(t, code, errOut, "malformed-request")
	code, _, errOut = e.admin(t, nil, "product", "update", "no-such-product", "--min-firmware", "2.0")
	wantProblemLine(t, code, errOut, "not-found")
	if code, _, _ := e.admin(t, nil, "product", "update", "tracker"); code == 0 {
		t.Error("an update with nothing to change succeeded")
	}
	code, _, errOut = e.admin(t, nil, "product", "add", "--id", "x", "--name", "X", "--cert-validity", "1h",
		"--cloud-endpoint", "https://x.example.com", "--heartbeat-interval", "1s")
	wantProblemLine(t, code, errOut, "malformed-request")
}

// TestProductRequireLockedCommands: the lock requirement is set at
// creation, shown in the table and in JSON, lifted and set again by update.
func TestProductRequireLockedCommands(t *testing.T) {
	e := newAdminEnv(t)
	out := e.mustAdmin(t, "product", "add", "--id", "vault", "--name", "Vault", "--cert-validity", "8760h",
		"--cloud-endpoint", "mqtts://broker.example.com:8883", "--require-locked")
	if !strings.Contains(out, "only devices recorded locked are imported and onboarded") {
		t.Errorf("product add: %q", out)
	}
	e.mustAdmin(t, "product", "add", "--id", "lamp", "--name", "Lamp", "--cert-validity", "8760h",
		"--cloud-endpoint", "mqtts://broker.example.com:8883")
	if out := e.mustAdmin(t, "product", "list", "--json"); !strings.Contains(out, `"require_locked": true`) {
		t.Errorf("product list: %q", out)
	}
	wantRequireLocked(t, e.mustAdmin(t, "product", "list"), map[string]string{"vault": "yes", "lamp": "no"})
	if out := e.mustAdmin(t, "product", "update", "vault", "--require-locked=false"); !strings.Contains(out, "require locked devices: false") {
		t.Errorf("lifting the requirement: %q", out)
	}
	wantRequireLocked(t, e.mustAdmin(t, "product", "list"), map[string]string{"vault": "no", "lamp": "no"})
	if out := e.mustAdmin(t, "product", "update", "vault", "--require-locked"); !strings.Contains(out, "require locked devices: true") {
		t.Errorf("setting the requirement: %q", out)
	}
}

// wantRequireLocked checks the REQUIRE LOCKED column of product list's
// table, product by product.
func wantRequireLocked(t *testing.T, table string, want map[string]string) {
	t.Helper()
	lines := strings.Split(strings.TrimRight(table, "\n"), "\n")
	col := strings.Index(lines[0], "REQUIRE LOCKED")
	if col < 0 || len(lines) != len(want)+1 {
		t.Fatalf("product list, want a REQUIRE LOCKED column and %d products:\n%s", len(want), table)
	}
	for _, line := range lines[1:] {
		id := strings.Fields(line)[0]
		if len(line) <= col || strings.Fields(line[col:])[0] != want[id] {
			t.Errorf("product %s: REQUIRE LOCKED is not %q:\n%s", id, want[id], table)
		}
	}
}
