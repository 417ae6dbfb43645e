package sigalg

import (
	"crypto/elliptic"
	"encoding/binary"
	"math/big"
	"math/bits"
)

// The P-256 arithmetic below builds the table of small multiples k·G and
// nothing else. The standard library adds two P-256 points only through
// crypto/elliptic, whose conversions and one inversion per addition make
// 2^16 multiples cost 0.4 s; affine additions whose inversions are shared
// across a whole batch cost 35 ms. The values are public, so the code is
// variable-time, and its output is never trusted alone: every table hit is
// confirmed with crypto/ecdh before a key is refused (see smallmult.go).

// p256Elem is an element of P-256's base field in Montgomery form
// (a·2^256 mod p), as four little-endian 64-bit limbs, fully reduced.
type p256Elem [4]uint64

// p256P is p = 2^256 - 2^224 + 2^192 + 2^96 - 1. Its lowest limb is
// 2^64-1, so -p^-1 mod 2^64 is 1 and Montgomery reduction multiplies by the
// lowest limb of the running sum itself.
var p256P = p256Elem{0xffffffffffffffff, 0x00000000ffffffff, 0, 0xffffffff00000001}

// p256Arith holds the constants the table needs, in Montgomery form.
type p256Arith struct {
	r2      p256Elem // 2^512 mod p, to enter Montgomery form
	one     p256Elem
	three   p256Elem
	gx, gy  p256Elem
	pMinus2 p256Elem // the exponent of inversion, not in Montgomery form
}

func newP256Arith() *p256Arith {
	params := elliptic.P256().Params()
	var a p256Arith
	a.r2 = p256FromBig(new(big.Int).Mod(new(big.Int).Lsh(big.NewInt(1), 512), params.P))
	a.one = a.enter(p256Elem{1})
	a.three = a.enter(p256Elem{3})
	a.gx, a.gy = a.enter(p256FromBig(params.Gx)), a.enter(p256FromBig(params.Gy))
	a.pMinus2 = p256FromBig(new(big.Int).Sub(params.P, big.NewInt(2)))
	return &a
}

func p256FromBig(v *big.Int) p256Elem {
	var buf [32]byte
	v.FillBytes(buf[:])
	var e p256Elem
	for i := range e {
		e[i] = binary.BigEndian.Uint64(buf[24-8*i:])
	}
	return e
}

// enter converts a canonical value to Montgomery form.
func (a *p256Arith) enter(v p256Elem) p256Elem { return v.mul(a.r2) }

// bytes returns the canonical big-endian encoding of a Montgomery element.
func (x p256Elem) bytes() [32]byte {
	v := x.mul(p256Elem{1})
	var out [32]byte
	for i := range v {
		binary.BigEndian.PutUint64(out[24-8*i:], v[i])
	}
	return out
}

// The operations take and return values, not pointers: locals stay in
// registers, which also spares them the race detector's instrumentation
// (which made the table 10 times slower to build under go test -race).

// mul returns x·y·2^-256 mod p (CIOS Montgomery multiplication).
func (x p256Elem) mul(y p256Elem) p256Elem {
	var t0, t1, t2, t3, t4, t5, c uint64
	for i := range 4 {
		yi := y[i]
		c, t0 = mulAdd(x[0], yi, t0, 0)
		c, t1 = mulAdd(x[1], yi, t1, c)
		c, t2 = mulAdd(x[2], yi, t2, c)
		c, t3 = mulAdd(x[3], yi, t3, c)
		t4, t5 = bits.Add64(t4, c, 0)
		// Add m·p with m = t0, which clears t0, and shift one limb.
		m := t0
		c, _ = mulAdd(m, p256P[0], t0, 0)
		c, t0 = mulAdd(m, p256P[1], t1, c)
		c, t1 = mulAdd(m, p256P[2], t2, c)
		c, t2 = mulAdd(m, p256P[3], t3, c)
		t3, c = bits.Add64(t4, c, 0)
		t4 = t5 + c
	}
	return p256Reduce(t4, p256Elem{t0, t1, t2, t3})
}

// mulAdd returns a·b + c + d as two words; it cannot overflow.
func mulAdd(a, b, c, d uint64) (hi, lo uint64) {
	hi, lo = bits.Mul64(a, b)
	var carry uint64
	lo, carry = bits.Add64(lo, c, 0)
	hi += carry
	lo, carry = bits.Add64(lo, d, 0)
	hi += carry
	return hi, lo
}

