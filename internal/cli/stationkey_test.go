package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/hallmark-iot/hallmark/internal/keys/softkms"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// runWired runs the command line like run, with the manifest and station
// key commands attached if root.go does not attach them yet.
func runWired(t *testing.T, stdin []byte, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	s := &streams{in: bytes.NewReader(stdin), out: &out, err: &errOut}
	root := newRootCmd(s)
	if hasCommand(root, "manifest") && hasCommand(root, "station") {
		return run(t, stdin, args...)
	}
	if !hasCommand(root, "manifest") {
		root.AddCommand(newManifestCmd(s))
	}
	if !hasCommand(root, "station") {
		station := &cobra.Command{Use: "station"}
		station.AddCommand(newStationKeyCmd(s))
		root.AddCommand(station)
	}
	requireSubcommands(root)
	root.SetArgs(args)
	root.SetIn(s.in)
	root.SetOut(s.out)
	root.SetErr(s.err)
	code := exitOK
	if err := root.Execute(); err != nil {
		fmt.Fprintf(s.err, "hallmark: %s\n", oneLine(err.Error()))
		code = exitError
		var ue usageError
		if errors.As(err, &ue) || isCobraUsageError(err) {
			code = exitUsage
		}
	}
	return code, out.String(), errOut.String()
}

func hasCommand(root *cobra.Command, name string) bool {
	for _, c := range root.Commands() {
		if c.Name() == name {
			return true
		}
	}
	return false
}

func mustRunWired(t *testing.T, stdin []byte, args ...string) string {
	t.Helper()
	code, out, errOut := runWired(t, stdin, args...)
	if code != 0 {
		t.Fatalf("hallmark %s: exit %d: %s", strings.Join(args, " "), code, errOut)
	}
	return out
}

const testPassphrase = "station passphrase for tests"

// newKeyStore makes an empty key store with a low KDF count, so that the
// commands under test open it quickly, and a passphrase file for it.
func newKeyStore(t *testing.T) (dir, passFile string) {
	t.Helper()
	base := t.TempDir()
	dir, passFile = filepath.Join(base, "keystore"), filepath.Join(base, "passphrase")
	s, err := softkms.Open(context.Background(), dir, []byte(testPassphrase), softkms.InsecureKDFIterations(1000))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	os.WriteFile(passFile, []byte(testPassphrase+"\n"), 0o600)
	t.Setenv("HALLMARK_KEYSTORE_PASSPHRASE", "")
	return dir, passFile
}

func TestStationKeyCreateAndPublic(t *testing.T) {
	dir, passFile := newKeyStore(t)
	pubFile := filepath.Join(t.TempDir(), "station.pub")
	out := mustRunWired(t, nil, "station", "key", "create", "--keystore", dir, "--passphrase-file", passFile, "--pub-out", pubFile)
	written, _ := os.ReadFile(pubFile)
	pub, err := sigalg.ParsePublicKeyPEM(written)
	if err != nil {
		t.Fatalf("--pub-out: %v", err)
	}
	if suite, _ := sigalg.SuiteOf(pub); suite.ID() != sigalg.MLDSA65 {
		t.Fatalf("default suite %s, want ml-dsa-65", suite.ID())
	}
	// The printed station identity is the one `keys identity` computes.
	id := strings.TrimSpace(mustRun(t, nil, "keys", "identity", pubFile))
	if !strings.Contains(out, "station identity: "+id) {
		t.Fatalf("create printed %q, want the identity %s", out, id)
	}
	// public prints the same key, with the passphrase from the environment.
	t.Setenv("HALLMARK_KEYSTORE_PASSPHRASE", testPassphrase)
	if got := mustRunWired(t, nil, "station", "key", "public", "--keystore", dir); got != string(written) {
		t.Fatalf("station key public differs from --pub-out:\n%s\n%s", got, written)
	}
	// Other suites and names, and a soft: URI.
	mustRunWired(t, nil, "station", "key", "create", "--keystore", "soft:"+dir, "--name", "backup-1", "--alg", "ed25519")
	if got := mustRunWired(t, nil, "station", "key", "public", "--keystore", dir, "--name", "backup-1"); !strings.Contains(got, "BEGIN PUBLIC KEY") {
		t.Fatalf("public of backup-1: %q", got)
	}
}

// TestStationKeyCreatesStore lets the command make the store itself, with
// the production KDF count.
func TestStationKeyCreatesStore(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new-store")
	t.Setenv("HALLMARK_KEYSTORE_PASSPHRASE", testPassphrase)
	mustRunWired(t, nil, "station", "key", "create", "--keystore", dir, "--alg", "ecdsa-p256")
	info, err := os.Stat(dir)
	if err != nil || info.Mode().Perm() != 0o700 {
		t.Fatalf("store directory: %v %v", info.Mode(), err)
	}
	if got := mustRunWired(t, nil, "station", "key", "public", "--keystore", dir); !strings.Contains(got, "BEGIN PUBLIC KEY") {
		t.Fatalf("public: %q", got)
	}
}

func TestStationKeyErrors(t *testing.T) {
	dir, passFile := newKeyStore(t)
	wrongPass := filepath.Join(t.TempDir(), "wrong")
	os.WriteFile(wrongPass, []byte("not the passphrase\n"), 0o600)
	mustRunWired(t, nil, "station", "key", "create", "--keystore", dir, "--passphrase-file", passFile)
	missing := filepath.Join(t.TempDir(), "missing")
	ks := []string{"--keystore", dir, "--passphrase-file", passFile}
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no passphrase", []string{"station", "key", "public", "--keystore", dir}, 2, "HALLMARK_KEYSTORE_PASSPHRASE"},
		{"no keystore", []string{"station", "key", "public", "--passphrase-file", passFile}, 2, "--keystore DIR is required"},
		{"wrong passphrase", []string{"station", "key", "public", "--keystore", dir, "--passphrase-file", wrongPass}, 1, "wrong passphrase"},
		{"duplicate", append([]string{"station", "key", "create"}, ks...), 1, "already exists"},
		{"bad name", append([]string{"station", "key", "create", "--name", "../x"}, ks...), 1, "invalid key name"},
		{"unknown suite", append([]string{"station", "key", "create", "--alg", "rsa", "--name", "x"}, ks...), 2, "unknown signature algorithm"},
		{"unknown key", append([]string{"station", "key", "public", "--name", "nope"}, ks...), 1, "key not found"},
		{"missing store", []string{"station", "key", "public", "--keystore", missing, "--passphrase-file", passFile}, 1, "no key store in this directory"},
		{"pkcs11", []string{"station", "key", "public", "--keystore", "pkcs11:token=station", "--passphrase-file", passFile}, 1, "PKCS #11"},
		{"unknown subcommand", []string{"station", "key", "rotate"}, 2, "unknown command"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runWired(t, nil, tc.args...)
			if code != tc.code || out != "" {
				t.Errorf("exit %d, stdout %q; want exit %d and no output", code, out, tc.code)
			}
			if strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, "hallmark: ") || !strings.Contains(errOut, tc.want) {
				t.Errorf("stderr %q, want one line containing %q", errOut, tc.want)
			}
			if strings.Contains(errOut, testPassphrase) {
				t.Error("the passphrase appears in an error")
			}
		})
	}
	if _, err := os.Stat(missing); err == nil {
		t.Error("public on a missing store created it")
	}
}
