package sealing

import (
	"bytes"
	"errors"
	"testing"
)

var allKEMs = []KEM{MLKEM768X25519, MLKEM768, X25519}

// testKeys caches one key pair per KEM: generation is the slow part and
// the tests never change a key.
var testKeys = map[KEM]*PrivateKey{}

func testKey(tb testing.TB, kem KEM) *PrivateKey {
	tb.Helper()
	if k, ok := testKeys[kem]; ok {
		return k
	}
	k, err := GenerateKey(kem)
	if err != nil {
		tb.Fatal(err)
	}
	testKeys[kem] = k
	return k
}

func TestSealOpenRoundTrip(t *testing.T) {
	for _, kem := range allKEMs {
		t.Run(string(kem), func(t *testing.T) {
			priv := testKey(t, kem)
			for _, size := range []int{0, 1, 32, 4096} {
				msg := bytes.Repeat([]byte{0xa5}, size)
				sealed, err := Seal(priv.Public(), []byte("info"), []byte("aad"), msg)
				if err != nil {
					t.Fatal(err)
				}
				if want := idSize + kem.EncapsulationSize() + size + Overhead; len(sealed) != want {
					t.Fatalf("sealed %d bytes to %d, want %d", size, len(sealed), want)
				}
				got, err := Open(priv, []byte("info"), []byte("aad"), sealed)
				if err != nil || !bytes.Equal(got, msg) {
					t.Fatalf("open %d bytes: %v", size, err)
				}
			}
		})
	}
}

func TestSealIsRandomized(t *testing.T) {
	pub := testKey(t, X25519).Public()
	a, _ := Seal(pub, nil, nil, []byte("same"))
	b, _ := Seal(pub, nil, nil, []byte("same"))
	if bytes.Equal(a, b) {
		t.Fatal("two seals of the same message are equal")
	}
}

func TestOpenRefuses(t *testing.T) {
	for _, kem := range allKEMs {
		t.Run(string(kem), func(t *testing.T) {
			priv := testKey(t, kem)
			other, err := GenerateKey(kem)
			if err != nil {
				t.Fatal(err)
			}
			info, aad, msg := []byte("hallmark test v1"), []byte("header"), []byte("secret firmware")
			sealed, err := Seal(priv.Public(), info, aad, msg)
			if err != nil {
				t.Fatal(err)
			}
			encEnd := idSize + kem.EncapsulationSize()
			flip := func(i int) []byte {
				c := bytes.Clone(sealed)
				c[i] ^= 0x01
				return c
			}
			cases := []struct {
				name      string
				key       *PrivateKey
				info, aad []byte
				sealed    []byte
			}{
				{"wrong key", other, info, aad, sealed},
				{"wrong info", priv, []byte("hallmark test v2"), aad, sealed},
				{"wrong aad", priv, info, []byte("headex"), sealed},
				{"no aad", priv, info, nil, sealed},
				{"tampered encapsulation", priv, info, aad, flip(idSize)},
				{"tampered encapsulation end", priv, info, aad, flip(encEnd - 1)},
				{"tampered ciphertext", priv, info, aad, flip(encEnd)},
				{"tampered tag", priv, info, aad, flip(len(sealed) - 1)},
				{"empty", priv, info, aad, nil},
				{"only the KEM", priv, info, aad, sealed[:idSize]},
				{"truncated encapsulation", priv, info, aad, sealed[:encEnd-1]},
				{"truncated tag", priv, info, aad, sealed[:len(sealed)-1]},
				{"no tag", priv, info, aad, sealed[:encEnd+Overhead-1]},
				{"extra byte", priv, info, aad, append(bytes.Clone(sealed), 0)},
				{"unknown KEM", priv, info, aad, append([]byte{0xff, 0xff}, sealed[idSize:]...)},
			}
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					got, err := Open(tc.key, tc.info, tc.aad, tc.sealed)
					if !errors.Is(err, ErrOpen) || got != nil {
						t.Fatalf("Open = %q, %v; want ErrOpen", got, err)
					}
				})
			}
		})
	}
}

func TestOpenRefusesMismatchedKEM(t *testing.T) {
	for _, sealedTo := range allKEMs {
		for _, openWith := range allKEMs {
			if sealedTo == openWith {
				continue
			}
			t.Run(string(sealedTo)+" with "+string(openWith), func(t *testing.T) {
				sealed, err := Seal(testKey(t, sealedTo).Public(), nil, nil, []byte("x"))
				if err != nil {
					t.Fatal(err)
				}
				_, err = Open(testKey(t, openWith), nil, nil, sealed)
				if !errors.Is(err, ErrWrongKEM) || !errors.Is(err, ErrOpen) {
					t.Fatalf("err = %v, want ErrWrongKEM and ErrOpen", err)
				}
			})
		}
	}
}