// p256Reduce returns hi·2^256 + v, which is below 2p, minus p if that is
// not negative.
func p256Reduce(hi uint64, v p256Elem) p256Elem {
	var d p256Elem
	var borrow uint64
	d[0], borrow = bits.Sub64(v[0], 0xffffffffffffffff, 0)
	d[1], borrow = bits.Sub64(v[1], 0x00000000ffffffff, borrow)
	d[2], borrow = bits.Sub64(v[2], 0, borrow)
	d[3], borrow = bits.Sub64(v[3], 0xffffffff00000001, borrow)
	_, borrow = bits.Sub64(hi, 0, borrow)
	if borrow == 0 {
		return d
	}
	return v
}

func (x p256Elem) add(y p256Elem) p256Elem {
	var s p256Elem
	var carry uint64
	s[0], carry = bits.Add64(x[0], y[0], 0)
	s[1], carry = bits.Add64(x[1], y[1], carry)
	s[2], carry = bits.Add64(x[2], y[2], carry)
	s[3], carry = bits.Add64(x[3], y[3], carry)
	return p256Reduce(carry, s)
}

func (x p256Elem) sub(y p256Elem) p256Elem {
	var d p256Elem
	var borrow uint64
	d[0], borrow = bits.Sub64(x[0], y[0], 0)
	d[1], borrow = bits.Sub64(x[1], y[1], borrow)
	d[2], borrow = bits.Sub64(x[2], y[2], borrow)
	d[3], borrow = bits.Sub64(x[3], y[3], borrow)
	if borrow != 0 {
		var carry uint64
		d[0], carry = bits.Add64(d[0], 0xffffffffffffffff, 0)
		d[1], carry = bits.Add64(d[1], 0x00000000ffffffff, carry)
		d[2], carry = bits.Add64(d[2], 0, carry)
		d[3], _ = bits.Add64(d[3], 0xffffffff00000001, carry)
	}
	return d
}

// invert returns x^(p-2) = x^-1 (x nonzero), by square-and-multiply.
func (a *p256Arith) invert(x p256Elem) p256Elem {
	r := a.one
	for i := 255; i >= 0; i-- {
		r = r.mul(r)
		if a.pMinus2[i/64]>>(i%64)&1 == 1 {
			r = r.mul(x)
		}
	}
	return r
}

// p256Affine is an affine point other than the point at infinity.
type p256Affine struct{ x, y p256Elem }

// addBatch sets dst[i] = src[i] + q for every i, sharing one inversion
// among all the additions (Montgomery's trick). No src[i] may be -q: the
// table adds multiples k·G with k far below the group order, where that
// cannot happen. src[i] = q is doubled.
func (a *p256Arith) addBatch(dst, src []p256Affine, q p256Affine) {
	num := make([]p256Elem, len(src))
	den := make([]p256Elem, len(src))
	prefix := make([]p256Elem, len(src))
	acc := a.one
	for i, p := range src {
		if p.x == q.x { // p = q: λ = (3x² - 3) / 2y, as a = -3
			num[i] = p.x.mul(p.x).sub(a.one).mul(a.three)
			den[i] = p.y.add(p.y)
		} else { // λ = (yq - yp) / (xq - xp)
			num[i] = q.y.sub(p.y)
			den[i] = q.x.sub(p.x)
		}
		acc = acc.mul(den[i])
		prefix[i] = acc // den[0]·…·den[i]
	}
	inv := a.invert(acc)
	for i := len(src) - 1; i >= 0; i-- {
		// inv is the inverse of den[0]·…·den[i] here.
		lambda := inv
		if i > 0 {
			lambda = inv.mul(prefix[i-1])
			inv = inv.mul(den[i])
		}
		lambda = lambda.mul(num[i])
		p := src[i]
		x3 := lambda.mul(lambda).sub(p.x).sub(q.x)
		y3 := p.x.sub(x3).mul(lambda).sub(p.y)
		dst[i] = p256Affine{x3, y3}
	}
}

// p256MultiplesX returns the x-coordinates of k·G for k = 1 … n, in that
// order. Block by block, k·G for k in (b, 2b] is (k-b)·G + b·G: one batch
// of additions with one inversion per doubling of the range.
func p256MultiplesX(n int) [][32]byte {
	a := newP256Arith()
	pts := make([]p256Affine, n)
	pts[0] = p256Affine{a.gx, a.gy}
	for b := 1; b < n; b *= 2 {
		m := min(b, n-b)
		a.addBatch(pts[b:b+m], pts[:m], pts[b-1])
	}
	xs := make([][32]byte, n)
	for i := range pts {
		xs[i] = pts[i].x.bytes()
	}
	return xs
}
