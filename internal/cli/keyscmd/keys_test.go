package keyscmd_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/cli/clitest"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

func TestKeysRoundTripEverySuite(t *testing.T) {
	msg := []byte("message from the factory floor\n")
	for _, suite := range sigalg.Names() {
		t.Run(suite, func(t *testing.T) {
			dir := t.TempDir()
			key, pub := filepath.Join(dir, "key.pem"), filepath.Join(dir, "pub.pem")
			msgFile, sigFile := filepath.Join(dir, "msg"), filepath.Join(dir, "sig")
			os.WriteFile(msgFile, msg, 0o644)

			clitest.MustRun(t, nil, "keys", "generate", "--alg", suite, "--out", key, "--pub-out", pub)
			if info, err := os.Stat(key); err != nil || info.Mode().Perm() != 0o600 {
				t.Fatalf("private key file mode: %v %v", info.Mode(), err)
			}
			// The identity of the private key and of the public key agree.
			idPriv := clitest.MustRun(t, nil, "keys", "identity", key)
			idPub := clitest.MustRun(t, nil, "keys", "identity", pub)
			if idPriv != idPub || len(strings.TrimSpace(idPub)) != 64 {
				t.Fatalf("identity: %q vs %q", idPriv, idPub)
			}
			// public re-derives the same public key PEM.
			pubPEM, _ := os.ReadFile(pub)
			if got := clitest.MustRun(t, nil, "keys", "public", key); got != string(pubPEM) {
				t.Fatal("keys public differs from --pub-out")
			}
			// Sign a file to a file, verify from stdin.
			clitest.MustRun(t, nil, "keys", "sign", "--key", key, "--in", msgFile, "--out", sigFile)
			if out := clitest.MustRun(t, msg, "keys", "verify", "--key", pub, "--sig", sigFile); out != "signature valid\n" {
				t.Fatalf("verify printed %q", out)
			}
			// Sign to stdout from stdin.
			sig := clitest.MustRun(t, msg, "keys", "sign", "--key", key)
			os.WriteFile(sigFile+"2", []byte(sig), 0o644)
			clitest.MustRun(t, nil, "keys", "verify", "-q", "--key", pub, "--sig", sigFile+"2", "--in", msgFile)
			// A changed message fails with exit 1 and one line.
			code, out, errOut := clitest.Run(t, []byte("another message"), "keys", "verify", "--key", pub, "--sig", sigFile)
			if code != 1 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "invalid signature") {
				t.Fatalf("verify of a changed message: exit %d, out %q, err %q", code, out, errOut)
			}
		})
	}
}

func TestKeysDeriveIsDeterministic(t *testing.T) {
	dir := t.TempDir()
	seedHex := strings.Repeat("ab", 32) + "\n"
	seedFile := filepath.Join(dir, "seed")
	os.WriteFile(seedFile, []byte(seedHex), 0o600)
	raw, _ := hex.DecodeString(strings.Repeat("ab", 32))
	for _, suite := range sigalg.Names() {
		a := clitest.MustRun(t, nil, "keys", "derive", "--alg", suite, "--seed", seedFile)
		b := clitest.MustRun(t, []byte(seedHex), "keys", "derive", "--alg", suite, "--seed", "-")
		c := clitest.MustRun(t, raw, "keys", "derive", "--alg", suite, "--seed", "-")
		if a != b || a != c || !strings.Contains(a, "BEGIN PRIVATE KEY") {
			t.Errorf("%s: derive is not deterministic across seed spellings", suite)
		}
	}
}

// TestKeysBadInput checks that every misuse ends with one clear line on
// standard error, a non-zero status, and nothing written.
func TestKeysBadInput(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "key.pem")
	clitest.MustRun(t, nil, "keys", "generate", "--alg", "ed25519", "--out", key)
	before, _ := os.ReadFile(key)
	garbage := filepath.Join(dir, "garbage")
	os.WriteFile(garbage, []byte("not a key"), 0o644)
	cases := []struct {
		name  string
		stdin string
		args  []string
		code  int
		want  string
	}{
		{"unknown suite", "", []string{"keys", "generate", "--alg", "rsa"}, 2, "unknown signature algorithm"},
		{"no suite", "", []string{"keys", "generate"}, 2, "--alg is required"},
		{"unknown flag", "", []string{"keys", "generate", "--bogus"}, 2, "unknown flag"},
		{"unknown command", "", []string{"keys", "frobnicate"}, 2, "unknown command"},
		{"overwrite", "", []string{"keys", "generate", "--alg", "ed25519", "--out", key}, 1, "file exists"},
		{"short seed", "abcd", []string{"keys", "derive", "--alg", "ed25519", "--seed", "-"}, 1, "want 32 raw bytes"},
		{"non-hex seed", strings.Repeat("zz", 32), []string{"keys", "derive", "--alg", "ed25519", "--seed", "-"}, 1, "not 64 hexadecimal"},
		{"no seed", "", []string{"keys", "derive", "--alg", "ed25519"}, 2, "--seed FILE is required"},
		{"missing key file", "", []string{"keys", "identity", filepath.Join(dir, "nope.pem")}, 1, "no such file"},
		{"garbage key", "", []string{"keys", "identity", garbage}, 1, "no PEM block"},
		{"garbage key stdin", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", []string{"keys", "identity"}, 1, "malformed key"},
		{"sign with public key", "m", []string{"keys", "sign", "--key", pubOf(t, key)}, 1, "holds a public key"},
		{"verify without sig", "", []string{"keys", "verify", "--key", key}, 2, "--sig FILE"},
		{"two stdins", "", []string{"keys", "sign", "--key", "-"}, 2, "cannot both be standard input"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := clitest.Run(t, []byte(tc.stdin), tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d (stderr %q)", code, tc.code, errOut)
			}
			if strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, "hallmark: ") || !strings.Contains(errOut, tc.want) {
				t.Errorf("stderr %q, want one line containing %q", errOut, tc.want)
			}
			if out != "" {
				t.Errorf("stdout %q, want nothing", out)
			}
		})
	}
	if after, _ := os.ReadFile(key); !bytes.Equal(before, after) {
		t.Fatal("a failed command changed the existing key file")
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}

