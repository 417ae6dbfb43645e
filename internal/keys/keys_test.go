package keys_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"errors"
	"io"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/keys"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// opaqueSigner hides the key type, as an HSM's signer does, so SignMessage
// must use the crypto.Signer conventions rather than sigalg's own path.
type opaqueSigner struct{ key crypto.Signer }

func (o opaqueSigner) Public() crypto.PublicKey { return o.key.Public() }
func (o opaqueSigner) Sign(r io.Reader, msg []byte, opts crypto.SignerOpts) ([]byte, error) {
	return o.key.Sign(r, msg, opts)
}

func TestSignMessageEverySuite(t *testing.T) {
	msg := []byte("hallmark manifest v1\x00 and more")
	for _, suite := range sigalg.All() {
		key, err := suite.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		for name, signer := range map[string]crypto.Signer{"native": key, "opaque": opaqueSigner{key}} {
			t.Run(string(suite.ID())+"/"+name, func(t *testing.T) {
				sig, err := keys.SignMessage(signer, msg)
				if err != nil {
					t.Fatal(err)
				}
				if err := suite.Verify(key.Public(), msg, sig); err != nil {
					t.Fatalf("signature does not verify with sigalg: %v", err)
				}
				if err := suite.Verify(key.Public(), msg[1:], sig); !errors.Is(err, sigalg.ErrInvalidSignature) {
					t.Fatalf("signature verifies for another message: %v", err)
				}
			})
		}
	}
}

func TestValidateName(t *testing.T) {
	for name, ok := range map[string]bool{
		"station": true, "a": true, "9": true, "ca-root.2026_v1": true,
		"": false, "Station": false, "../x": false, "x/y": false, ".x": false, "-x": false,
		"x y": false, "x\n": false, string(make([]byte, 3)): false,
		"a123456789012345678901234567890123456789012345678901234567890123":  true,
		"a1234567890123456789012345678901234567890123456789012345678901234": false,
	} {
		err := keys.ValidateName(name)
		if ok != (err == nil) || (!ok && !errors.Is(err, keys.ErrInvalidName)) {
			t.Errorf("ValidateName(%q) = %v, want ok=%v", name, err, ok)
		}
	}
}

func TestOpenUnknownScheme(t *testing.T) {
	for _, uri := range []string{"pkcs11:token=x", "tpm:/dev/tpmrm0", "nope:/x"} {
		if _, err := keys.Open(context.Background(), uri, keys.Options{}); !errors.Is(err, keys.ErrUnsupported) {
			t.Errorf("Open(%q): %v, want ErrUnsupported", uri, err)
		}
	}
	if _, err := keys.Open(context.Background(), "/just/a/path", keys.Options{}); err == nil || errors.Is(err, keys.ErrUnsupported) {
		t.Errorf("Open of a URI without a scheme: %v, want a usage hint", err)
	}
}
