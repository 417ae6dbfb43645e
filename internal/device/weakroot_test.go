package device

import (
	"crypto/sha256"
	"errors"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/firmware"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/sigalg/sigalgtest"
)

// TestROMRefusesDegenerateRootKey: a chip whose OTP trusts a root key
// anyone can sign for (ML-DSA t1 = 0) does not boot an enrolment firmware
// signed with it.
func TestROMRefusesDegenerateRootKey(t *testing.T) {
	weak, err := sigalgtest.ZeroMLDSA(sigalg.MLDSA44, [32]byte{9})
	if err != nil {
		t.Fatal(err)
	}
	weakSPKI, _ := sigalg.MarshalPublicKey(weak.Public())
	d, err := New(Config{Class: ClassKeygen, Algorithm: sigalg.Ed25519, RootKeyHashes: [][32]byte{sha256.Sum256(weakSPKI)}})
	if err != nil {
		t.Fatal(err)
	}
	img, _ := firmware.New(firmware.Metadata{Type: firmware.TypeIEF}, IEFPayload())
	if err := img.Sign(weak); err != nil {
		t.Fatal(err)
	}
	data, _ := img.MarshalBinary()
	if err := d.Program(data); err != nil {
		t.Fatal(err)
	}
	if err := d.Boot(); !errors.Is(err, sigalg.ErrWeakKey) {
		t.Fatalf("Boot with a degenerate root = %v, want ErrWeakKey", err)
	}
}
