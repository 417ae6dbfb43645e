package firmwarecmd_test

import (
	"os"
	"path/filepath"
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
