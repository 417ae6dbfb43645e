package firmware

import (
	"crypto"
	"errors"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/sigalg/sigalgtest"
)

// TestDegenerateRootKeysAreRefused: an image signed by a root key anyone
// can sign for is malformed, even for a device whose OTP holds that key's
// hash: the signature block names the key, and its parse refuses it.
func TestDegenerateRootKeysAreRefused(t *testing.T) {
	zero, err := sigalgtest.ZeroMLDSA(sigalg.MLDSA65, [32]byte{1})
	if err != nil {
		t.Fatal(err)
	}
	g, _ := sigalgtest.P256Scalar(1)
	b, _ := sigalgtest.NewEd25519Scalar(2)
	for name, root := range map[string]crypto.Signer{"ml-dsa-65 t1 = 0": zero, "P-256 G": g, "Ed25519 2·B": b} {
		img, err := New(testMeta, testCode)
		if err != nil {
			t.Fatal(err)
		}
		if err := img.Sign(root); err != nil {
			t.Fatalf("%s: sign: %v", name, err)
		}
		data, err := img.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		policy := Policy{RootKeyHashes: [][32]byte{rootHash(t, root)}}
		if _, err := VerifyBytes(data, policy); !errors.Is(err, ErrMalformed) || !errors.Is(err, sigalg.ErrWeakKey) {
			t.Errorf("%s: VerifyBytes = %v, want ErrMalformed wrapping ErrWeakKey", name, err)
		}
	}
}
