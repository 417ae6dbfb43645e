package firmware

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"errors"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sealing"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

func TestRoundTripEverySuite(t *testing.T) {
	for _, suite := range allSuites {
		t.Run(string(suite), func(t *testing.T) {
			key := signer(t, suite, 1)
			data := marshal(t, build(t, testMeta, nil, key))
			img := mustParse(t, data)
			if !bytes.Equal(marshal(t, img), data) {
				t.Fatal("parse then marshal changed the image")
			}
			v, err := Verify(img, Policy{RootKeyHashes: [][32]byte{rootHash(t, key)}, MinSecurityCounter: 7})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(v.Payload, testCode) || v.Header.Metadata != testMeta || v.Header.Encryption != nil {
				t.Fatalf("verified %+v", v.Header)
			}
			if len(v.Roots) != 1 || v.Roots[0] != identity.ID(rootHash(t, key)) {
				t.Fatalf("roots %v", v.Roots)
			}
			sigs := img.Signatures()
			if len(sigs) != 1 || sigs[0].Suite != suite || sigs[0].Signer() != v.Roots[0] {
				t.Fatalf("signatures %+v", sigs)
			}
		})
	}
}

func TestRoundTripEveryKEM(t *testing.T) {
	ecdsaKey, mldsaKey := signer(t, sigalg.ECDSAP256, 1), signer(t, sigalg.MLDSA65, 1)
	for _, kem := range allKEMs {
		t.Run(string(kem), func(t *testing.T) {
			class := classKey(t, kem)
			data := marshal(t, build(t, testMeta, class.Public(), ecdsaKey, mldsaKey))
			if bytes.Contains(data, testCode) {
				t.Fatal("the encrypted image contains the plaintext")
			}
			img := mustParse(t, data)
			h := img.Header()
			if h.Encryption == nil || h.Encryption.KEM != kem || h.Encryption.Recipient != class.Public().Fingerprint() ||
				len(h.Encryption.Encapsulation) != kem.EncapsulationSize() || int(h.PayloadSize) != len(testCode)+sealing.Overhead {
				t.Fatalf("header %+v", h)
			}
			v, err := VerifyBytes(data, Policy{
				RootKeyHashes: [][32]byte{rootHash(t, ecdsaKey), rootHash(t, mldsaKey)},
				ClassKey:      class,
			})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(v.Payload, testCode) {
				t.Fatal("decrypted payload differs")
			}
			plain, err := img.Decrypt(class)
			if err != nil || !bytes.Equal(plain, testCode) {
				t.Fatalf("Decrypt: %v", err)
			}
		})
	}
}

// tamperedCiphertext builds an image whose ciphertext was corrupted before
// signing, with the digest recomputed to match: only the AEAD can notice.
func tamperedCiphertext(t *testing.T, class *sealing.PublicKey, key crypto.Signer) *Image {
	img := build(t, testMeta, class)
	img.payload[len(img.payload)/2] ^= 1
	img.header.PayloadDigest = sha256.Sum256(img.payload)
	if err := img.Sign(key); err != nil {
		t.Fatal(err)
	}
	return img
}

// relabelled builds an image encrypted with security counter 1 whose
// header a signer then changed to counter 9: the signature is valid, but
// the AEAD binds the header the encryptor wrote.
func relabelled(t *testing.T, class *sealing.PublicKey, key crypto.Signer) *Image {
	meta := testMeta
	meta.SecurityCounter = 1
	img := build(t, meta, class)
	img.header.SecurityCounter = 9
	if err := img.Sign(key); err != nil {
		t.Fatal(err)
	}
	return img
}

