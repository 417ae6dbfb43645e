package devicecmd_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/cli/clitest"
)

// TestInjectOverECDHChannelThroughCLI makes an inject chip whose channel is
// P-256 ECDH with `device new --transport p256-ecdh`, programs its key with
// `device inject` (no flag: the chip's channel decides the format), and
// the chip enrols with that key. Wrong uses of --transport are refused on
// one line with nothing written.
func TestInjectOverECDHChannelThroughCLI(t *testing.T) {
	dir := t.TempDir()
	file := func(name string) string { return filepath.Join(dir, name) }
	clitest.MustRun(t, nil, "keys", "generate", "--alg", "ed25519", "-o", file("v.pem"), "--pub-out", file("v.pub"))
	clitest.MustRun(t, nil, "device", "ief-payload", "-o", file("ief.bin"))
	clitest.MustRun(t, nil, "firmware", "sign", "--type", "ief", "--in", file("ief.bin"), "--key", file("v.pem"), "-o", file("ief.hmfw"))
	clitest.MustRun(t, nil, "keys", "generate", "--alg", "ml-dsa-65", "-o", file("dev.pem"), "--pub-out", file("dev.pub"))

	state := file("chip.json")
	clitest.MustRun(t, nil, "device", "new", "--class", "inject", "--alg", "ml-dsa-65", "--transport", "p256-ecdh",
		"--root", file("v.pub"), "-o", state)
	raw, _ := os.ReadFile(state)
	if !strings.Contains(string(raw), `"ecdh_transport_key"`) {
		t.Fatalf("state has no ECDH transport key:\n%s", raw)
	}
	out := clitest.MustRun(t, nil, "device", "inject", "--state", state, "--key", file("dev.pem"))
	if !strings.Contains(out, "p256-ecdh transport key") {
		t.Errorf("inject printed %q", out)
	}
	clitest.MustRun(t, nil, "device", "program", "--state", state, "--image", file("ief.hmfw"))
	clitest.MustRun(t, nil, "device", "boot", "--state", state)
	var enr struct {
		Injection string `json:"injection"`
	}
	enrOut := clitest.MustRun(t, nil, "device", "enrol", "--state", state)
	if err := json.Unmarshal([]byte(enrOut), &enr); err != nil || enr.Injection != "encrypted" {
		t.Fatalf("enrol printed %q (%v)", enrOut, err)
	}

	for _, bad := range [][]string{
		{"--class", "inject", "--transport", "rsa-oaep"},
		{"--class", "keygen", "--transport", "p256-ecdh"},
	} {
		out := file("bad.json")
		args := append([]string{"device", "new", "--alg", "ml-dsa-65", "--root", file("v.pub"), "-o", out}, bad...)
		code, _, errOut := clitest.Run(t, nil, args...)
		if code == 0 || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "transport") {
			t.Errorf("%v: exit %d, %q", bad, code, errOut)
		}
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Errorf("%v left a state file", bad)
		}
	}
}
