package firmwarecmd_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/cli/clitest"
)

// TestFirmwareAndDeviceCommandsRefuseWeakRoots: a vendor root anyone can
// sign for is refused as a signing key, as a root to verify against, and
// as a root to burn into a chip's OTP.
func TestFirmwareAndDeviceCommandsRefuseWeakRoots(t *testing.T) {
	publics, privates := clitest.WeakKeyFiles(t)
	dir := t.TempDir()
	payload := filepath.Join(dir, "payload")
	os.WriteFile(payload, []byte("\x7fELF firmware"), 0o644)
	honest := filepath.Join(dir, "vendor.pem")
	clitest.MustRun(t, nil, "keys", "generate", "--alg", "ed25519", "--out", honest)
	image := filepath.Join(dir, "app.hmfw")
	clitest.MustRun(t, nil, "firmware", "sign", "--type", "app", "--in", payload, "--key", honest, "-o", image)
	for name, path := range privates {
		clitest.WantWeakKeyRefusal(t, name, "firmware", "sign", "--type", "app", "--in", payload, "--key", path, "-o", filepath.Join(dir, name+".hmfw"))
	}
	for name, path := range publics {
		clitest.WantWeakKeyRefusal(t, name, "firmware", "verify", "--image", image, "--root", path)
		clitest.WantWeakKeyRefusal(t, name, "device", "new", "--class", "keygen", "--alg", "ed25519", "--root", path, "-o", filepath.Join(dir, name+".state"))
	}
}

// TestFirmwareSignKeyStoreUsage: --keystore and --key-name go together.
func TestFirmwareSignKeyStoreUsage(t *testing.T) {
	for _, args := range [][]string{{"--key-name", "root"}, {"--keystore", t.TempDir()}} {
		code, _, errOut := clitest.Run(t, nil, append([]string{"firmware", "sign", "--in", "x", "--type", "app"}, args...)...)
		if code != 2 || !strings.Contains(errOut, "--keystore URI and --key-name NAME go together") {
			t.Errorf("%v: exit %d, %q", args, code, errOut)
		}
	}
}