func TestVerifyRefuses(t *testing.T) {
	ecdsaKey, mldsaKey, otherKey := signer(t, sigalg.ECDSAP256, 1), signer(t, sigalg.MLDSA65, 1), signer(t, sigalg.ECDSAP256, 2)
	class, otherClass := classKey(t, sealing.MLKEM768X25519), classKey(t, sealing.X25519)
	hybrid := [][32]byte{rootHash(t, ecdsaKey), rootHash(t, mldsaKey)}
	signedPlain := marshal(t, build(t, testMeta, nil, ecdsaKey, mldsaKey))
	signedEncrypted := marshal(t, build(t, testMeta, class.Public(), ecdsaKey, mldsaKey))
	hdr := headerSize(signedPlain)
	lastSigByte := len(signedPlain) - 1 // the ML-DSA-65 signature ends the image
	cases := []struct {
		name   string
		data   []byte
		policy Policy
		want   error
	}{
		{"unsigned", marshal(t, build(t, testMeta, nil)), Policy{RootKeyHashes: hybrid}, ErrUnsigned},
		{"no root key in policy", signedPlain, Policy{}, ErrNoRootKey},
		{"tampered payload", flip(signedPlain, hdr+3), Policy{RootKeyHashes: hybrid}, ErrMalformed},
		{"tampered payload digest", flip(signedPlain, hdr-1), Policy{RootKeyHashes: hybrid}, ErrMalformed},
		{"tampered security counter", flip(signedPlain, offCounter+3), Policy{RootKeyHashes: hybrid}, ErrBadSignature},
		{"tampered version", flip(signedPlain, offMajor+1), Policy{RootKeyHashes: hybrid}, ErrBadSignature},
		{"tampered type: app relabelled as ief", xor(signedPlain, offType, byte(TypeApplication^TypeIEF)), Policy{RootKeyHashes: hybrid}, ErrBadSignature},
		{"control: untouched", signedPlain, Policy{RootKeyHashes: hybrid, MinSecurityCounter: 7}, nil},
		{"tampered signature", flip(signedPlain, lastSigByte-10), Policy{RootKeyHashes: hybrid}, ErrBadSignature},
		{"signed by another key", marshal(t, build(t, testMeta, nil, otherKey)), Policy{RootKeyHashes: hybrid[:1]}, ErrUntrustedKey},
		{"hybrid: ML-DSA signature missing", marshal(t, build(t, testMeta, nil, ecdsaKey)), Policy{RootKeyHashes: hybrid}, ErrUntrustedKey},
		{"hybrid: ECDSA signature missing", marshal(t, build(t, testMeta, nil, mldsaKey, otherKey)), Policy{RootKeyHashes: hybrid}, ErrUntrustedKey},
		{"rolled back", signedPlain, Policy{RootKeyHashes: hybrid, MinSecurityCounter: 8}, ErrRollback},
		{"encrypted to another class key", signedEncrypted, Policy{RootKeyHashes: hybrid, ClassKey: otherClass}, ErrDecrypt},
		{"encrypted, device has no class key", signedEncrypted, Policy{RootKeyHashes: hybrid}, ErrEncryptedNoKey},
		{"ciphertext tampered before signing", marshal(t, tamperedCiphertext(t, class.Public(), ecdsaKey)), Policy{RootKeyHashes: hybrid[:1], ClassKey: class}, ErrDecrypt},
		{"header relabelled after encryption", marshal(t, relabelled(t, class.Public(), ecdsaKey)), Policy{RootKeyHashes: hybrid[:1], ClassKey: class}, ErrDecrypt},
		// The ROM's order: trust before rollback before decryption.
		{"forged and rolled back", marshal(t, build(t, Metadata{Type: TypeIEF}, nil, otherKey)), Policy{RootKeyHashes: hybrid[:1], MinSecurityCounter: 8}, ErrUntrustedKey},
		{"forged and encrypted, no class key", marshal(t, build(t, testMeta, class.Public(), otherKey)), Policy{RootKeyHashes: hybrid[:1]}, ErrUntrustedKey},
		{"rolled back and encrypted to another class", signedEncrypted, Policy{RootKeyHashes: hybrid, MinSecurityCounter: 8, ClassKey: otherClass}, ErrRollback},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, err := VerifyBytes(tc.data, tc.policy)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("control case refused: %v", err)
				}
				return
			}
			if !errors.Is(err, tc.want) || v != nil {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			for _, other := range []error{ErrMalformed, ErrUnsigned, ErrUntrustedKey, ErrBadSignature, ErrRollback, ErrEncryptedNoKey, ErrDecrypt, ErrNoRootKey} {
				if other != tc.want && errors.Is(err, other) {
					t.Fatalf("err = %v is also %v", err, other)
				}
			}
		})
	}
}

func TestVerifyNilAndZeroImage(t *testing.T) {
	policy := Policy{RootKeyHashes: [][32]byte{{1}}}
	for _, img := range []*Image{nil, {}} {
		if _, err := Verify(img, policy); !errors.Is(err, ErrMalformed) {
			t.Fatalf("Verify(%v) = %v", img, err)
		}
	}
}

func TestVerifyIgnoresOtherSigners(t *testing.T) {
	root, other := signer(t, sigalg.Ed25519, 1), signer(t, sigalg.MLDSA44, 1)
	img := build(t, testMeta, nil, other, root)
	img.sigs[0].Value[0] ^= 1 // a broken signature by a key the device does not trust
	if _, err := Verify(img, Policy{RootKeyHashes: [][32]byte{rootHash(t, root)}}); err != nil {
		t.Fatal(err)
	}
}

