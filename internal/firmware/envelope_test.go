package firmware

import (
	"crypto"
	"errors"
	"slices"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sealing"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// TestVerifyEnvelope: without a class key, VerifyEnvelope refuses what
// Verify refuses before decryption, with the same sentinel, and accepts an
// encrypted image Verify could only open with the key.
func TestVerifyEnvelope(t *testing.T) {
	ec, pq, other := signer(t, sigalg.ECDSAP256, 1), signer(t, sigalg.MLDSA65, 1), signer(t, sigalg.Ed25519, 3)
	slots := [][32]byte{rootHash(t, ec), rootHash(t, pq)}
	class := classKey(t, sealing.X25519)
	hybrid := Policy{RootKeyHashes: slots}
	cases := []struct {
		name   string
		class  *sealing.PublicKey
		policy Policy
		keys   []crypto.Signer
		want   error
	}{
		{"hybrid, clear", nil, hybrid, []crypto.Signer{ec, pq}, nil},
		{"hybrid, encrypted", class.Public(), hybrid, []crypto.Signer{pq, ec}, nil},
		{"one of two roots", class.Public(), hybrid, []crypto.Signer{ec}, ErrUntrustedKey},
		{"a stranger", nil, hybrid, []crypto.Signer{other}, ErrUntrustedKey},
		{"under a retired root only", nil, Policy{RootKeyHashes: slots, Retired: 2}, []crypto.Signer{pq}, ErrRetiredRoot},
		{"unsigned", nil, hybrid, nil, ErrUnsigned},
		{"no live root", nil, Policy{RootKeyHashes: slots, Retired: 3}, []crypto.Signer{ec, pq}, ErrNoRootKey},
		{"below the counter", nil, Policy{RootKeyHashes: slots, MinSecurityCounter: 8}, []crypto.Signer{ec, pq}, ErrRollback},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			img := mustParse(t, marshal(t, build(t, testMeta, c.class, c.keys...)))
			roots, err := VerifyEnvelope(img, c.policy)
			if !errors.Is(err, c.want) {
				t.Fatalf("VerifyEnvelope = %v, want %v", err, c.want)
			}
			if c.want != nil {
				if _, verr := Verify(img, c.policy); !errors.Is(verr, c.want) {
					t.Fatalf("Verify = %v, VerifyEnvelope agreed on %v", verr, c.want)
				}
				return
			}
			if want := []identity.ID{identity.ID(slots[0]), identity.ID(slots[1])}; !slices.Equal(roots, want) {
				t.Fatalf("roots = %v, want %v", roots, want)
			}
			if c.class != nil {
				if _, err := Verify(img, c.policy); !errors.Is(err, ErrEncryptedNoKey) {
					t.Fatalf("Verify without the class key = %v, want ErrEncryptedNoKey", err)
				}
			}
		})
	}
	// A payload changed after signing is malformed for both.
	data := marshal(t, build(t, testMeta, nil, ec, pq))
	img, err := Parse(flip(data, headerSize(data)+1))
	if err == nil {
		_, err = VerifyEnvelope(img, hybrid)
	}
	if !errors.Is(err, ErrMalformed) {
		t.Fatalf("changed payload: %v, want ErrMalformed", err)
	}
	if _, err := VerifyEnvelope(nil, hybrid); !errors.Is(err, ErrMalformed) {
		t.Fatalf("nil image: %v", err)
	}
}
