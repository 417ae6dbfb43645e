package sigalg

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
)

var allIDs = []ID{ECDSAP256, Ed25519, MLDSA44, MLDSA65, MLDSA87}

func mustSuite(t testing.TB, id ID) Suite {
	t.Helper()
	s, err := id.Suite()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRegistryHasEverySuite(t *testing.T) {
	if got, want := strings.Join(Names(), ","), "ecdsa-p256,ed25519,ml-dsa-44,ml-dsa-65,ml-dsa-87"; got != want {
		t.Fatalf("Names() = %s, want %s", got, want)
	}
	for alias, want := range map[string]ID{"P256": ECDSAP256, " mldsa65 ": MLDSA65, "ED25519": Ed25519} {
		s, err := Lookup(alias)
		if err != nil || s.ID() != want {
			t.Errorf("Lookup(%q) = %v, %v; want %s", alias, s, err, want)
		}
	}
	if _, err := Lookup("rsa-2048"); !errors.Is(err, ErrUnknownAlgorithm) {
		t.Errorf("Lookup(rsa-2048) error = %v, want ErrUnknownAlgorithm", err)
	}
}

func TestSignVerifyRoundTrip(t *testing.T) {
	msg := []byte("hallmark round trip")
	for _, id := range allIDs {
		t.Run(string(id), func(t *testing.T) {
			s := mustSuite(t, id)
			key, err := s.GenerateKey(rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			sig, err := s.Sign(key, msg)
			if err != nil {
				t.Fatal(err)
			}
			if len(sig) > s.SignatureSize() {
				t.Errorf("signature is %d bytes, SignatureSize says at most %d", len(sig), s.SignatureSize())
			}
			if err := s.Verify(key.Public(), msg, sig); err != nil {
				t.Fatalf("Verify(valid) = %v", err)
			}
			tampered := append([]byte(nil), msg...)
			tampered[0] ^= 1
			if err := s.Verify(key.Public(), tampered, sig); !errors.Is(err, ErrInvalidSignature) {
				t.Errorf("Verify(tampered message) = %v, want ErrInvalidSignature", err)
			}
			badSig := append([]byte(nil), sig...)
			badSig[len(badSig)/2] ^= 0x40
			if err := s.Verify(key.Public(), msg, badSig); !errors.Is(err, ErrInvalidSignature) {
				t.Errorf("Verify(tampered signature) = %v, want ErrInvalidSignature", err)
			}
			other, _ := s.GenerateKey(rand.Reader)
			if err := s.Verify(other.Public(), msg, sig); !errors.Is(err, ErrInvalidSignature) {
				t.Errorf("Verify(other key) = %v, want ErrInvalidSignature", err)
			}
			if got, err := SuiteOf(key); err != nil || got.ID() != id {
				t.Errorf("SuiteOf(key) = %v, %v", got, err)
			}
		})
	}
}

func TestSuitesRefuseForeignKeys(t *testing.T) {
	keys := map[ID]crypto.Signer{}
	for _, id := range allIDs {
		k, err := mustSuite(t, id).GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		keys[id] = k
	}
	for _, id := range allIDs {
		for _, other := range allIDs {
			if id == other {
				continue
			}
			s := mustSuite(t, id)
			if _, err := s.Sign(keys[other], []byte("m")); !errors.Is(err, ErrUnknownAlgorithm) {
				t.Errorf("%s.Sign(%s key) = %v, want ErrUnknownAlgorithm", id, other, err)
			}
			if err := s.Verify(keys[other].Public(), []byte("m"), []byte("sig")); err == nil {
				t.Errorf("%s.Verify(%s key) succeeded", id, other)
			}
		}
	}
}

func TestDeriveIsDeterministic(t *testing.T) {
	seed := bytes.Repeat([]byte{0x42}, SeedSize)
	otherSeed := bytes.Repeat([]byte{0x43}, SeedSize)
	for _, id := range allIDs {
		t.Run(string(id), func(t *testing.T) {
			s := mustSuite(t, id)
			a, err := s.DeriveKey(seed)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := s.DeriveKey(seed)
			c, _ := s.DeriveKey(otherSeed)
			if !a.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(b.Public()) {
				t.Error("same seed gave different keys")
			}
			if a.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(c.Public()) {
				t.Error("different seeds gave the same key")
			}
			for _, n := range []int{0, 31, 33, 64} {
				if _, err := s.DeriveKey(make([]byte, n)); err == nil {
					t.Errorf("DeriveKey(%d-byte seed) succeeded", n)
				}
			}
		})
	}
}

// TestP256DeriveMethod recomputes the documented derivation independently:
// the scalar is HMAC-SHA256(seed, label || 0x00) when that is below n.
func TestP256DeriveMethod(t *testing.T) {
	for i := range 16 {
		seed := make([]byte, SeedSize)
		seed[0] = byte(i)
		key, err := mustSuite(t, ECDSAP256).DeriveKey(seed)
		if err != nil {
			t.Fatal(err)
		}
		mac := hmac.New(sha256.New, seed)
		mac.Write([]byte("hallmark sigalg ecdsa-p256 derive v1"))
		mac.Write([]byte{0})
		raw, err := key.(*ecdsa.PrivateKey).Bytes()
		if err != nil {
			t.Fatal(err)
		}
		if want := mac.Sum(nil); !bytes.Equal(raw, want) {
			t.Fatalf("seed %d: scalar %x, want %x", i, raw, want)
		}
	}
}

// TestEd25519RFC8032 checks test 1 of RFC 8032 section 7.1 (empty message).
func TestEd25519RFC8032(t *testing.T) {
	seed, _ := hex.DecodeString("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
	wantPub := "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
	wantSig := "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
	s := mustSuite(t, Ed25519)
	key, err := s.DeriveKey(seed)
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(key.Public().(ed25519.PublicKey)); got != wantPub {
		t.Errorf("public key %s, want %s", got, wantPub)
	}
	sig, _ := s.Sign(key, nil)
	if got := hex.EncodeToString(sig); got != wantSig {
		t.Errorf("signature %s, want %s", got, wantSig)
	}
}

func TestKeyEncodingRoundTrip(t *testing.T) {
	for _, id := range allIDs {
		t.Run(string(id), func(t *testing.T) {
			s := mustSuite(t, id)
			key, _ := s.GenerateKey(rand.Reader)
			privPEM, err := EncodePrivateKeyPEM(key)
			if err != nil {
				t.Fatal(err)
			}
			pubPEM, err := EncodePublicKeyPEM(key.Public())
			if err != nil {
				t.Fatal(err)
			}
			back, err := ParsePrivateKeyPEM(privPEM)
			if err != nil {
				t.Fatalf("ParsePrivateKeyPEM: %v", err)
			}
			if !back.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(key.Public()) {
				t.Fatal("private key changed in a PEM round trip")
			}
			again, _ := EncodePrivateKeyPEM(back)
			if !bytes.Equal(again, privPEM) {
				t.Error("private key PEM is not stable across a round trip")
			}
			pub, err := ParsePublicKeyPEM(pubPEM)
			if err != nil {
				t.Fatalf("ParsePublicKeyPEM: %v", err)
			}
			sig, _ := s.Sign(back, []byte("after round trip"))
			if err := s.Verify(pub, []byte("after round trip"), sig); err != nil {
				t.Fatalf("signature by parsed key under parsed public key: %v", err)
			}
			fromPriv, err := ParsePublicKeyPEM(privPEM)
			if err != nil || !fromPriv.(interface{ Equal(crypto.PublicKey) bool }).Equal(pub) {
				t.Errorf("ParsePublicKeyPEM(private PEM) = %v, %v", fromPriv, err)
			}
			if _, err := ParsePrivateKeyPEM(pubPEM); !errors.Is(err, ErrMalformedKey) {
				t.Errorf("ParsePrivateKeyPEM(public PEM) = %v, want ErrMalformedKey", err)
			}
		})
	}
}

func TestMLDSAPrivateKeyForms(t *testing.T) {
	for _, id := range []ID{MLDSA44, MLDSA65, MLDSA87} {
		t.Run(string(id), func(t *testing.T) {
			m := mustSuite(t, id).(*mldsaSuite)
			seed := bytes.Repeat([]byte{7}, SeedSize)
			key, _ := m.DeriveKey(seed)
			der, _ := MarshalPrivateKey(key)
			// Seed form: [0] IMPLICIT OCTET STRING, 2 + 32 bytes at the end.
			if !bytes.HasSuffix(der, append([]byte{0x80, 0x20}, seed...)) {
				t.Fatalf("PKCS #8 does not end in the RFC 9881 seed form: %x", der)
			}
			expanded, _ := key.(interface{ MarshalBinary() ([]byte, error) }).MarshalBinary()
			fromExpanded, err := m.parsePrivateKey(mustMarshal(t, expanded))
			if err != nil || !fromExpanded.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(key.Public()) {
				t.Fatalf("expanded form: %v", err)
			}
			if _, err := MarshalPrivateKey(fromExpanded); err != nil {
				t.Errorf("marshal a key without seed: %v", err)
			}
			both := mustMarshal(t, mldsaBoth{Seed: seed, Expanded: expanded})
			if _, err := m.parsePrivateKey(both); err != nil {
				t.Errorf("both form: %v", err)
			}
			expanded[len(expanded)-1] ^= 1
			mismatch := mustMarshal(t, mldsaBoth{Seed: seed, Expanded: expanded})
			if _, err := m.parsePrivateKey(mismatch); !errors.Is(err, ErrMalformedKey) {
				t.Errorf("both form with disagreeing halves = %v, want ErrMalformedKey", err)
			}
		})
	}
}

func TestParseRefusesMalformedKeys(t *testing.T) {
	p256, _ := mustSuite(t, ECDSAP256).GenerateKey(rand.Reader)
	goodDER, _ := MarshalPublicKey(p256.Public())
	cases := map[string][]byte{
		"empty":          nil,
		"trailing data":  append(append([]byte(nil), goodDER...), 0),
		"truncated":      goodDER[:len(goodDER)-1],
		"too large":      make([]byte, MaxKeyDER+1),
		"not DER at all": []byte("hello"),
		// The same P-256 point in compressed form is a second encoding of one
		// key and would give a second identity.
		"compressed point": compressedP256(t, p256.Public().(*ecdsa.PublicKey)),
	}
	for name, der := range cases {
		if _, err := ParsePublicKey(der); err == nil {
			t.Errorf("ParsePublicKey(%s) succeeded", name)
		}
		if _, err := ParsePrivateKey(der); err == nil {
			t.Errorf("ParsePrivateKey(%s) succeeded", name)
		}
	}
	for name, text := range map[string]string{
		"no PEM":       "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE",
		"certificate":  string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: goodDER})),
		"headers":      string(pem.EncodeToMemory(&pem.Block{Type: PEMPublicKey, Headers: map[string]string{"Proc-Type": "4,ENCRYPTED"}, Bytes: goodDER})),
		"garbage body": string(pem.EncodeToMemory(&pem.Block{Type: PEMPrivateKey, Bytes: []byte{1, 2, 3}})),
	} {
		if _, err := ParseKeyPEM([]byte(text)); err == nil {
			t.Errorf("ParseKeyPEM(%s) succeeded", name)
		}
	}
}

func compressedP256(t *testing.T, pub *ecdsa.PublicKey) []byte {
	t.Helper()
	raw, err := pub.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	prefix := byte(2 | raw[64]&1)
	der, err := MarshalPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	// Rebuild the SPKI with a 33-byte BIT STRING; header lengths shrink by 32.
	head := der[:len(der)-65]
	out := append([]byte{0x30, byte(int(der[1]) - 32)}, head[2:len(head)-3]...)
	out = append(out, 0x03, 0x22, 0x00, prefix)
	return append(out, raw[1:33]...)
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	der, err := asn1.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// opaqueSigner hides the concrete key type, as a key manager's signer does.
type opaqueSigner struct{ crypto.Signer }

func TestSignThroughOpaqueSigner(t *testing.T) {
	for _, id := range allIDs {
		s := mustSuite(t, id)
		key, _ := s.GenerateKey(rand.Reader)
		sig, err := Sign(opaqueSigner{key}, []byte("via a key manager"))
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		if err := s.Verify(key.Public(), []byte("via a key manager"), sig); err != nil {
			t.Fatalf("%s: signature through an opaque signer does not verify: %v", id, err)
		}
	}
}
