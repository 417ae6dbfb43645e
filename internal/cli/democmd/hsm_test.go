package democmd_test

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/cli/clitest"
	"github.com/hallmark-iot/hallmark/internal/connector/mosquitto/broker"
	"github.com/hallmark-iot/hallmark/internal/keys/pkcs11kms"
)

// TestDemoHSM runs "hallmark demo --hsm" end to end: the platform's CA
// and TLS keys in a SoftHSM2 token the demo makes (the demo checks each
// against the token before it says so), and a tpm-class gateway in swtpm
// enrolled by the station, imported, onboarded, and (with Mosquitto)
// publishing over mutual TLS with its TPM key. Afterwards the process's
// SOFTHSM2_CONF is as it was.
//
// It is the only test of this package that loads the SoftHSM2 module,
// which reads SOFTHSM2_CONF when this process first initialises it: the
// demo sets the variable to its own configuration before that.
func TestDemoHSM(t *testing.T) {
	// A missing softhsm2 or swtpm fails the demo with the package to
	// install (TestDemoHSMNeedsPackages), so MustRun names it.
	t.Setenv("SOFTHSM2_CONF", "/nonexistent/softhsm2.conf (the test's value)")
	out := clitest.MustRun(t, nil, "demo", "--hsm")
	if got := os.Getenv("SOFTHSM2_CONF"); got != "/nonexistent/softhsm2.conf (the test's value)" {
		t.Errorf("SOFTHSM2_CONF after the demo: %q", got)
	}

	keys := regexp.MustCompile(`CA keys: ca-root, ca-issuing and tls-server are in SoftHSM2 token "hallmark-demo-[0-9a-f]{8}" \(PKCS #11 module /\S+libsofthsm2\.so\), created there as\nnon-extractable`)
	if !keys.MatchString(out) {
		t.Errorf("the demo does not say where the CA keys are:\n%s", out)
	}
	// The station enrolled the gateway, the platform onboarded it.
	row := regexp.MustCompile(`(?m)^(\d+)\s+tpm\s+ecdsa-p256\s+([0-9a-f]{12})\s+onboarded\s+verified\s`).FindStringSubmatch(out)
	if row == nil || !regexp.MustCompile(`(?m)^`+row[1]+`\s+tpm\s+ecdsa-p256\s+none\s+`+row[2]+`\s+verified$`).MatchString(out) {
		t.Fatalf("no tpm gateway in the manifest and onboarding tables:\n%s", out)
	}
	gateway := regexp.MustCompile(`TPM gateway: device (\d+), identity ([0-9a-f]{64}),\n.*created inside the TPM 2\.0 at tcp://127\.0\.0\.1:\d+ \(swtpm\)`).FindStringSubmatch(out)
	if gateway == nil || gateway[1] != row[1] || !strings.HasPrefix(gateway[2], row[2]) {
		t.Fatalf("the TPM gateway's identity, want device %v:\n%s", row, out)
	}
	if broker.Installed() == nil {
		cloud := regexp.MustCompile(`(?m)^` + row[1] + `\s+` + row[2] + `\s+active\s+published\s+refused \(not authorized\)$`)
		if !cloud.MatchString(out) {
			t.Errorf("the TPM gateway did not publish through the broker with its TPM key:\n%s", out)
		}
	}
	// Over the air: puf and keygen move to ML-DSA-65; inject is explained.
	for _, want := range []string{"completed: 2 of 2 devices migrated", "inject: not migrated over the air here", "(firmware-retired-root)"} {
		if !strings.Contains(out, want) {
			t.Errorf("the over-the-air part lacks %q", want)
		}
	}
	if !strings.HasSuffix(strings.TrimSpace(out), "in the clear.") {
		t.Errorf("the demo does not end with the over-the-air part: %q", out[max(0, len(out)-300):])
	}
}

// TestDemoHSMNeedsPackages: without SoftHSM2 or swtpm, demo --hsm fails at
// once, before any output, with one line naming the Debian package.
func TestDemoHSMNeedsPackages(t *testing.T) {
	t.Run("swtpm", func(t *testing.T) {
		t.Setenv("PATH", t.TempDir())
		code, out, errOut := clitest.Run(t, nil, "demo", "--hsm")
		if code != 1 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "install the Debian package swtpm") {
			t.Errorf("exit %d, stdout %q, stderr %q", code, out, errOut)
		}
	})
	t.Run("softhsm2", func(t *testing.T) {
		saved := pkcs11kms.SoftHSM2Paths
		pkcs11kms.SoftHSM2Paths = []string{"/nonexistent/libsofthsm2.so", "/nonexistent/too/libsofthsm2.so"}
		t.Cleanup(func() { pkcs11kms.SoftHSM2Paths = saved })
		code, out, errOut := clitest.Run(t, nil, "demo", "--hsm")
		if code != 1 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "install the Debian package softhsm2") {
			t.Errorf("exit %d, stdout %q, stderr %q", code, out, errOut)
		}
	})
}