func TestDecrypt(t *testing.T) {
	class := classKey(t, sealing.MLKEM768)
	plain := build(t, testMeta, nil)
	if got, err := plain.Decrypt(nil); err != nil || !bytes.Equal(got, testCode) {
		t.Fatalf("plain image: %v", err)
	}
	enc := build(t, testMeta, class.Public())
	if _, err := enc.Decrypt(nil); !errors.Is(err, ErrEncryptedNoKey) {
		t.Fatalf("no key: %v", err)
	}
	// Same KEM, another key: refused by fingerprint before any decryption.
	other, _ := sealing.GenerateKey(sealing.MLKEM768)
	if _, err := enc.Decrypt(other); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("other key: %v", err)
	}
}

func TestBuilderRefuses(t *testing.T) {
	key := signer(t, sigalg.Ed25519, 1)
	class := classKey(t, sealing.X25519).Public()
	if _, err := New(Metadata{Type: 3}, testCode); err == nil {
		t.Error("New accepted image type 3")
	}
	if _, err := New(testMeta, nil); err == nil {
		t.Error("New accepted an empty payload")
	}
	if _, err := New(testMeta, make([]byte, MaxPayloadSize+1)); err == nil {
		t.Error("New accepted an oversized payload")
	}
	if err := build(t, testMeta, nil, key).Encrypt(class); !errors.Is(err, ErrAlreadySigned) {
		t.Errorf("Encrypt of a signed image: %v", err)
	}
	if err := build(t, testMeta, class).Encrypt(class); !errors.Is(err, ErrAlreadyEncrypted) {
		t.Errorf("second Encrypt: %v", err)
	}
	if err := build(t, testMeta, nil).Encrypt(nil); err == nil {
		t.Error("Encrypt to a nil key")
	}
	if err := build(t, testMeta, nil, key).Sign(key); err == nil {
		t.Error("Sign twice with one key")
	}
	img := build(t, testMeta, nil)
	for i := range MaxSignatures {
		if err := img.Sign(signer(t, sigalg.Ed25519, byte(10+i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := img.Sign(key); err == nil {
		t.Errorf("Sign beyond %d signatures", MaxSignatures)
	}
}

func TestNewCopiesAndAccessorsCopy(t *testing.T) {
	payload := bytes.Clone(testCode)
	img, err := New(testMeta, payload)
	if err != nil {
		t.Fatal(err)
	}
	payload[0] ^= 1
	if err := img.Encrypt(classKey(t, sealing.X25519).Public()); err != nil {
		t.Fatal(err)
	}
	if err := img.Sign(signer(t, sigalg.Ed25519, 1)); err != nil {
		t.Fatal(err)
	}
	h := img.Header()
	h.Encryption.Encapsulation[0] ^= 1
	img.Payload()[0] ^= 1
	img.Signatures()[0].Value[0] ^= 1
	got, err := Verify(img, Policy{RootKeyHashes: [][32]byte{rootHash(t, signer(t, sigalg.Ed25519, 1))}, ClassKey: classKey(t, sealing.X25519)})
	if err != nil || !bytes.Equal(got.Payload, testCode) {
		t.Fatalf("image changed through a caller's copy: %v", err)
	}
}

func TestParseTypeAndVersion(t *testing.T) {
	for in, want := range map[string]ImageType{"ief": TypeIEF, "APP": TypeApplication, "application": TypeApplication} {
		if got, err := ParseImageType(in); err != nil || got != want {
			t.Errorf("ParseImageType(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParseImageType("bootloader"); err == nil {
		t.Error("ParseType accepted bootloader")
	}
	if TypeIEF.String() != "ief" || TypeApplication.String() != "app" || ImageType(9).String() != "type-9" {
		t.Error("ImageType.String")
	}
	if v, err := ParseVersion("1.20.65535"); err != nil || v != (Version{1, 20, 65535}) || v.String() != "1.20.65535" {
		t.Errorf("ParseVersion: %v %v", v, err)
	}
	for _, bad := range []string{"", "1", "1.2", "1.2.3.4", "1.2.65536", "1.-2.3", "01.2.3", "1.2.x", "v1.2.3", "1..3"} {
		if _, err := ParseVersion(bad); err == nil {
			t.Errorf("ParseVersion(%q) accepted", bad)
		}
	}
}
