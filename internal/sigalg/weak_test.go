package sigalg_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	mrand "math/rand/v2"
	"strings"
	"testing"

	"github.com/cloudflare/circl/sign"

	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/sigalg/sigalgtest"
)

var mldsaIDs = []sigalg.ID{sigalg.MLDSA44, sigalg.MLDSA65, sigalg.MLDSA87}

func randomRho(t testing.TB) [32]byte {
	t.Helper()
	var rho [32]byte
	if _, err := rand.Read(rho[:]); err != nil {
		t.Fatal(err)
	}
	return rho
}

func spkiOf(t testing.TB, pub crypto.PublicKey) []byte {
	t.Helper()
	der, err := sigalg.MarshalPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// refusedAsWeak asserts that every entry point refuses the public key:
// DER, PEM, CheckPublicKey on the in-memory key.
func refusedAsWeak(t *testing.T, what string, spki []byte, reason string) {
	t.Helper()
	if _, err := sigalg.ParsePublicKey(spki); !errors.Is(err, sigalg.ErrWeakKey) || !strings.Contains(err.Error(), reason) {
		t.Errorf("%s: ParsePublicKey = %v, want ErrWeakKey naming %q", what, err, reason)
	}
	text := pem.EncodeToMemory(&pem.Block{Type: sigalg.PEMPublicKey, Bytes: spki})
	if _, err := sigalg.ParsePublicKeyPEM(text); !errors.Is(err, sigalg.ErrWeakKey) {
		t.Errorf("%s: ParsePublicKeyPEM = %v, want ErrWeakKey", what, err)
	}
}

// TestZeroMLDSAKeysAreRefused is the key of issue 10: ρ ‖ t1 = 0, for the
// all-zero key and random ρ, at every level. The signer built from public
// data alone proves that such a key is signed for by anyone.
func TestZeroMLDSAKeysAreRefused(t *testing.T) {
	for _, id := range mldsaIDs {
		t.Run(string(id), func(t *testing.T) {
			suite, _ := id.Suite()
			for i, rho := range [][32]byte{{}, randomRho(t), randomRho(t), randomRho(t)} {
				forger, err := sigalgtest.ZeroMLDSA(id, rho)
				if err != nil {
					t.Fatal(err)
				}
				msg := []byte("signed with s1 = s2 = t0 = 0")
				sig, err := suite.Sign(forger, msg)
				if err != nil || suite.Verify(forger.Public(), msg, sig) != nil {
					t.Fatalf("the zero key does not sign verifiably (%v); the test proves nothing", err)
				}
				spki := spkiOf(t, forger.Public())
				if i == 0 && !bytes.Equal(spki[len(spki)-32:], make([]byte, 32)) {
					t.Fatal("the all-zero key is not all zero")
				}
				refusedAsWeak(t, fmt.Sprintf("rho %d", i), spki, "t1 = 0")
				if err := sigalg.CheckPublicKey(forger.Public()); !errors.Is(err, sigalg.ErrWeakKey) {
					t.Errorf("CheckPublicKey = %v", err)
				}
			}
		})
	}
}

// TestMLDSAS1ZeroKeysAreRefused: with s1 = 0, t = s2 and t1 takes only 0
// and 1023; the key is a consistent FIPS 204 key whose secret is public.
func TestMLDSAS1ZeroKeysAreRefused(t *testing.T) {
	for _, id := range mldsaIDs {
		t.Run(string(id), func(t *testing.T) {
			k, _, eta, _ := sigalgtest.MLDSAParams(id)
			suite, _ := id.Suite()
			for range 4 {
				s2 := make([]int, k*256)
				for i := range s2 {
					s2[i] = mrand.IntN(2*eta+1) - eta
				}
				key, err := sigalgtest.MLDSAWithZeroS1(id, randomRho(t), s2)
				if err != nil {
					t.Fatal(err)
				}
				sig, _ := suite.Sign(key, []byte("m"))
				if suite.Verify(key.Public(), []byte("m"), sig) != nil {
					t.Fatal("the s1 = 0 key does not sign verifiably")
				}
				refusedAsWeak(t, "s1 = 0", spkiOf(t, key.Public()), "takes 2 distinct values")
			}
		})
	}
}

// TestDegenerateT1IsRefused builds t1 by hand: constant, near-constant,
// small (within ±63 of 0 mod 1024), a single zero polynomial in an honest
// key, and the boundary of the rule on both sides.
func TestDegenerateT1IsRefused(t *testing.T) {
	for _, id := range mldsaIDs {
		t.Run(string(id), func(t *testing.T) {
			k, _, _, _ := sigalgtest.MLDSAParams(id)
			suite, _ := id.Suite()
			honest, _ := suite.GenerateKey(rand.Reader)
			honestT1 := unpackT1(t, spkiOf(t, honest.Public()), k)
			build := func(f func(i int) uint32) []uint32 {
				t1 := make([]uint32, k*256)
				for i := range t1 {
					t1[i] = f(i)
				}
				return t1
			}
			// withDistinct gives every polynomial exactly n distinct values.
			withDistinct := func(n int) []uint32 {
				return build(func(i int) uint32 { return uint32((i%256)%n*7) % 1024 })
			}
			cases := []struct {
				name, reason string
				t1           []uint32
			}{
				{"constant 1", "takes 1 distinct values", build(func(int) uint32 { return 1 })},
				{"constant 511", "takes 1 distinct values", build(func(int) uint32 { return 511 })},
				{"constant 1023", "takes 1 distinct values", build(func(int) uint32 { return 1023 })},
				{"zero but one coefficient", "takes 2 distinct values", build(func(i int) uint32 {
					if i == 0 {
						return 77
					}
					return 0
				})},
				{"small", "distinct values", build(func(int) uint32 { return uint32(1024+mrand.IntN(127)-63) % 1024 })},
				{"one zero polynomial", "polynomial 1 of t1 is zero", build(func(i int) uint32 {
					if i/256 == 1 {
						return 0
					}
					return honestT1[i]
				})},
				{"127 distinct values", "takes 127 distinct values", withDistinct(127)},
			}
			for _, c := range cases {
				spki, err := sigalgtest.MLDSAPublicKey(id, randomRho(t), c.t1)
				if err != nil {
					t.Fatal(err)
				}
				refusedAsWeak(t, c.name, spki, c.reason)
			}
			for _, n := range []int{128, 256} {
				spki, _ := sigalgtest.MLDSAPublicKey(id, randomRho(t), withDistinct(n))
				if _, err := sigalg.ParsePublicKey(spki); err != nil {
					t.Errorf("t1 of %d distinct values per polynomial refused: %v", n, err)
				}
			}
			if spki, _ := sigalgtest.MLDSAPublicKey(id, randomRho(t), honestT1); !acceptsKey(spki) {
				t.Error("an honest t1 under another ρ was refused")
			}
		})
	}
}

func acceptsKey(spki []byte) bool {
	_, err := sigalg.ParsePublicKey(spki)
	return err == nil
}

// unpackT1 reads the t1 coefficients of an ML-DSA SubjectPublicKeyInfo
// bit by bit, independently of the package's packed reader.
func unpackT1(t testing.TB, spki []byte, k int) []uint32 {
	t.Helper()
	raw := spki[len(spki)-k*320:]
	t1 := make([]uint32, k*256)
	for i := range t1 {
		for b := range 10 {
			bit := i*10 + b
			t1[i] |= uint32(raw[bit/8]>>(bit%8)&1) << b
		}
	}
	return t1
}

// TestSmallMultipleKeysAreRefused: ±k·G on P-256 and ±k·B on Ed25519 for
// small k, base points included, whose private keys anyone finds.
func TestSmallMultipleKeysAreRefused(t *testing.T) {
	ks := []int64{1, -1, 2, -2, 3, 1 << 16, -(1 << 16), 0xffff}
	for range 8 {
		ks = append(ks, 1+mrand.Int64N(1<<16))
	}
	for _, k := range ks {
		p256, err := sigalgtest.P256Scalar(k)
		if err != nil {
			t.Fatal(err)
		}
		refusedAsWeak(t, fmt.Sprintf("P-256 %d·G", k), spkiOf(t, p256.Public()), "P-256 public key is ±")
		ed, err := sigalgtest.NewEd25519Scalar(k)
		if err != nil {
			t.Fatal(err)
		}
		refusedAsWeak(t, fmt.Sprintf("Ed25519 %d·B", k), spkiOf(t, ed.Public()), "Ed25519 public key is ±")
	}
	// Just beyond the bound, and the forged signers' signatures, which
	// verify: the keys are weak, not broken.
	for _, k := range []int64{1<<16 + 1, -(1<<16 + 1)} {
		p256, _ := sigalgtest.P256Scalar(k)
		ed, _ := sigalgtest.NewEd25519Scalar(k)
		for _, key := range []crypto.Signer{p256, ed} {
			if !acceptsKey(spkiOf(t, key.Public())) {
				t.Errorf("%T of scalar %d refused", key, k)
			}
			suite, _ := sigalg.SuiteOf(key)
			sig, err := suite.Sign(key, []byte("m"))
			if err != nil || suite.Verify(key.Public(), []byte("m"), sig) != nil {
				t.Errorf("%T of scalar %d does not sign verifiably: %v", key, k, err)
			}
		}
	}
	// The standard base points, by their published encodings.
	g := elliptic.P256().Params()
	for name, y := range map[string]*big.Int{"P-256 G": g.Gy, "P-256 -G": new(big.Int).Sub(g.P, g.Gy)} {
		point := append([]byte{4}, g.Gx.FillBytes(make([]byte, 32))...)
		point = append(point, y.FillBytes(make([]byte, 32))...)
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), point)
		if err != nil {
			t.Fatal(err)
		}
		refusedAsWeak(t, name, spkiOf(t, pub), "±1·G")
	}
	b := ed25519.PublicKey{0x58}
	b = append(b, bytes.Repeat([]byte{0x66}, 31)...) // RFC 8032: B encodes as 0x58 0x66 … 0x66
	refusedAsWeak(t, "Ed25519 B", spkiOf(t, b), "±1·B")
	negB := append(ed25519.PublicKey(nil), b...)
	negB[31] |= 0x80
	refusedAsWeak(t, "Ed25519 -B", spkiOf(t, negB), "±1·B")
}

