package sigalg

import (
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/binary"
	"math"
	"math/big"
	mrand "math/rand/v2"
	"slices"
	"testing"

	"filippo.io/edwards25519"
)

// TestP256MultiplesMatchStandardLibrary checks the table's own P-256
// arithmetic against crypto/ecdh: every k·G up to 2048, where each doubling
// block starts and ends, and a random sample above.
func TestP256MultiplesMatchStandardLibrary(t *testing.T) {
	xs := p256MultiplesX(smallMultipleBound)
	if len(xs) != smallMultipleBound {
		t.Fatalf("%d multiples, want %d", len(xs), smallMultipleBound)
	}
	sample := []int{smallMultipleBound}
	for k := 1; k <= 2048; k++ {
		sample = append(sample, k)
	}
	for b := 2048; b < smallMultipleBound; b *= 2 {
		sample = append(sample, b, b+1, 2*b-1)
	}
	for range 64 {
		sample = append(sample, 2049+mrand.IntN(smallMultipleBound-2048))
	}
	for _, k := range sample {
		var scalar [32]byte
		binary.BigEndian.PutUint32(scalar[28:], uint32(k))
		priv, err := ecdh.P256().NewPrivateKey(scalar[:])
		if err != nil {
			t.Fatal(err)
		}
		if want := priv.PublicKey().Bytes()[1:33]; string(xs[k-1][:]) != string(want) {
			t.Fatalf("x(%d·G) = %x, want %x", k, xs[k-1], want)
		}
	}
}

func TestEd25519MultiplesMatchScalarMult(t *testing.T) {
	ys := ed25519MultiplesY(smallMultipleBound)
	if len(ys) != smallMultipleBound {
		t.Fatalf("%d multiples, want %d", len(ys), smallMultipleBound)
	}
	sample := []int{1, 2, 3, 1023, 1024, 1025, smallMultipleBound}
	for range 64 {
		sample = append(sample, 1+mrand.IntN(smallMultipleBound))
	}
	for _, k := range sample {
		var le [32]byte
		binary.LittleEndian.PutUint32(le[:], uint32(k))
		s, _ := edwards25519.NewScalar().SetCanonicalBytes(le[:])
		want := new(edwards25519.Point).ScalarBaseMult(s).Bytes()
		want[31] &= 0x7f
		if string(ys[k-1][:]) != string(want) {
			t.Fatalf("y(%d·B) = %x, want %x", k, ys[k-1], want)
		}
	}
}

// TestSmallMultiplesFindEveryEntry looks up every k·G of both tables, and
// -k·G on P-256 through the same x: each must come back with its k.
func TestSmallMultiplesFindEveryEntry(t *testing.T) {
	for name, table := range map[string]*smallMultiples{"p256": p256SmallMultiples, "ed25519": ed25519SmallMultiples} {
		coords := table.coords(smallMultipleBound)
		for i, coord := range coords {
			if i%211 != 0 && i > 64 && i < smallMultipleBound-64 {
				continue // a sample of the middle keeps the test fast
			}
			k, ok := table.find(coord[:])
			if !ok || int(k) != i+1 {
				t.Fatalf("%s: find(%d·G) = %d, %v", name, i+1, k, ok)
			}
		}
		if !slices.IsSorted(table.entries) || len(table.entries) != smallMultipleBound {
			t.Fatalf("%s: table of %d entries, sorted %v", name, len(table.entries), slices.IsSorted(table.entries))
		}
		// A coordinate that shares a table prefix but not the rest must
		// not be found: the prefix is only an index.
		near := coords[41]
		near[31] ^= 0x01
		if k, ok := table.find(near[:]); ok {
			t.Fatalf("%s: a coordinate sharing 42·G's prefix was found as %d·G", name, k)
		}
	}
}

