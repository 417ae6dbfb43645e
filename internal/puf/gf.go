package puf

// Arithmetic in GF(2^9), the field of the outer BCH code. Elements are 9-bit
// integers (polynomials over GF(2) modulo the primitive polynomial
// x^9 + x^4 + 1); α = x generates the multiplicative group of order 511.
//
// Multiplication goes through log/antilog tables because the decoder runs
// millions of times in the failure-rate measurement: a table lookup is far
// cheaper than carry-less multiplication with reduction.

const (
	gfM     = 9
	gfOrder = 1<<gfM - 1 // 511, the multiplicative order of α
	gfPoly  = 0x211      // x^9 + x^4 + 1, primitive
)

// gfExp[i] = α^i for 0 <= i < 2*gfOrder: doubling the table lets callers add
// two logarithms without reducing modulo 511. gfLog[x] is the discrete
// logarithm of x != 0; gfLog[0] is unused.
var gfExp, gfLog = buildGFTables()

func buildGFTables() (exp [2 * gfOrder]uint16, log [gfOrder + 1]uint16) {
	x := 1
	for i := range gfOrder {
		exp[i] = uint16(x)
		log[x] = uint16(i)
		x <<= 1
		if x&(1<<gfM) != 0 {
			x ^= gfPoly
		}
	}
	for i := gfOrder; i < 2*gfOrder; i++ {
		exp[i] = exp[i-gfOrder]
	}
	return exp, log
}

func gfMul(a, b uint16) uint16 {
	if a == 0 || b == 0 {
		return 0
	}
	return gfExp[int(gfLog[a])+int(gfLog[b])]
}

// gfDiv returns a/b for b != 0.
func gfDiv(a, b uint16) uint16 {
	if a == 0 {
		return 0
	}
	return gfExp[int(gfLog[a])+gfOrder-int(gfLog[b])]
}
