//go:build cgo

package servecmd_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/cli/clitest"
	"github.com/hallmark-iot/hallmark/internal/keys/pkcs11kms"
	"github.com/hallmark-iot/hallmark/internal/keys/pkcs11kms/softhsmtest"
)

// TestServeWrongTokenPIN: serve with its CA keys in a token and a wrong
// PIN exits non-zero with one line that names the PIN as the problem,
// holds neither the wrong PIN nor the right one, and leaves no data
// directory behind.
func TestServeWrongTokenPIN(t *testing.T) {
	tok := softhsmtest.New(t)
	wrong := filepath.Join(t.TempDir(), "pin")
	if err := os.WriteFile(wrong, []byte("31415926\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "data")
	code, _, errOut := clitest.Run(t, nil, "serve", "--data-dir", dir, "--listen", "127.0.0.1:0",
		"--ca-key-uri", pkcs11kms.TokenURI(tok.Label, tok.Module, wrong))
	if code != 1 || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "PIN") ||
		strings.Contains(errOut, "31415926") || strings.Contains(errOut, tok.PIN) {
		t.Fatalf("exit %d, %q; want exit 1 and one line about the PIN without it", code, errOut)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("a serve refused for its PIN made the data directory (%v)", err)
	}
}
