package admincmd_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestProductAllocationCommands: a product made with a hash allocation
// shows it in the list; a webhook secret file others can read is refused
// before anything is sent; set-allocation replaces the policy; bad input
// is one line and a non-zero exit, nothing changed.
func TestProductAllocationCommands(t *testing.T) {
	e := newAdminEnv(t)
	out := e.mustAdmin(t, "product", "add", "--id", "spread", "--name", "Spread", "--cert-validity", "8760h", "--allocation", "hash",
		"--endpoint", "mqtts://eu1.example.com:8883", "--endpoint", "mqtts://eu2.example.com:8883=3")
	if !strings.Contains(out, "allocation hash:mqtts://eu1.example.com:8883=1,mqtts://eu2.example.com:8883=3") {
		t.Errorf("product add: %q", out)
	}
	if out := e.mustAdmin(t, "product", "list"); !strings.Contains(out, "ALLOCATION") || !strings.Contains(out, "hash:mqtts://eu1.example.com:8883=1") {
		t.Errorf("product list: %q", out)
	}
	dir := t.TempDir()
	secret := filepath.Join(dir, "alloc.secret")
	if err := os.WriteFile(secret, []byte("0123456789abcdef0123\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	hook := []string{"product", "add", "--id", "routed", "--name", "Routed", "--cert-validity", "8760h", "--allocation", "webhook",
		"--endpoint", "mqtts://red.example.com:8883", "--endpoint", "mqtts://blue.example.com:8883",
		"--webhook-url", "https://alloc.example.com/choose", "--webhook-secret-file", secret}
	code, _, errOut := e.admin(t, nil, hook...)
	if code == 0 || !strings.Contains(errOut, "chmod 600") || strings.Count(strings.TrimSpace(errOut), "\n") != 0 || strings.Contains(errOut, "0123456789abcdef") {
		t.Fatalf("a secret file readable by others: %d %q", code, errOut)
	}
	if err := os.Chmod(secret, 0o600); err != nil {
		t.Fatal(err)
	}
	if out := e.mustAdmin(t, hook...); !strings.Contains(out, "allocation webhook:") || strings.Contains(out, "0123456789abcdef") {
		t.Errorf("webhook product add: %q", out)
	}
	if out := e.mustAdmin(t, "product", "list", "--json"); !strings.Contains(out, `"webhook_secret_set": true`) || strings.Contains(out, "0123456789abcdef") {
		t.Errorf("product list --json: %q", out)
	}
	out = e.mustAdmin(t, "product", "set-allocation", "spread", "--allocation", "static", "--endpoint", "mqtts://one.example.com:8883")
	if !strings.Contains(out, "allocation static") {
		t.Errorf("set-allocation: %q", out)
	}
	code, _, errOut = e.admin(t, nil, "product", "set-allocation", "spread", "--allocation", "hash", "--endpoint", "ftp://x.example.com")
	wantProblemLine(t, code, errOut, "malformed-request")
	code, _, errOut = e.admin(t, nil, "product", "set-allocation", "spread", "--allocation", "hash", "--endpoint", "mqtts://x.example.com=0")
	if code == 0 || !strings.Contains(errOut, "weight must be 1 to 1000") {
		t.Errorf("weight 0: %d %q", code, errOut)
	}
	if out := e.mustAdmin(t, "product", "list"); !strings.Contains(out, "mqtts://one.example.com:8883") {
		t.Errorf("refused changes changed the product: %q", out)
	}
}
