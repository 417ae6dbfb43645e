package sealing

import (
	"bytes"
	"testing"
)

// keySeeds adds every KEM's encoding, a truncation and a flipped last byte.
func keySeeds(f *testing.F, encode func(*PrivateKey) []byte) {
	for _, kem := range allKEMs {
		der := encode(testKey(f, kem))
		f.Add(der)
		f.Add(der[:len(der)/2])
		flipped := bytes.Clone(der)
		flipped[len(flipped)-1] ^= 0xff
		f.Add(flipped)
	}
	f.Add([]byte{})
	f.Add([]byte{keyFormatVersion, kindPublic, 0, 0x20})
}

func FuzzParsePublicKey(f *testing.F) {
	keySeeds(f, func(k *PrivateKey) []byte { return MarshalPublicKey(k.Public()) })
	f.Fuzz(func(t *testing.T, data []byte) {
		pub, err := ParsePublicKey(data)
		if err != nil {
			return
		}
		again := MarshalPublicKey(pub)
		if !bytes.Equal(again, data) {
			t.Fatal("accepted a non-canonical public key")
		}
		if _, err := Seal(pub, nil, nil, []byte("x")); err != nil {
			t.Fatalf("accepted a public key that cannot be sealed to: %v", err)
		}
	})
}

func FuzzParsePrivateKey(f *testing.F) {
	keySeeds(f, func(k *PrivateKey) []byte { der, _ := MarshalPrivateKey(k); return der })
	f.Fuzz(func(t *testing.T, data []byte) {
		priv, err := ParsePrivateKey(data)
		if err != nil {
			return
		}
		again, err := MarshalPrivateKey(priv)
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("accepted a non-canonical private key (%v)", err)
		}
		sealed, err := priv.Public().Wrap([]byte("k"))
		if err != nil {
			t.Fatal(err)
		}
		if got, err := priv.Unwrap(sealed); err != nil || string(got) != "k" {
			t.Fatalf("parsed key does not open for its own public key: %v", err)
		}
	})
}

func FuzzParseKeyPEM(f *testing.F) {
	for _, kem := range allKEMs {
		privPEM, _ := EncodePrivateKeyPEM(testKey(f, kem))
		f.Add(privPEM)
		f.Add(EncodePublicKeyPEM(testKey(f, kem).Public()))
	}
	f.Add([]byte("-----BEGIN HALLMARK KEM PUBLIC KEY-----\n-----END HALLMARK KEM PUBLIC KEY-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		key, err := ParseKeyPEM(data)
		if err != nil {
			return
		}
		var again any
		switch k := key.(type) {
		case *PrivateKey:
			pemBytes, err := EncodePrivateKeyPEM(k)
			if err != nil {
				t.Fatal(err)
			}
			again, err = ParseKeyPEM(pemBytes)
			if err != nil || !again.(*PrivateKey).Public().Equal(k.Public()) {
				t.Fatalf("private key does not survive re-encoding: %v", err)
			}
		case *PublicKey:
			again, err = ParseKeyPEM(EncodePublicKeyPEM(k))
			if err != nil || !again.(*PublicKey).Equal(k) {
				t.Fatalf("public key does not survive re-encoding: %v", err)
			}
		default:
			t.Fatalf("ParseKeyPEM returned %T", key)
		}
	})
}

// FuzzOpen feeds arbitrary sealed data to every KEM's key. HPKE is
// non-malleable, so the only input that may open is one of the seeds that
// was really sealed; everything else must fail without panicking.
func FuzzOpen(f *testing.F) {
	info, aad, msg := []byte("hallmark fuzz v1"), []byte("aad"), []byte("fuzz plaintext")
	var genuine [][]byte
	for _, kem := range allKEMs {
		sealed, err := Seal(testKey(f, kem).Public(), info, aad, msg)
		if err != nil {
			f.Fatal(err)
		}
		genuine = append(genuine, sealed)
		f.Add(sealed)
		f.Add(sealed[:len(sealed)-1])
	}
	f.Add([]byte{0x64, 0x7a})
	f.Fuzz(func(t *testing.T, sealed []byte) {
		for _, kem := range allKEMs {
			got, err := Open(testKey(t, kem), info, aad, sealed)
			if err != nil {
				continue
			}
			if !bytes.Equal(got, msg) || !containsBytes(genuine, sealed) {
				t.Fatalf("opened forged data to %q", got)
			}
		}
	})
}

func containsBytes(list [][]byte, b []byte) bool {
	for _, x := range list {
		if bytes.Equal(x, b) {
			return true
		}
	}
	return false
}
