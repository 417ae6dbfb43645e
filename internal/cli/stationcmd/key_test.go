package stationcmd_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/cli/clitest"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

func TestStationKeyCreateAndPublic(t *testing.T) {
	dir, passFile := clitest.NewKeyStore(t)
	pubFile := filepath.Join(t.TempDir(), "station.pub")
	out := clitest.MustRun(t, nil, "station", "key", "create", "--keystore", dir, "--passphrase-file", passFile, "--pub-out", pubFile)
	written, _ := os.ReadFile(pubFile)
	pub, err := sigalg.ParsePublicKeyPEM(written)
	if err != nil {
		t.Fatalf("--pub-out: %v", err)
	}
	suite, err := sigalg.SuiteOf(pub)
	if err != nil {
		t.Fatal(err)
	}
	if suite.ID() != sigalg.MLDSA65 {
		t.Fatalf("default suite %s, want ml-dsa-65", suite.ID())
	}
	// The printed station identity is the one `keys identity` computes.
	id := strings.TrimSpace(clitest.MustRun(t, nil, "keys", "identity", pubFile))
	if !strings.Contains(out, "station identity: "+id) {
		t.Fatalf("create printed %q, want the identity %s", out, id)
	}
	// public prints the same key, with the passphrase from the environment.
	t.Setenv("HALLMARK_KEYSTORE_PASSPHRASE", clitest.KeyStorePassphrase)
	if got := clitest.MustRun(t, nil, "station", "key", "public", "--keystore", dir); got != string(written) {
		t.Fatalf("station key public differs from --pub-out:\n%s\n%s", got, written)
	}
	// Other suites and names, and a soft: URI.
	clitest.MustRun(t, nil, "station", "key", "create", "--keystore", "soft:"+dir, "--name", "backup-1", "--alg", "ed25519")
	if got := clitest.MustRun(t, nil, "station", "key", "public", "--keystore", dir, "--name", "backup-1"); !strings.Contains(got, "BEGIN PUBLIC KEY") {
		t.Fatalf("public of backup-1: %q", got)
	}
}

// TestStationKeyCreatesStore lets the command make the store itself, with
// the production KDF count.
func TestStationKeyCreatesStore(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new-store")
	t.Setenv("HALLMARK_KEYSTORE_PASSPHRASE", clitest.KeyStorePassphrase)
	clitest.MustRun(t, nil, "station", "key", "create", "--keystore", dir, "--alg", "ecdsa-p256")
	info, err := os.Stat(dir)
	if err != nil || info.Mode().Perm() != 0o700 {
		t.Fatalf("store directory: %v %v", info.Mode(), err)
	}
	if got := clitest.MustRun(t, nil, "station", "key", "public", "--keystore", dir); !strings.Contains(got, "BEGIN PUBLIC KEY") {
		t.Fatalf("public: %q", got)
	}
}

func TestStationKeyErrors(t *testing.T) {
	dir, passFile := clitest.NewKeyStore(t)
	wrongPass := filepath.Join(t.TempDir(), "wrong")
	os.WriteFile(wrongPass, []byte("not the passphrase\n"), 0o600)
	clitest.MustRun(t, nil, "station", "key", "create", "--keystore", dir, "--passphrase-file", passFile)
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
			code, out, errOut := clitest.Run(t, nil, tc.args...)
			if code != tc.code || out != "" {
				t.Errorf("exit %d, stdout %q; want exit %d and no output", code, out, tc.code)
			}
			if strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, "hallmark: ") || !strings.Contains(errOut, tc.want) {
				t.Errorf("stderr %q, want one line containing %q", errOut, tc.want)
			}
			if strings.Contains(errOut, clitest.KeyStorePassphrase) {
				t.Error("the passphrase appears in an error")
			}
		})
	}
	if _, err := os.Stat(missing); err == nil {
		t.Error("public on a missing store created it")
	}
}
