//go:build cgo

package firmwarecmd_test

import (
	"os"
	"strings"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/cli/clitest"
	"github.com/hallmark-iot/hallmark/internal/firmware"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/keys/pkcs11kms/softhsmtest"
)

// TestFirmwareSignWithTokenRoot: a vendor's ECDSA root made in a SoftHSM2
// token and its ML-DSA root in a PEM file (SoftHSM2 has no ML-DSA) sign one
// image together; the image passes the product's firmware policy (the
// roots' identities, as firmware_roots holds them) and a device's check,
// and fails both without the token's signature.
func TestFirmwareSignWithTokenRoot(t *testing.T) {
	k := newFWKit(t)
	tok := softhsmtest.New(t)
	rootPub := k.path("hsm-root.pub")
	out := clitest.MustRun(t, nil, "firmware", "root-key", "create", "--keystore", tok.URI, "--name", "vendor-root", "--pub-out", rootPub)
	if !strings.Contains(out, "root identity: ") {
		t.Fatalf("root-key create printed %q", out)
	}
	// The exported public key is the one created.
	if exported := clitest.MustRun(t, nil, "firmware", "root-key", "public", "--keystore", tok.URI, "--name", "vendor-root"); exported != string(mustRead(t, rootPub)) {
		t.Fatal("root-key public differs from the key create wrote")
	}

	image, pemOnly := k.path("app.hmfw"), k.path("pem-only.hmfw")
	clitest.MustRun(t, nil, "firmware", "sign", "--in", k.payloadFile, "--type", "app", "--counter", "3",
		"--key", k.mldsa, "--keystore", tok.URI, "--key-name", "vendor-root", "-o", image)
	clitest.MustRun(t, nil, "firmware", "sign", "--in", k.payloadFile, "--type", "app", "--counter", "3", "--key", k.mldsa, "-o", pemOnly)

	policy := firmware.Policy{RootKeyHashes: [][32]byte{mustIdentity(t, rootPub), mustIdentity(t, k.mldsaPub)}}
	for file, ok := range map[string]bool{image: true, pemOnly: false} {
		img, err := firmware.Parse(mustRead(t, file))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := firmware.VerifyEnvelope(img, policy); (err == nil) != ok {
			t.Errorf("%s under the product policy: %v, want accepted %v", file, err, ok)
		}
		code, _, _ := clitest.Run(t, nil, "firmware", "verify", "--image", file, "--root", rootPub, "--root", k.mldsaPub)
		if (code == 0) != ok {
			t.Errorf("%s: device verification exit %d, want accepted %v", file, code, ok)
		}
	}

	// A key name the token does not hold: one line, non-zero, no image.
	missing := k.path("missing.hmfw")
	code, _, errOut := clitest.Run(t, nil, "firmware", "sign", "--in", k.payloadFile, "--type", "app",
		"--keystore", tok.URI, "--key-name", "no-such-root", "-o", missing)
	if code == 0 || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "no-such-root") || strings.Contains(errOut, tok.PIN) {
		t.Fatalf("exit %d, %q", code, errOut)
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Fatal("a failed sign wrote an image")
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// mustIdentity is the identity of a public key PEM file, as `hallmark keys
// identity` prints it and a product's firmware_roots lists it.
func mustIdentity(t *testing.T, pubFile string) identity.ID {
	t.Helper()
	id, err := identity.Parse(strings.TrimSpace(clitest.MustRun(t, nil, "keys", "identity", pubFile)))
	if err != nil {
		t.Fatal(err)
	}
	return id
}
