package cli

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/sigalg/sigalgtest"
)

// weakKeyFiles writes key files an attacker could hand an operator: public
// keys anyone can sign for (ML-DSA t1 = 0, the P-256 base point, an
// Ed25519 small multiple), and private keys whose public half is one (a
// P-256 scalar of 1, an expanded ML-DSA key with s1 = s2 = 0).
func weakKeyFiles(t *testing.T) (publics, privates map[string]string) {
	t.Helper()
	dir := t.TempDir()
	write := func(name, blockType string, der []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	zero, err := sigalgtest.ZeroMLDSA(sigalg.MLDSA65, [32]byte{3})
	if err != nil {
		t.Fatal(err)
	}
	g, _ := sigalgtest.P256Scalar(1)
	b, _ := sigalgtest.NewEd25519Scalar(5)
	publics = map[string]string{}
	for name, key := range map[string]crypto.Signer{"mldsa65-zero": zero, "p256-g": g, "ed25519-5b": b} {
		der, err := sigalg.MarshalPublicKey(key.Public())
		if err != nil {
			t.Fatal(err)
		}
		publics[name] = write(name+".pub", sigalg.PEMPublicKey, der)
	}
	gDER, _ := x509.MarshalPKCS8PrivateKey(g)
	zeroDER, err := sigalgtest.ExpandedPKCS8(sigalg.MLDSA65, zero)
	if err != nil {
		t.Fatal(err)
	}
	privates = map[string]string{
		"p256-scalar-1": write("p256-scalar-1.pem", sigalg.PEMPrivateKey, gDER),
		"mldsa65-zero":  write("mldsa65-zero.pem", sigalg.PEMPrivateKey, zeroDER),
	}
	return publics, privates
}

// wantWeakKeyRefusal checks the CLI's contract for bad input: a non-zero
// exit, nothing on standard output, one line naming the weak key.
func wantWeakKeyRefusal(t *testing.T, what string, args ...string) {
	t.Helper()
	code, out, errOut := run(t, nil, args...)
	if code == 0 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "weak key") {
		t.Errorf("%s: hallmark %s: exit %d, out %.80q, err %q; want a failure naming the weak key", what, strings.Join(args, " "), code, out, errOut)
	}
}

func TestKeyCommandsRefuseWeakKeys(t *testing.T) {
	publics, privates := weakKeyFiles(t)
	dir := t.TempDir()
	msg := filepath.Join(dir, "msg")
	os.WriteFile(msg, []byte("message"), 0o644)
	os.WriteFile(filepath.Join(dir, "sig"), []byte("not a signature"), 0o644)
	for name, path := range publics {
		wantWeakKeyRefusal(t, name, "keys", "identity", path)
		wantWeakKeyRefusal(t, name, "keys", "public", path)
		wantWeakKeyRefusal(t, name, "keys", "verify", "--key", path, "--sig", filepath.Join(dir, "sig"), "--in", msg)
	}
	for name, path := range privates {
		wantWeakKeyRefusal(t, name, "keys", "identity", path)
		wantWeakKeyRefusal(t, name, "keys", "public", path)
		wantWeakKeyRefusal(t, name, "keys", "sign", "--key", path, "--in", msg, "--out", filepath.Join(dir, "out.sig"))
	}
	if _, err := os.Stat(filepath.Join(dir, "out.sig")); err == nil {
		t.Error("a signature was written with a weak key")
	}
}

// TestFirmwareAndDeviceCommandsRefuseWeakRoots: a vendor root anyone can
// sign for is refused as a signing key, as a root to verify against, and
// as a root to burn into a chip's OTP.
func TestFirmwareAndDeviceCommandsRefuseWeakRoots(t *testing.T) {
	publics, privates := weakKeyFiles(t)
	dir := t.TempDir()
	payload := filepath.Join(dir, "payload")
	os.WriteFile(payload, []byte("\x7fELF firmware"), 0o644)
	honest := filepath.Join(dir, "vendor.pem")
	mustRun(t, nil, "keys", "generate", "--alg", "ed25519", "--out", honest)
	image := filepath.Join(dir, "app.hmfw")
	mustRun(t, nil, "firmware", "sign", "--type", "app", "--in", payload, "--key", honest, "-o", image)
	for name, path := range privates {
		wantWeakKeyRefusal(t, name, "firmware", "sign", "--type", "app", "--in", payload, "--key", path, "-o", filepath.Join(dir, name+".hmfw"))
	}
	for name, path := range publics {
		wantWeakKeyRefusal(t, name, "firmware", "verify", "--image", image, "--root", path)
		wantWeakKeyRefusal(t, name, "device", "new", "--class", "keygen", "--alg", "ed25519", "--root", path, "-o", filepath.Join(dir, name+".state"))
	}
}

// TestAdminStationAddRefusesWeakKeys: the key is refused before anything
// is sent, and the platform holds no station afterwards.
func TestAdminStationAddRefusesWeakKeys(t *testing.T) {
	e := newAdminEnv(t)
	publics, _ := weakKeyFiles(t)
	for name, path := range publics {
		wantWeakKeyRefusal(t, name, "admin", "--server", e.ts.URL, "--token-file", e.tokenFile, "--ca-file", e.caFile,
			"station", "add", "--name", name, "--public-key", path)
	}
	if list := e.mustAdmin(t, "station", "list"); strings.Count(list, "\n") > 1 {
		t.Fatalf("stations registered:\n%s", list)
	}
}
