package puf

import (
	"math/bits"
	"math/rand/v2"
	"testing"
)

// clmulMod is a slow reference multiplication in GF(2^9).
func clmulMod(a, b uint16) uint16 {
	var r uint32
	for i := range gfM {
		if b>>i&1 == 1 {
			r ^= uint32(a) << i
		}
	}
	for i := 2*gfM - 2; i >= gfM; i-- {
		if r>>i&1 == 1 {
			r ^= gfPoly << (i - gfM)
		}
	}
	return uint16(r)
}

func TestGFTables(t *testing.T) {
	seen := make(map[uint16]bool)
	for i := range gfOrder {
		x := gfExp[i]
		if x == 0 || seen[x] {
			t.Fatalf("α^%d = %d repeats or is zero: x^9+x^4+1 is not primitive", i, x)
		}
		seen[x] = true
		if int(gfLog[x]) != i {
			t.Fatalf("log(α^%d) = %d", i, gfLog[x])
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 10000 {
		a, b := uint16(rng.IntN(512)), uint16(rng.IntN(512))
		if got, want := gfMul(a, b), clmulMod(a, b); got != want {
			t.Fatalf("gfMul(%d, %d) = %d, want %d", a, b, got, want)
		}
		if b != 0 && gfMul(gfDiv(a, b), b) != a {
			t.Fatalf("gfDiv(%d, %d) is not the inverse of gfMul", a, b)
		}
	}
}

// evalGenerator evaluates g(x) at α^j.
func evalGenerator(j int) uint16 {
	g := bchGenerator()
	var v uint16
	for i := len(g) - 1; i >= 0; i-- {
		v = gfMul(v, gfExp[j]) ^ g[i]
	}
	return v
}

func TestBCHGenerator(t *testing.T) {
	g := bchGenerator()
	if deg := len(g) - 1; deg != 162 {
		t.Fatalf("generator degree %d, want 162 (18 distinct cosets of 9)", deg)
	}
	// Roots α^1..α^38 give designed distance 39 (t = 19); α^39 must not be
	// a root, or the code would be the t = 20 code with more parity.
	for j := 1; j <= 2*bchT; j++ {
		if evalGenerator(j) != 0 {
			t.Errorf("g(α^%d) != 0", j)
		}
	}
	if evalGenerator(2*bchT+1) == 0 {
		t.Errorf("g(α^%d) = 0: code is stronger than t = %d", 2*bchT+1, bchT)
	}
	// The coset coincidence that makes the degree 162, not 171.
	if 17*32%gfOrder != 33 {
		t.Errorf("17·2^5 mod 511 = %d, want 33", 17*32%gfOrder)
	}
}

func randomMessage(rng *rand.Rand) (m [bchK / 8]byte) {
	for i := range m {
		m[i] = byte(rng.Uint32())
	}
	return m
}

// flipRandom flips n distinct random positions of cw in [0, bchN).
func flipRandom(rng *rand.Rand, cw *bchCodeword, n int) {
	for _, p := range rng.Perm(bchN)[:n] {
		cw[p/64] ^= 1 << (p % 64)
	}
}

func distance(a, b *bchCodeword) int {
	d := 0
	for i := range a {
		d += bits.OnesCount64(a[i] ^ b[i])
	}
	return d
}

func TestBCHEncode(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for range 200 {
		msg := randomMessage(rng)
		cw := bchEncode(&msg)
		if r := bchRemainder(&cw); r != (bchRemainderT{}) {
			t.Fatal("codeword is not a multiple of g(x)")
		}
		if got := bchMessage(&cw); got != msg {
			t.Fatal("encoding is not systematic")
		}
		if cw[bchWords-1]>>(bchN%64) != 0 {
			t.Fatal("codeword has bits beyond position n-1")
		}
	}
}

func TestBCHDecodeUpToT(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for nerr := 0; nerr <= bchT; nerr++ {
		for range 200 {
			msg := randomMessage(rng)
			clean := bchEncode(&msg)
			cw := clean
			flipRandom(rng, &cw, nerr)
			if !bchDecode(&cw) {
				t.Fatalf("%d errors: decoding failed", nerr)
			}
			if cw != clean {
				t.Fatalf("%d errors: decoded to the wrong codeword", nerr)
			}
		}
	}
}

func TestBCHDecodeBeyondT(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	failed, miscorrected := 0, 0
	for nerr := bchT + 1; nerr <= bchT+6; nerr++ {
		for range 200 {
			msg := randomMessage(rng)
			clean := bchEncode(&msg)
			cw := clean
			flipRandom(rng, &cw, nerr)
			received := cw
			if !bchDecode(&cw) {
				failed++
				if cw != received {
					t.Fatal("failed decoding modified its input")
				}
				continue
			}
			// A miscorrection must still be a codeword within t of the
			// received word; it can never be the original.
			miscorrected++
			if r := bchRemainder(&cw); r != (bchRemainderT{}) {
				t.Fatal("decoder returned a non-codeword")
			}
			if d := distance(&cw, &received); d > bchT {
				t.Fatalf("decoder moved %d bits, more than t", d)
			}
			if cw == clean {
				t.Fatalf("%d errors decoded to the original", nerr)
			}
		}
	}
	if failed == 0 {
		t.Error("decoder never reported failure beyond t")
	}
	t.Logf("beyond t: %d failures reported, %d miscorrections", failed, miscorrected)
}

// TestBCHDecodeRejectsShortenedPositions builds a word whose only
// correctable explanation puts an error at position 418, one of the
// shortened positions: x^256·g(x) is a codeword of the length-511 code
// whose top coefficient, x^418, is cut off by shortening.
func TestBCHDecodeRejectsShortenedPositions(t *testing.T) {
	g := bchGenerator()
	rng := rand.New(rand.NewPCG(9, 10))
	for nerr := 0; nerr < bchT; nerr++ {
		var cw bchCodeword
		for i, c := range g[:len(g)-1] {
			if c == 1 {
				p := i + 256
				cw[p/64] ^= 1 << (p % 64)
			}
		}
		flipRandom(rng, &cw, nerr)
		if bchDecode(&cw) {
			t.Fatalf("with %d extra errors: decoding succeeded although the error locator points outside the code", nerr)
		}
	}
}