func TestWrapUnwrap(t *testing.T) {
	for _, kem := range allKEMs {
		t.Run(string(kem), func(t *testing.T) {
			priv := testKey(t, kem)
			secret := bytes.Repeat([]byte{7}, 32)
			wrapped, err := priv.Public().Wrap(secret)
			if err != nil {
				t.Fatal(err)
			}
			got, err := priv.Unwrap(wrapped)
			if err != nil || !bytes.Equal(got, secret) {
				t.Fatalf("unwrap: %v", err)
			}
			// Wrapping is domain-separated from other uses of the key.
			if _, err := Open(priv, []byte("hallmark firmware payload v1"), nil, wrapped); !errors.Is(err, ErrOpen) {
				t.Fatalf("wrapped key opened under another info: %v", err)
			}
			sealed, _ := Seal(priv.Public(), nil, nil, secret)
			if _, err := priv.Unwrap(sealed); !errors.Is(err, ErrOpen) {
				t.Fatalf("Unwrap accepted data sealed with an empty info: %v", err)
			}
		})
	}
}

func TestSealerDetached(t *testing.T) {
	for _, kem := range allKEMs {
		t.Run(string(kem), func(t *testing.T) {
			priv := testKey(t, kem)
			s, err := NewSealer(priv.Public(), []byte("info"))
			if err != nil {
				t.Fatal(err)
			}
			enc := s.Encapsulation()
			if len(enc) != kem.EncapsulationSize() {
				t.Fatalf("encapsulation of %d bytes, want %d", len(enc), kem.EncapsulationSize())
			}
			aad := append([]byte("header with "), enc...)
			ct, err := s.Seal(aad, []byte("payload"))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Seal(aad, []byte("again")); err == nil {
				t.Fatal("a Sealer sealed a second message")
			}
			got, err := OpenDetached(priv, []byte("info"), enc, aad, ct)
			if err != nil || string(got) != "payload" {
				t.Fatalf("OpenDetached: %q, %v", got, err)
			}
			if _, err := OpenDetached(priv, []byte("info"), enc[1:], aad, ct); !errors.Is(err, ErrOpen) {
				t.Fatalf("short encapsulation: %v", err)
			}
			if _, err := OpenDetached(nil, []byte("info"), enc, aad, ct); !errors.Is(err, ErrOpen) {
				t.Fatalf("nil key: %v", err)
			}
		})
	}
}

func TestNilKeys(t *testing.T) {
	if _, err := Seal(nil, nil, nil, nil); err == nil {
		t.Fatal("Seal to a nil key succeeded")
	}
	if _, err := Open(nil, nil, nil, []byte{0, 0x20}); err == nil {
		t.Fatal("Open with a nil key succeeded")
	}
}

func TestLookup(t *testing.T) {
	for _, tc := range []struct {
		name string
		want KEM
	}{
		{"ml-kem-768-x25519", MLKEM768X25519}, {"X-Wing", MLKEM768X25519}, {" ML-KEM-768 ", MLKEM768}, {"x25519", X25519},
	} {
		got, err := Lookup(tc.name)
		if err != nil || got != tc.want {
			t.Errorf("Lookup(%q) = %q, %v", tc.name, got, err)
		}
	}
	for _, bad := range []string{"", "ml-kem-1024", "p256"} {
		if _, err := Lookup(bad); !errors.Is(err, ErrUnknownKEM) {
			t.Errorf("Lookup(%q): %v, want ErrUnknownKEM", bad, err)
		}
	}
	if names := Names(); len(names) != len(kems) || names[0] != string(DefaultKEM) {
		t.Errorf("Names() = %v", names)
	}
	for _, kem := range allKEMs {
		if got, err := KEMFromID(kem.ID()); err != nil || got != kem {
			t.Errorf("KEMFromID(0x%04x) = %q, %v", kem.ID(), got, err)
		}
		// The identifiers are HPKE's, so they must agree with crypto/hpke.
		if kem.ID() != kems[kem].hpke().ID() {
			t.Errorf("%s: identifier 0x%04x, crypto/hpke says 0x%04x", kem, kem.ID(), kems[kem].hpke().ID())
		}
	}
	if _, err := KEMFromID(0x0010); !errors.Is(err, ErrUnknownKEM) {
		t.Errorf("KEMFromID(P-256): %v", err)
	}
	if _, err := GenerateKey("rsa"); !errors.Is(err, ErrUnknownKEM) {
		t.Errorf("GenerateKey(rsa): %v", err)
	}
}
