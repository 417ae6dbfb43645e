package servecmd_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/cli/clitest"
)

// TestServeHelpSaysWhatANewcomerNeeds: the help says where serve listens
// and how to serve other machines, what HALLMARK_CA_PASSPHRASE protects
// and what happens without it, which file TLS clients trust, and how the
// CA's key manager is chosen.
func TestServeHelpSaysWhatANewcomerNeeds(t *testing.T) {
	help := clitest.MustRun(t, nil, "serve", "--help")
	for _, want := range []string{
		`(default "127.0.0.1:8443")`, "--listen :8443 to serve other",
		"HALLMARK_CA_PASSPHRASE", "DATA/ca-passphrase", "development default",
		"trust DATA/ca/tls-root.pem", "ML-DSA CA\ncannot authenticate TLS",
		"--ca-key-uri URI", "soft:<data-dir>/keys", "[$HALLMARK_CA_KEY_URI]",
		"CA signature SUITE on first start: ecdsa-p256, ml-dsa-65",
	} {
		if !strings.Contains(help, want) {
			t.Errorf("serve --help lacks %q", want)
		}
	}
}

// TestServeRefusesBadCAChoices: a CA suite the platform does not offer
// and a key manager no backend serves, as flags or in the environment,
// are usage errors before anything is created.
func TestServeRefusesBadCAChoices(t *testing.T) {
	for _, c := range []struct {
		args []string
		env  [2]string
		want string
	}{
		{[]string{"--ca-suite", "ed25519"}, [2]string{}, "--ca-suite ed25519: a CA may use ecdsa-p256, ml-dsa-65"},
		{nil, [2]string{"HALLMARK_CA_SUITE", "ml-dsa-87"}, "a CA may use ecdsa-p256, ml-dsa-65"},
		{[]string{"--ca-key-uri", "pkcs11:"}, [2]string{}, "--ca-key-uri: "},
		{nil, [2]string{"HALLMARK_CA_KEY_URI", "nosuch:/x"}, `scheme "nosuch"`},
		{[]string{"--audit-checkpoint-interval", "100ms"}, [2]string{}, "--audit-checkpoint-interval 100ms: want 1s to 1h"},
		{[]string{"--audit-checkpoint-every", "-5"}, [2]string{}, "--audit-checkpoint-every -5: want 1 to 10000000"},
	} {
		t.Run(strings.Join(append(c.args, c.env[:]...), " "), func(t *testing.T) {
			if c.env[0] != "" {
				t.Setenv(c.env[0], c.env[1])
			}
			dir := filepath.Join(t.TempDir(), "data")
			code, _, errOut := clitest.Run(t, nil, append([]string{"serve", "--data-dir", dir, "--listen", "127.0.0.1:0"}, c.args...)...)
			if code != 2 || !strings.Contains(errOut, c.want) || strings.Count(errOut, "\n") != 1 {
				t.Errorf("exit %d, %q; want exit 2 and %q", code, errOut, c.want)
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Errorf("a refused serve made the data directory (%v)", err)
			}
		})
	}
}