// TestMLDSAFalseRefusalBound computes the bound of docs/crypto.md: an
// honest t1 polynomial takes fewer than mldsaT1MinDistinct distinct values
// only if all 256 coefficients fall in some set of m = mldsaT1MinDistinct-1
// values. Each value has probability at most 2^13/q, so a set at most
// m·2^13/q, and there are C(1024, m) sets: P ≤ C(1024, m)·(m·2^13/q)^256
// per polynomial, times k ≤ 8 polynomials.
func TestMLDSAFalseRefusalBound(t *testing.T) {
	m := float64(mldsaT1MinDistinct - 1)
	lg := func(x float64) float64 { v, _ := math.Lgamma(x); return v }
	log2Choose := (lg(1025) - lg(m+1) - lg(1024-m+1)) / math.Ln2
	log2Bound := log2Choose + 256*math.Log2(m*8192/8380417) + math.Log2(8)
	t.Logf("false refusal of an honest ML-DSA-87 key: below 2^%.1f", log2Bound)
	if log2Bound > -200 {
		t.Fatalf("false-refusal bound 2^%.1f; docs/crypto.md promises below 2^-200", log2Bound)
	}
}

// TestMLDSAHonestT1IsDiverse measures what the rule relies on, over fresh
// keys of every level: the fewest distinct values of any t1 polynomial.
func TestMLDSAHonestT1IsDiverse(t *testing.T) {
	perLevel := 500
	if testing.Short() {
		perLevel = 100
	}
	fewest := 1 << 10
	for _, id := range []ID{MLDSA44, MLDSA65, MLDSA87} {
		m := registry[id].(*mldsaSuite)
		for range perLevel {
			key, err := m.GenerateKey(rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := key.Public().(interface{ MarshalBinary() ([]byte, error) }).MarshalBinary()
			for i := range m.k {
				n, _ := t1Distinct(raw[mldsaSeedSize+i*mldsaT1PolySize:][:mldsaT1PolySize], mldsaN)
				fewest = min(fewest, n)
			}
			if err := m.checkPublicKey(raw); err != nil {
				t.Fatalf("honest %s key refused: %v", id, err)
			}
		}
	}
	t.Logf("fewest distinct t1 values in any polynomial of %d keys: %d (rule: at least %d)", 3*perLevel, fewest, mldsaT1MinDistinct)
	if fewest < mldsaT1MinDistinct+50 {
		t.Fatalf("an honest polynomial took only %d distinct values; the model of docs/crypto.md is wrong", fewest)
	}
}

// TestP256FieldInverse checks inversion and the Montgomery round trip on
// random elements against math/big.
func TestP256FieldInverse(t *testing.T) {
	a := newP256Arith()
	p := elliptic.P256().Params().P
	for range 50 {
		v, _ := rand.Int(rand.Reader, p)
		if v.Sign() == 0 {
			continue
		}
		got := a.invert(a.enter(p256FromBig(v))).bytes()
		want := new(big.Int).ModInverse(v, p).FillBytes(make([]byte, 32))
		if string(got[:]) != string(want) {
			t.Fatalf("1/%x = %x, want %x", v, got, want)
		}
	}
}

// BenchmarkSmallMultiplesBuild measures the one-time cost of each table.
func BenchmarkSmallMultiplesBuild(b *testing.B) {
	for name, coords := range map[string]func(int) [][32]byte{"p256": p256MultiplesX, "ed25519": ed25519MultiplesY} {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				table := &smallMultiples{coords: coords, prefix: p256SmallMultiples.prefix}
				table.build()
			}
		})
	}
}

// BenchmarkKeyPolicy measures what the key policy adds to parsing a key of
// each suite: the t1 count for ML-DSA, the small-multiple lookup for P-256
// and Ed25519 (tables built before the timer starts; Ed25519's subgroup
// check predates the policy and is not counted).
func BenchmarkKeyPolicy(b *testing.B) {
	for _, id := range []ID{ECDSAP256, Ed25519, MLDSA44, MLDSA65, MLDSA87} {
		key, _ := registry[id].GenerateKey(rand.Reader)
		var check func() error
		switch pub := key.Public().(type) {
		case *ecdsa.PublicKey:
			raw, _ := pub.Bytes()
			check = func() error { return checkP256Point(raw) }
		case ed25519.PublicKey:
			check = func() error {
				if _, weak := ed25519SmallMultiples.find(pub); weak {
					return ErrWeakKey
				}
				return nil
			}
		default:
			raw, _ := pub.(interface{ MarshalBinary() ([]byte, error) }).MarshalBinary()
			m := registry[id].(*mldsaSuite)
			check = func() error { return m.checkPublicKey(raw) }
		}
		if err := check(); err != nil {
			b.Fatal(err)
		}
		b.Run(string(id), func(b *testing.B) {
			for b.Loop() {
				if err := check(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
