package puf

import "math/bits"

// The outer code: a binary BCH code of primitive length 511 over GF(2^9)
// with designed distance 39 (corrects t = 19 errors), shortened to n = 418
// positions with k = 256 message bits.
//
// The generator polynomial is the product of the minimal polynomials of
// α^1 … α^38. Their cyclotomic cosets modulo 511 all have 9 elements, but
// the cosets of α^17 and α^33 coincide (33 = 17·2^5 mod 511), so only 18
// distinct minimal polynomials are needed and the generator has degree
// 18·9 = 162 rather than 19·9 = 171. Hence n = 256 + 162 = 418.
//
// A codeword is stored as bits of [bchWords]uint64: bit i is the coefficient
// of x^i. Positions 0..161 hold parity, positions 162..417 the message
// (systematic encoding); the 93 shortened positions 418..510 are implicitly
// zero and an error locator that points there means decoding failure.

const (
	bchT      = 19
	bchK      = 256
	bchParity = 162
	bchN      = bchK + bchParity // 418
	bchWords  = (bchN + 63) / 64
	bchBytes  = (bchN + 7) / 8
	bchLocLen = 2*bchT + 2 // room for any locator Berlekamp–Massey builds
)

// bchCodeword holds one (possibly corrupted) codeword.
type bchCodeword [bchWords]uint64

// bchRemainderT is a polynomial of degree < bchParity.
type bchRemainderT [3]uint64

const remTopMask = 1<<(bchParity-128) - 1 // valid bits of the last remainder word

var (
	// bchGLow is g(x) without its leading x^162 term, i.e. x^162 mod g(x).
	bchGLow bchRemainderT
	// bchByteTab[T] = T(x)·x^162 mod g(x), used to divide eight bits at a time.
	bchByteTab [256]bchRemainderT
)

func init() {
	g := bchGenerator()
	if len(g)-1 != bchParity {
		panic("puf: BCH generator degree does not match bchParity")
	}
	for i := range bchParity {
		if g[i] == 1 {
			bchGLow[i/64] |= 1 << (i % 64)
		}
	}
	// powers[i] = x^(162+i) mod g(x)
	var powers [8]bchRemainderT
	powers[0] = bchGLow
	for i := 1; i < 8; i++ {
		powers[i] = remTimesX(powers[i-1])
	}
	for v := range 256 {
		var r bchRemainderT
		for i := range 8 {
			if v>>i&1 == 1 {
				r[0] ^= powers[i][0]
				r[1] ^= powers[i][1]
				r[2] ^= powers[i][2]
			}
		}
		bchByteTab[v] = r
	}
}

// bchRootExponents returns the exponents j in 0..510 with g(α^j) = 0: the
// union of the cyclotomic cosets of 1..2t.
func bchRootExponents() []int {
	seen := make(map[int]bool)
	var roots []int
	for i := 1; i <= 2*bchT; i++ {
		for x := i; !seen[x]; x = x * 2 % gfOrder {
			seen[x] = true
			roots = append(roots, x)
		}
	}
	return roots
}

// bchGenerator multiplies out g(x) = Π (x − α^j) over the root exponents and
// returns its coefficients (lowest degree first), all of which are 0 or 1.
func bchGenerator() []uint16 {
	g := []uint16{1}
	for _, j := range bchRootExponents() {
		root := gfExp[j]
		next := make([]uint16, len(g)+1)
		for i, c := range g {
			next[i+1] ^= c            // c·x
			next[i] ^= gfMul(c, root) // c·α^j (minus is plus in characteristic 2)
		}
		g = next
	}
	for _, c := range g {
		if c > 1 {
			panic("puf: BCH generator has a coefficient outside GF(2)")
		}
	}
	return g
}

func remTimesX(r bchRemainderT) bchRemainderT {
	top := r[2] >> (bchParity - 128 - 1) & 1
	r[2] = (r[2]<<1 | r[1]>>63) & remTopMask
	r[1] = r[1]<<1 | r[0]>>63
	r[0] <<= 1
	if top == 1 {
		r[0] ^= bchGLow[0]
		r[1] ^= bchGLow[1]
		r[2] ^= bchGLow[2]
	}
	return r
}

// bchRemainder returns cw(x) mod g(x), processing eight coefficients per
// step from the highest degree down.
func bchRemainder(cw *bchCodeword) bchRemainderT {
	var r bchRemainderT
	for b := bchBytes - 1; b >= 0; b-- {
		in := cw[b/8] >> (8 * (b % 8)) & 0xff
		top := r[2] >> (bchParity - 128 - 8)
		r[2] = (r[2]<<8 | r[1]>>56) & remTopMask
		r[1] = r[1]<<8 | r[0]>>56
		r[0] = r[0]<<8 | in
		t := &bchByteTab[top]
		r[0] ^= t[0]
		r[1] ^= t[1]
		r[2] ^= t[2]
	}
	return r
}

