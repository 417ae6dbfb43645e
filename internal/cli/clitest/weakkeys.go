package clitest

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

// WeakKeyFiles writes key files an attacker could hand an operator: public
// keys anyone can sign for (ML-DSA t1 = 0, the P-256 base point, an
// Ed25519 small multiple), and private keys whose public half is one (a
// P-256 scalar of 1, an expanded ML-DSA key with s1 = s2 = 0).
func WeakKeyFiles(t testing.TB) (publics, privates map[string]string) {
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

// WantWeakKeyRefusal checks the CLI's contract for bad input: a non-zero
// exit, nothing on standard output, one line naming the weak key.
func WantWeakKeyRefusal(t testing.TB, what string, args ...string) {
	t.Helper()
	code, out, errOut := Run(t, nil, args...)
	if code == 0 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "weak key") {
		t.Errorf("%s: hallmark %s: exit %d, out %.80q, err %q; want a failure naming the weak key", what, strings.Join(args, " "), code, out, errOut)
	}
}
