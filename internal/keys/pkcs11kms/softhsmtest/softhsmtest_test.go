package softhsmtest_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/keys"
	_ "github.com/hallmark-iot/hallmark/internal/keys/pkcs11kms"
	"github.com/hallmark-iot/hallmark/internal/keys/pkcs11kms/softhsmtest"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// TestParallelTokens: tests running in parallel each get a token of their
// own that opens in this process, and keys in one are not in another.
func TestParallelTokens(t *testing.T) {
	for _, name := range []string{"a", "b", "c", "d"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			tok := softhsmtest.New(t)
			m, err := keys.Open(context.Background(), tok.URI, keys.Options{})
			if err != nil {
				t.Fatalf("open %s: %v", tok, err)
			}
			defer m.Close()
			if _, err := m.CreateKey(context.Background(), keys.CreateKeyRequest{Name: "only-" + name, Suite: sigalg.ECDSAP256}); err != nil {
				t.Fatal(err)
			}
			for _, other := range []string{"a", "b", "c", "d"} {
				_, err := m.PublicKey(context.Background(), "only-"+other)
				if (err == nil) != (other == name) {
					t.Fatalf("token of %s, key of %s: %v", name, other, err)
				}
			}
		})
	}
}

// TestIsolatedToken: a token in its own directory is there for a child
// process given Env, with the PIN in the PIN file.
func TestIsolatedToken(t *testing.T) {
	tool, err := exec.LookPath("pkcs11-tool")
	if err != nil {
		t.Fatal("pkcs11-tool not found: install the Debian package opensc")
	}
	tok := softhsmtest.NewIsolated(t)
	if !strings.HasPrefix(tok.Conf, os.TempDir()) || tok.Conf == os.Getenv("SOFTHSM2_CONF") {
		t.Fatalf("isolated token shares the process's configuration %s", tok.Conf)
	}
	pin, err := os.ReadFile(tok.PINFile)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(tool, "--module", tok.Module, "--token-label", tok.Label, "--login", "--pin", strings.TrimSpace(string(pin)), "--list-objects")
	cmd.Env = append(os.Environ(), tok.Env())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child process cannot log in to the isolated token: %v\n%s", err, out)
	}
}
