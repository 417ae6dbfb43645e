package sigalg

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"testing"
)

// fuzzSeeds adds a valid encoding of every suite, plus its truncations and
// a flipped byte, so the fuzzer starts from each parser path.
func fuzzSeeds(f *testing.F, encode func(crypto.Signer) []byte) {
	for _, id := range allIDs {
		key, err := mustSuite(f, id).DeriveKey(bytes.Repeat([]byte{byte(len(id))}, SeedSize))
		if err != nil {
			f.Fatal(err)
		}
		der := encode(key)
		f.Add(der)
		f.Add(der[:len(der)/2])
		flipped := append([]byte(nil), der...)
		flipped[len(flipped)-1] ^= 0xff
		f.Add(flipped)
	}
	f.Add([]byte{})
	f.Add([]byte{0x30, 0x80})
}

func FuzzParsePublicKey(f *testing.F) {
	fuzzSeeds(f, func(k crypto.Signer) []byte { der, _ := MarshalPublicKey(k.Public()); return der })
	f.Fuzz(func(t *testing.T, der []byte) {
		pub, err := ParsePublicKey(der)
		if err != nil {
			return
		}
		again, err := MarshalPublicKey(pub)
		if err != nil || !bytes.Equal(again, der) {
			t.Fatalf("accepted a non-canonical encoding (%v)", err)
		}
		if _, err := SuiteOf(pub); err != nil {
			t.Fatalf("accepted a key of no suite: %v", err)
		}
	})
}

func FuzzParsePrivateKey(f *testing.F) {
	fuzzSeeds(f, func(k crypto.Signer) []byte { der, _ := MarshalPrivateKey(k); return der })
	f.Fuzz(func(t *testing.T, der []byte) {
		key, err := ParsePrivateKey(der)
		if err != nil {
			return
		}
		suite, err := SuiteOf(key)
		if err != nil {
			t.Fatalf("accepted a key of no suite: %v", err)
		}
		again, err := MarshalPrivateKey(key)
		if err != nil {
			t.Fatalf("cannot re-encode an accepted key: %v", err)
		}
		back, err := ParsePrivateKey(again)
		if err != nil || !back.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(key.Public()) {
			t.Fatalf("re-encoded key does not round-trip: %v", err)
		}
		if suite.ID() == ECDSAP256 || suite.ID() == Ed25519 {
			// A sound key signs verifiably; expanded ML-DSA keys from
			// arbitrary bytes carry no such promise and are only parsed.
			sig, err := suite.Sign(key, []byte("fuzz"))
			if err != nil || suite.Verify(key.Public(), []byte("fuzz"), sig) != nil {
				t.Fatalf("accepted key cannot sign verifiably: %v", err)
			}
		}
	})
}

func FuzzParseKeyPEM(f *testing.F) {
	fuzzSeeds(f, func(k crypto.Signer) []byte { p, _ := EncodePrivateKeyPEM(k); return p })
	fuzzSeeds(f, func(k crypto.Signer) []byte { p, _ := EncodePublicKeyPEM(k.Public()); return p })
	f.Fuzz(func(t *testing.T, data []byte) {
		key, err := ParseKeyPEM(data)
		if err == nil && key == nil {
			t.Fatal("nil key without error")
		}
	})
}

func BenchmarkSuites(b *testing.B) {
	msg := bytes.Repeat([]byte{0x5a}, 64)
	for _, id := range allIDs {
		s := mustSuite(b, id)
		key, _ := s.GenerateKey(rand.Reader)
		sig, _ := s.Sign(key, msg)
		b.Run(string(id)+"/generate", func(b *testing.B) {
			for b.Loop() {
				if _, err := s.GenerateKey(rand.Reader); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(string(id)+"/derive", func(b *testing.B) {
			seed := make([]byte, SeedSize)
			for b.Loop() {
				if _, err := s.DeriveKey(seed); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(string(id)+"/sign", func(b *testing.B) {
			for b.Loop() {
				if _, err := s.Sign(key, msg); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(string(id)+"/verify", func(b *testing.B) {
			for b.Loop() {
				if err := s.Verify(key.Public(), msg, sig); err != nil {
					b.Fatal(err)
				}
			}
		})
		spki, _ := MarshalPublicKey(key.Public())
		b.Run(string(id)+"/parse-public-key", func(b *testing.B) {
			for b.Loop() {
				if _, err := ParsePublicKey(spki); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
