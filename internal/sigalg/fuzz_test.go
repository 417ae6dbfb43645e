package sigalg

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
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
	// The degenerate keys the policy refuses, so that the fuzzer starts
	// at its edges: ML-DSA with t1 = 0 and P-256 G, public and private.
	for _, m := range []*mldsaSuite{registry[MLDSA44].(*mldsaSuite), registry[MLDSA87].(*mldsaSuite)} {
		pk, err := m.scheme.UnmarshalBinaryPublicKey(make([]byte, m.scheme.PublicKeySize()))
		if err != nil {
			f.Fatal(err)
		}
		der, _ := MarshalPublicKey(pk)
		f.Add(der)
	}
	one := make([]byte, 32)
	one[31] = 1
	g, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), one)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(encode(g))
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
		// Every accepted key signs verifiably, expanded ML-DSA keys too
		// (their consistency is checked), and passes the key policy.
		sig, err := suite.Sign(key, []byte("fuzz"))
		if err != nil || suite.Verify(key.Public(), []byte("fuzz"), sig) != nil {
			t.Fatalf("accepted key cannot sign verifiably: %v", err)
		}
		if err := CheckPublicKey(key.Public()); err != nil {
			t.Fatalf("accepted a private key whose public key the policy refuses: %v", err)
		}
	})
}

// FuzzMLDSAPublicKeyPolicy compares the packed t1 reader of the key policy
// with a plain bit-by-bit count, at every level, on arbitrary t1 bytes.
func FuzzMLDSAPublicKeyPolicy(f *testing.F) {
	honest, _ := registry[MLDSA87].GenerateKey(rand.Reader)
	raw, _ := honest.Public().(interface{ MarshalBinary() ([]byte, error) }).MarshalBinary()
	f.Add(raw[mldsaSeedSize:])
	f.Add(make([]byte, 8*mldsaT1PolySize))
	f.Add(bytes.Repeat([]byte{0xff}, 8*mldsaT1PolySize))
	f.Add(bytes.Repeat([]byte{0x01, 0x04, 0x10, 0x40, 0x00}, 8*mldsaN/4))
	f.Fuzz(func(t *testing.T, t1 []byte) {
		for _, id := range []ID{MLDSA44, MLDSA65, MLDSA87} {
			m := registry[id].(*mldsaSuite)
			raw := make([]byte, m.scheme.PublicKeySize())
			copy(raw[mldsaSeedSize:], t1)
			want := true
			for i := range m.k {
				var seen [1 << mldsaT1Bits]bool
				distinct := 0
				for j := range mldsaN {
					var c uint32
					for b := range mldsaT1Bits {
						bit := (i*mldsaN+j)*mldsaT1Bits + b
						c |= uint32(raw[mldsaSeedSize+bit/8]>>(bit%8)&1) << b
					}
					if !seen[c] {
						seen[c] = true
						distinct++
					}
				}
				want = want && distinct >= mldsaT1MinDistinct
			}
			err := m.checkPublicKey(raw)
			if (err == nil) != want {
				t.Fatalf("%s: policy says %v, the plain count says acceptable = %v", id, err, want)
			}
			if err != nil && !errors.Is(err, ErrWeakKey) {
				t.Fatalf("%s: refusal %v does not wrap ErrWeakKey", id, err)
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
