package firmware

import (
	"crypto/rand"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/sealing"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

const benchPayloadSize = 1 << 20

func benchPayload(b *testing.B) []byte {
	p := make([]byte, benchPayloadSize)
	rand.Read(p)
	return p
}

// BenchmarkSign signs the header of a 1 MiB image; the cost does not
// depend on the payload, which the header binds by its digest.
func BenchmarkSign(b *testing.B) {
	for _, suite := range allSuites {
		b.Run(string(suite), func(b *testing.B) {
			key := signer(b, suite, 1)
			img, err := New(testMeta, benchPayload(b))
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				img.sigs = img.sigs[:0]
				if err := img.Sign(key); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkVerify is the ROM's check of a signed plain image with a 1 KiB
// payload, so the figure is the signature's cost.
func BenchmarkVerify(b *testing.B) {
	for _, suite := range allSuites {
		b.Run(string(suite), func(b *testing.B) {
			key := signer(b, suite, 1)
			img, err := New(testMeta, make([]byte, 1024))
			if err != nil {
				b.Fatal(err)
			}
			if err := img.Sign(key); err != nil {
				b.Fatal(err)
			}
			policy := Policy{RootKeyHashes: [][32]byte{rootHash(b, key)}}
			for b.Loop() {
				if _, err := Verify(img, policy); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkVerifyHybridEncrypted is a device's whole boot check of a 1 MiB
// image: parse, ECDSA P-256 and ML-DSA-65 signatures, decryption with an
// ML-KEM-768+X25519 class key.
func BenchmarkVerifyHybridEncrypted(b *testing.B) {
	class := classKey(b, sealing.MLKEM768X25519)
	img, err := New(testMeta, benchPayload(b))
	if err != nil {
		b.Fatal(err)
	}
	if err := img.Encrypt(class.Public()); err != nil {
		b.Fatal(err)
	}
	policy := Policy{ClassKey: class}
	for _, suite := range []sigalg.ID{sigalg.ECDSAP256, sigalg.MLDSA65} {
		key := signer(b, suite, 1)
		if err := img.Sign(key); err != nil {
			b.Fatal(err)
		}
		policy.RootKeyHashes = append(policy.RootKeyHashes, rootHash(b, key))
	}
	data, _ := img.MarshalBinary()
	b.SetBytes(benchPayloadSize)
	for b.Loop() {
		if _, err := VerifyBytes(data, policy); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncrypt(b *testing.B) {
	for _, kem := range allKEMs {
		b.Run(string(kem), func(b *testing.B) {
			payload, class := benchPayload(b), classKey(b, kem).Public()
			b.SetBytes(benchPayloadSize)
			for b.Loop() {
				img, err := New(testMeta, payload)
				if err != nil {
					b.Fatal(err)
				}
				if err := img.Encrypt(class); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDecrypt(b *testing.B) {
	for _, kem := range allKEMs {
		b.Run(string(kem), func(b *testing.B) {
			class := classKey(b, kem)
			img, err := New(testMeta, benchPayload(b))
			if err != nil {
				b.Fatal(err)
			}
			if err := img.Encrypt(class.Public()); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(benchPayloadSize)
			for b.Loop() {
				if _, err := img.Decrypt(class); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkParse decodes a signed (hybrid ECDSA P-256 + ML-DSA-65)
// encrypted 1 MiB image: hashing and copying the payload dominate.
func BenchmarkParse(b *testing.B) {
	img, err := New(testMeta, benchPayload(b))
	if err != nil {
		b.Fatal(err)
	}
	if err := img.Encrypt(classKey(b, sealing.MLKEM768X25519).Public()); err != nil {
		b.Fatal(err)
	}
	for _, suite := range []sigalg.ID{sigalg.ECDSAP256, sigalg.MLDSA65} {
		if err := img.Sign(signer(b, suite, 1)); err != nil {
			b.Fatal(err)
		}
	}
	data, _ := img.MarshalBinary()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Parse(data); err != nil {
			b.Fatal(err)
		}
	}
}
