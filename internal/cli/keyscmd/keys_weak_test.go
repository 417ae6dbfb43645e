package keyscmd_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/cli/clitest"
)

func TestKeyCommandsRefuseWeakKeys(t *testing.T) {
	publics, privates := clitest.WeakKeyFiles(t)
	dir := t.TempDir()
	msg := filepath.Join(dir, "msg")
	os.WriteFile(msg, []byte("message"), 0o644)
	os.WriteFile(filepath.Join(dir, "sig"), []byte("not a signature"), 0o644)
	for name, path := range publics {
		clitest.WantWeakKeyRefusal(t, name, "keys", "identity", path)
		clitest.WantWeakKeyRefusal(t, name, "keys", "public", path)
		clitest.WantWeakKeyRefusal(t, name, "keys", "verify", "--key", path, "--sig", filepath.Join(dir, "sig"), "--in", msg)
	}
	for name, path := range privates {
		clitest.WantWeakKeyRefusal(t, name, "keys", "identity", path)
		clitest.WantWeakKeyRefusal(t, name, "keys", "public", path)
		clitest.WantWeakKeyRefusal(t, name, "keys", "sign", "--key", path, "--in", msg, "--out", filepath.Join(dir, "out.sig"))
	}
	if _, err := os.Stat(filepath.Join(dir, "out.sig")); err == nil {
		t.Error("a signature was written with a weak key")
	}
}
