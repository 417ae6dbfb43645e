package firmware

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"encoding/binary"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sealing"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

var (
	allSuites = []sigalg.ID{sigalg.ECDSAP256, sigalg.Ed25519, sigalg.MLDSA44, sigalg.MLDSA65, sigalg.MLDSA87}
	allKEMs   = []sealing.KEM{sealing.MLKEM768X25519, sealing.MLKEM768, sealing.X25519}
	testMeta  = Metadata{Type: TypeApplication, Version: Version{2, 1, 0}, SecurityCounter: 7}
	testCode  = []byte("\x7fELF pretend firmware: blink the LED, then enrol\n")
)

// signer derives a fixed key of suite; n tells apart keys of one suite.
func signer(tb testing.TB, suite sigalg.ID, n byte) crypto.Signer {
	tb.Helper()
	s, err := suite.Suite()
	if err != nil {
		tb.Fatal(err)
	}
	key, err := s.DeriveKey(bytes.Repeat([]byte{n, byte(len(suite))}, sigalg.SeedSize/2))
	if err != nil {
		tb.Fatal(err)
	}
	return key
}

// rootHash is what a device's OTP holds for key.
func rootHash(tb testing.TB, key crypto.Signer) [sha256.Size]byte {
	tb.Helper()
	id, err := identity.FromPublicKey(key.Public())
	if err != nil {
		tb.Fatal(err)
	}
	return id
}

var classKeys = map[sealing.KEM]*sealing.PrivateKey{}

func classKey(tb testing.TB, kem sealing.KEM) *sealing.PrivateKey {
	tb.Helper()
	if k, ok := classKeys[kem]; ok {
		return k
	}
	k, err := sealing.GenerateKey(kem)
	if err != nil {
		tb.Fatal(err)
	}
	classKeys[kem] = k
	return k
}

// build makes an image of testCode, encrypted to class when it is not
// nil, and signed by keys in order.
func build(tb testing.TB, meta Metadata, class *sealing.PublicKey, keys ...crypto.Signer) *Image {
	tb.Helper()
	img, err := New(meta, testCode)
	if err != nil {
		tb.Fatal(err)
	}
	if class != nil {
		if err := img.Encrypt(class); err != nil {
			tb.Fatal(err)
		}
	}
	for _, k := range keys {
		if err := img.Sign(k); err != nil {
			tb.Fatal(err)
		}
	}
	return img
}

func marshal(tb testing.TB, img *Image) []byte {
	tb.Helper()
	data, err := img.MarshalBinary()
	if err != nil {
		tb.Fatal(err)
	}
	return data
}

func mustParse(tb testing.TB, data []byte) *Image {
	tb.Helper()
	img, err := Parse(data)
	if err != nil {
		tb.Fatal(err)
	}
	return img
}

func headerSize(data []byte) int { return int(binary.BigEndian.Uint16(data[offHeaderSize:])) }

// flip returns a copy of data with bit 0 of byte i inverted.
func flip(data []byte, i int) []byte { return xor(data, i, 1) }

// xor returns a copy of data with byte i xored with mask.
func xor(data []byte, i int, mask byte) []byte {
	c := bytes.Clone(data)
	c[i] ^= mask
	return c
}