// TestDegenerateCurveEncodingsAreRefused: the identity, points off the
// curve and second encodings of one point never parse.
func TestDegenerateCurveEncodingsAreRefused(t *testing.T) {
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	good := spkiOf(t, p256.Public())
	point := good[len(good)-65:]
	prefix := good[:len(good)-65]
	p := elliptic.P256().Params().P
	unreduced := p.FillBytes(make([]byte, 32)) // x = p, the field's modulus itself
	cases := map[string][]byte{
		"P-256 point at infinity": reencodeSPKI(t, good, []byte{0}),
		"P-256 hybrid encoding":   append(append([]byte(nil), prefix...), append([]byte{0x06 | point[64]&1}, point[1:]...)...),
		"P-256 off the curve":     append(append([]byte(nil), prefix...), append([]byte{4}, append(append([]byte(nil), point[1:64]...), point[64]^1)...)...),
		"P-256 x = p":             reencodeSPKI(t, good, append(append([]byte{4}, unreduced...), point[33:]...)),
		"Ed25519 identity":        spkiOf(t, ed25519.PublicKey(append([]byte{1}, make([]byte, 31)...))),
		"Ed25519 y = p (non-canonical 0)": spkiOf(t, ed25519.PublicKey{0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
			0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}),
	}
	for name, der := range cases {
		if _, err := sigalg.ParsePublicKey(der); !errors.Is(err, sigalg.ErrMalformedKey) && !errors.Is(err, sigalg.ErrWeakKey) {
			t.Errorf("%s: ParsePublicKey = %v, want ErrMalformedKey or ErrWeakKey", name, err)
		}
	}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err := sigalg.CheckPublicKey(p384.Public()); !errors.Is(err, sigalg.ErrUnknownAlgorithm) {
		t.Errorf("CheckPublicKey(P-384 key) = %v, want ErrUnknownAlgorithm", err)
	}
	if err := sigalg.CheckPublicKey("not a key"); !errors.Is(err, sigalg.ErrUnknownAlgorithm) {
		t.Errorf("CheckPublicKey(string) = %v, want ErrUnknownAlgorithm", err)
	}
}