func pubOf(t *testing.T, key string) string {
	t.Helper()
	pub := key + ".pub"
	if _, err := os.Stat(pub); err != nil {
		os.WriteFile(pub, []byte(clitest.MustRun(t, nil, "keys", "public", key)), 0o644)
	}
	return pub
}

func openssl(t *testing.T, args ...string) []byte {
	t.Helper()
	path, err := exec.LookPath("openssl")
	if err != nil {
		t.Fatal("the openssl command is missing: install the Debian package openssl")
	}
	out, err := exec.Command(path, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// TestOpenSSLInterop checks both directions for the suites OpenSSL 3.0
// knows: OpenSSL reads Hallmark's keys and verifies its signatures, and
// Hallmark reads OpenSSL's keys with the identity OpenSSL's DER implies.
func TestOpenSSLInterop(t *testing.T) {
	for _, tc := range []struct{ suite, genpkey string }{
		{"ecdsa-p256", "EC"},
		{"ed25519", "ED25519"},
	} {
		t.Run(tc.suite, func(t *testing.T) {
			dir := t.TempDir()
			key, pub := filepath.Join(dir, "key.pem"), filepath.Join(dir, "pub.pem")
			msg, sig := filepath.Join(dir, "msg"), filepath.Join(dir, "sig")
			os.WriteFile(msg, []byte("interoperate"), 0o644)
			clitest.MustRun(t, nil, "keys", "generate", "--alg", tc.suite, "--out", key, "--pub-out", pub)
			openssl(t, "pkey", "-in", key, "-noout")
			der := openssl(t, "pkey", "-pubin", "-in", pub, "-outform", "DER")
			sum := sha256.Sum256(der)
			if got := strings.TrimSpace(clitest.MustRun(t, nil, "keys", "identity", pub)); got != hex.EncodeToString(sum[:]) {
				t.Fatalf("identity %s, SHA-256 of OpenSSL's DER %x", got, sum)
			}
			clitest.MustRun(t, nil, "keys", "sign", "--key", key, "--in", msg, "--out", sig)
			if tc.suite == "ecdsa-p256" {
				openssl(t, "dgst", "-sha256", "-verify", pub, "-signature", sig, msg)
			} else {
				openssl(t, "pkeyutl", "-verify", "-pubin", "-inkey", pub, "-rawin", "-in", msg, "-sigfile", sig)
			}

			// The other direction: OpenSSL's key, Hallmark's tools.
			osKey := filepath.Join(dir, "openssl.pem")
			args := []string{"genpkey", "-algorithm", tc.genpkey, "-out", osKey}
			if tc.genpkey == "EC" {
				args = append(args, "-pkeyopt", "ec_paramgen_curve:P-256")
			}
			openssl(t, args...)
			osDER := openssl(t, "pkey", "-in", osKey, "-pubout", "-outform", "DER")
			osSum := sha256.Sum256(osDER)
			if got := strings.TrimSpace(clitest.MustRun(t, nil, "keys", "identity", osKey)); got != hex.EncodeToString(osSum[:]) {
				t.Fatalf("identity of OpenSSL key %s, want %x", got, osSum)
			}
			clitest.MustRun(t, nil, "keys", "sign", "--key", osKey, "--in", msg, "--out", sig, "--force")
			osPub := filepath.Join(dir, "openssl.pub")
			openssl(t, "pkey", "-in", osKey, "-pubout", "-out", osPub)
			clitest.MustRun(t, nil, "keys", "verify", "--key", osPub, "--sig", sig, "--in", msg)
		})
	}
}
