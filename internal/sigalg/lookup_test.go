package sigalg

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"

	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
)

func TestIDSuite(t *testing.T) {
	for _, id := range allIDs {
		s, err := id.Suite()
		if err != nil || s.ID() != id {
			t.Fatalf("%s.Suite() = %v, %v", id, s, err)
		}
	}
	if s, err := ID("ML-DSA-65").Suite(); err != nil || s.ID() != MLDSA65 {
		t.Fatalf(`ID("ML-DSA-65").Suite() = %v, %v; want ml-dsa-65 as Lookup accepts it`, s, err)
	}
	for _, id := range []ID{"", "rsa-2048", "ml-dsa-66"} {
		s, err := id.Suite()
		if s != nil || !errors.Is(err, ErrUnknownAlgorithm) {
			t.Fatalf("ID(%q).Suite() = %v, %v; want ErrUnknownAlgorithm", id, s, err)
		}
		if !strings.Contains(err.Error(), string(ECDSAP256)) {
			t.Fatalf("error %q does not list the known suites", err)
		}
	}
}

// TestSuiteOfNil: a nil or typed-nil key is an error, never a panic nor a
// nil Suite with a nil error (which callers would then call a method on).
func TestSuiteOfNil(t *testing.T) {
	cases := map[string]any{
		"nil":                   nil,
		"nil *ecdsa.PublicKey":  (*ecdsa.PublicKey)(nil),
		"nil *ecdsa.PrivateKey": (*ecdsa.PrivateKey)(nil),
		"nil ed25519 key":       ed25519.PublicKey(nil),
		"short ed25519 key":     ed25519.PublicKey{1, 2, 3},
		"nil ML-DSA key":        (*mldsa65.PublicKey)(nil),
		"nil crypto.Signer":     crypto.Signer(nil),
		"a string":              "ecdsa-p256",
	}
	for name, key := range cases {
		t.Run(name, func(t *testing.T) {
			s, err := SuiteOf(key)
			if s != nil || !errors.Is(err, ErrUnknownAlgorithm) {
				t.Fatalf("SuiteOf = %v, %v; want ErrUnknownAlgorithm", s, err)
			}
		})
	}
	if _, err := Sign((*ecdsa.PrivateKey)(nil), []byte("m")); !errors.Is(err, ErrUnknownAlgorithm) {
		t.Fatalf("Sign with a nil key = %v, want ErrUnknownAlgorithm", err)
	}
}

func TestParseWithSuite(t *testing.T) {
	for _, id := range allIDs {
		key, err := mustSuite(t, id).DeriveKey(make([]byte, SeedSize))
		if err != nil {
			t.Fatal(err)
		}
		spki, _ := MarshalPublicKey(key.Public())
		pub, s, err := ParsePublicKeyWithSuite(spki)
		if err != nil || s.ID() != id || !key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(pub) {
			t.Fatalf("%s: ParsePublicKeyWithSuite = %v, %v", id, s, err)
		}
		pkcs8, _ := MarshalPrivateKey(key)
		priv, s, err := ParsePrivateKeyWithSuite(pkcs8)
		if err != nil || s.ID() != id || !key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(priv.Public()) {
			t.Fatalf("%s: ParsePrivateKeyWithSuite = %v, %v", id, s, err)
		}
	}
	if pub, s, err := ParsePublicKeyWithSuite([]byte{0x30, 0}); pub != nil || s != nil || !errors.Is(err, ErrMalformedKey) {
		t.Fatalf("ParsePublicKeyWithSuite(garbage) = %v, %v, %v", pub, s, err)
	}
	if key, s, err := ParsePrivateKeyWithSuite([]byte{0x30, 0}); key != nil || s != nil || !errors.Is(err, ErrMalformedKey) {
		t.Fatalf("ParsePrivateKeyWithSuite(garbage) = %v, %v, %v", key, s, err)
	}
}
