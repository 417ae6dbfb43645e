// Package clitest owns what the tests of several command groups share:
// running the whole hallmark command line in-process (Run, MustRun), a
// station key store that opens quickly, and key files an attacker could
// hand an operator. Tests of a group run through Main, as a user would,
// so they live in the group's external test package (package keyscmd_test)
// and import this one.
package clitest

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/cli"
	"github.com/hallmark-iot/hallmark/internal/keys/softkms"
)

// Run executes the command line in-process and returns its exit status,
// standard output and standard error.
func Run(t testing.TB, stdin []byte, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := cli.Main(args, bytes.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

// RunCombined executes the command line with standard output and
// standard error in one stream, in the order a user at a terminal sees
// them, and returns its exit status and that stream.
func RunCombined(t testing.TB, stdin []byte, args ...string) (int, string) {
	t.Helper()
	var both bytes.Buffer
	code := cli.Main(args, bytes.NewReader(stdin), &both, &both)
	return code, both.String()
}

// RunOnTerminal is Run with a standard error that is a terminal
// (cmdline.IsTerminal), as when a user runs the command by hand.
func RunOnTerminal(t testing.TB, stdin []byte, args ...string) (int, string, string) {
	t.Helper()
	var out bytes.Buffer
	var errOut terminal
	code := cli.Main(args, bytes.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

// terminal is a buffer that says it is a terminal.
type terminal struct{ bytes.Buffer }

// IsTerminal implements cmdline.IsTerminal's check.
func (*terminal) IsTerminal() bool { return true }

// MustRun is Run for a command that must succeed; it returns standard
// output.
func MustRun(t testing.TB, stdin []byte, args ...string) string {
	t.Helper()
	code, out, errOut := Run(t, stdin, args...)
	if code != 0 {
		t.Fatalf("hallmark %s: exit %d: %s", strings.Join(args, " "), code, errOut)
	}
	return out
}

// KeyStorePassphrase is the passphrase of the key stores NewKeyStore makes.
const KeyStorePassphrase = "station passphrase for tests"

// NewKeyStore makes an empty key store with a low KDF count, so that the
// commands under test open it quickly, and a passphrase file for it. It
// clears HALLMARK_KEYSTORE_PASSPHRASE for the test.
func NewKeyStore(t testing.TB) (dir, passFile string) {
	t.Helper()
	base := t.TempDir()
	dir, passFile = filepath.Join(base, "keystore"), filepath.Join(base, "passphrase")
	s, err := softkms.Open(context.Background(), dir, []byte(KeyStorePassphrase), softkms.InsecureKDFIterations(1000))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	os.WriteFile(passFile, []byte(KeyStorePassphrase+"\n"), 0o600)
	t.Setenv("HALLMARK_KEYSTORE_PASSPHRASE", "")
	return dir, passFile
}