// reencodeSPKI replaces the BIT STRING of an SPKI.
func reencodeSPKI(t *testing.T, spki, key []byte) []byte {
	t.Helper()
	var v struct {
		Algorithm asn1.RawValue
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(spki, &v); err != nil {
		t.Fatal(err)
	}
	v.PublicKey = asn1.BitString{Bytes: key, BitLength: 8 * len(key)}
	der, err := asn1.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// TestWeakPrivateKeysAreRefused: a key file whose public half is
// degenerate is refused when loaded, in every PKCS #8 form.
func TestWeakPrivateKeysAreRefused(t *testing.T) {
	for _, k := range []int64{1, -1, 2, 1 << 16} {
		key, _ := sigalgtest.P256Scalar(k)
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sigalg.ParsePrivateKey(der); !errors.Is(err, sigalg.ErrWeakKey) {
			t.Errorf("P-256 scalar %d: ParsePrivateKey = %v, want ErrWeakKey", k, err)
		}
		text := pem.EncodeToMemory(&pem.Block{Type: sigalg.PEMPrivateKey, Bytes: der})
		if _, err := sigalg.ParsePublicKeyPEM(text); !errors.Is(err, sigalg.ErrWeakKey) {
			t.Errorf("P-256 scalar %d: ParsePublicKeyPEM(private key) = %v, want ErrWeakKey", k, err)
		}
	}
	for _, id := range mldsaIDs {
		zero, _ := sigalgtest.ZeroMLDSA(id, randomRho(t))
		der, err := sigalgtest.ExpandedPKCS8(id, zero)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sigalg.ParsePrivateKey(der); !errors.Is(err, sigalg.ErrWeakKey) {
			t.Errorf("%s expanded s1 = s2 = 0: ParsePrivateKey = %v, want ErrWeakKey", id, err)
		}
	}
}

// TestInconsistentExpandedMLDSAKeysAreRefused: an expanded key is checked
// for what FIPS 204 leaves unchecked: secret coefficients within η, tr,
// and t0 (by signing and verifying).
func TestInconsistentExpandedMLDSAKeysAreRefused(t *testing.T) {
	for _, id := range mldsaIDs {
		t.Run(string(id), func(t *testing.T) {
			suite, _ := id.Suite()
			key, _ := suite.GenerateKey(rand.Reader)
			raw, _ := key.(sign.PrivateKey).MarshalBinary()
			good, _ := sigalgtest.ExpandedPKCS8(id, key)
			if back, err := sigalg.ParsePrivateKey(good); err != nil || !back.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(key.Public()) {
				t.Fatalf("honest expanded key: %v", err)
			}
			k, _, eta, _ := sigalgtest.MLDSAParams(id)
			other, _ := suite.GenerateKey(rand.Reader)
			otherRaw, _ := other.(sign.PrivateKey).MarshalBinary()
			mutations := map[string]func(b []byte){
				"tr flipped": func(b []byte) { b[64] ^= 1 },
				// The first s1 coefficient is η - c in the low bits of
				// byte 128; all ones is 7 or 15, beyond 2η.
				"s1 beyond η": func(b []byte) {
					if eta == 2 {
						b[128] |= 0x07
					} else {
						b[128] |= 0x0f
					}
				},
				// t0 of another key: a t0 off by a little still signs
				// verifiably (the hints absorb it), which is harmless.
				"t0 of another key": func(b []byte) { copy(b[len(b)-k*416:], otherRaw[len(otherRaw)-k*416:]) },
			}
			for name, mutate := range mutations {
				bad := append([]byte(nil), raw...)
				mutate(bad)
				badKey, err := sigalgtest.ExpandedPKCS8Raw(id, bad)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := sigalg.ParsePrivateKey(badKey); !errors.Is(err, sigalg.ErrMalformedKey) {
					t.Errorf("%s: ParsePrivateKey = %v, want ErrMalformedKey", name, err)
				}
			}
		})
	}
}