// bchEncode returns the systematic codeword for a 256-bit message (bit j of
// the message is byte j/8, bit j%8).
func bchEncode(msg *[bchK / 8]byte) bchCodeword {
	var cw bchCodeword
	for j := range bchK {
		if msg[j/8]>>(j%8)&1 == 1 {
			p := bchParity + j
			cw[p/64] |= 1 << (p % 64)
		}
	}
	r := bchRemainder(&cw) // m(x)·x^162 mod g(x)
	cw[0] ^= r[0]
	cw[1] ^= r[1]
	cw[2] ^= r[2]
	return cw
}

// bchMessage extracts the 256 message bits of a codeword.
func bchMessage(cw *bchCodeword) [bchK / 8]byte {
	var msg [bchK / 8]byte
	for j := range bchK {
		p := bchParity + j
		msg[j/8] |= byte(cw[p/64]>>(p%64)&1) << (j % 8)
	}
	return msg
}

// bchSyndromes computes S_1..S_2t (index 0 unused) from the remainder of the
// received word: g(α^j) = 0 for j <= 2t, so the remainder has the same
// syndromes and far fewer nonzero coefficients. Only odd syndromes are
// evaluated; S_2j = S_j² for binary codes.
func bchSyndromes(r *bchRemainderT) (s [2*bchT + 1]uint16) {
	for w, word := range r {
		for word != 0 {
			i := w*64 + bits.TrailingZeros64(word)
			word &= word - 1
			step := 2 * i % gfOrder
			e := i
			for j := 1; j < 2*bchT; j += 2 {
				s[j] ^= gfExp[e]
				e += step
				if e >= gfOrder {
					e -= gfOrder
				}
			}
		}
	}
	for j := 2; j <= 2*bchT; j += 2 {
		s[j] = gfMul(s[j/2], s[j/2])
	}
	return s
}

// bchDecode corrects cw in place and reports whether it succeeded. Up to t
// errors are always corrected. With more, it either reports failure or
// returns a different codeword (a miscorrection); callers must verify the
// result by other means, as the extractor does with its check tag.
func bchDecode(cw *bchCodeword) bool {
	r := bchRemainder(cw)
	if r == (bchRemainderT{}) {
		return true
	}
	s := bchSyndromes(&r)
	loc, deg := berlekampMassey(&s)
	if deg > bchT {
		return false
	}
	var pos [bchT]int
	if chienSearch(&loc, deg, &pos) != deg {
		return false
	}
	for _, p := range pos[:deg] {
		cw[p/64] ^= 1 << (p % 64)
	}
	return true
}

// berlekampMassey returns the error-locator polynomial Λ(x) (Λ_0 = 1) and
// its length L for syndromes S_1..S_2t.
func berlekampMassey(s *[2*bchT + 1]uint16) (c [bchLocLen]uint16, l int) {
	var b [bchLocLen]uint16
	c[0], b[0] = 1, 1
	degB, m := 0, 1
	bd := uint16(1) // discrepancy when b was last replaced
	for n := range 2 * bchT {
		d := s[n+1]
		for i := 1; i <= l; i++ {
			d ^= gfMul(c[i], s[n+1-i])
		}
		if d == 0 {
			m++
			continue
		}
		coef := gfDiv(d, bd)
		prev, prevL := c, l
		for i := 0; i <= degB && i+m < bchLocLen; i++ {
			c[i+m] ^= gfMul(coef, b[i])
		}
		if 2*l <= n {
			l = n + 1 - l
			b, degB, bd, m = prev, prevL, d, 1
		} else {
			m++
		}
	}
	return c, l
}

// chienSearch finds the roots of Λ among α^-i for the code's positions
// i = 0..n-1, storing the positions in pos, and returns how many it found.
// It stops as soon as deg roots are found.
func chienSearch(loc *[bchLocLen]uint16, deg int, pos *[bchT]int) int {
	// cur[k] tracks log(Λ_k·α^(-i·k)); only nonzero coefficients are kept.
	var cur, step [bchT]int
	terms := 0
	for k := 1; k <= deg; k++ {
		if loc[k] != 0 {
			cur[terms] = int(gfLog[loc[k]])
			step[terms] = gfOrder - k
			terms++
		}
	}
	found := 0
	for i := range bchN {
		v := uint16(1)
		for j := range terms {
			v ^= gfExp[cur[j]]
			cur[j] += step[j]
			if cur[j] >= gfOrder {
				cur[j] -= gfOrder
			}
		}
		if v == 0 {
			pos[found] = i
			found++
			if found == deg {
				break
			}
		}
	}
	return found
}
