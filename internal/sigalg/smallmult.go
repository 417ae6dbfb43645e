package sigalg

import (
	"bytes"
	"crypto/ecdh"
	"encoding/binary"
	"slices"
	"sync"

	"filippo.io/edwards25519"
	"filippo.io/edwards25519/field"
)

// smallMultipleBound is the largest k for which the public keys ±k·G are
// refused. Their private keys are 1 … 2^16 or their negatives: what a
// generator that fails (an unset or truncated scalar, a counter) produces
// and what anyone finds by trying. A deliberate signer can always publish
// a larger private key; no bound closes that, so this one is set by cost:
// building the set of 2^17 points takes about 35 ms of CPU per curve, once
// per process, and each check is a binary search.
const smallMultipleBound = 1 << 16

// p256CoordSize is the size of a P-256 coordinate.
const p256CoordSize = 32

// smallMultiples is the set {±k·G : 1 ≤ k ≤ smallMultipleBound} of one
// curve, keyed by the coordinate that P and -P share (x on P-256, y on
// edwards25519), built on first use. Each entry packs a 48-bit prefix of
// that coordinate above k-1 (16 bits), and the entries are sorted: 512 KiB
// a curve. A prefix that matches is confirmed by recomputing k·G with the
// standard library, so the set refuses exactly the keys it describes.
type smallMultiples struct {
	once    sync.Once
	entries []uint64
	// coords returns the keyed coordinate of k·G for k = 1 … n, in order,
	// encoded as the public key encodes it.
	coords func(n int) [][32]byte
	// prefix reads the 48-bit key of an encoded coordinate.
	prefix func(coord []byte) uint64
	// is reports whether coord is the keyed coordinate of k·G.
	is func(k uint32, coord []byte) bool
}

const smallMultipleKBits = 16

// find reports the k ≤ smallMultipleBound with coord the keyed coordinate
// of k·G, if there is one.
func (s *smallMultiples) find(coord []byte) (uint32, bool) {
	s.once.Do(s.build)
	p := s.prefix(coord)
	i, _ := slices.BinarySearch(s.entries, p<<smallMultipleKBits)
	for ; i < len(s.entries) && s.entries[i]>>smallMultipleKBits == p; i++ {
		k := uint32(s.entries[i]&(1<<smallMultipleKBits-1)) + 1
		if s.is(k, coord) {
			return k, true
		}
	}
	return 0, false
}

func (s *smallMultiples) build() {
	coords := s.coords(smallMultipleBound)
	s.entries = make([]uint64, len(coords))
	for i := range coords {
		s.entries[i] = s.prefix(coords[i][:])<<smallMultipleKBits | uint64(i)
	}
	slices.Sort(s.entries)
}

// p256SmallMultiples is keyed by the big-endian x-coordinate.
var p256SmallMultiples = &smallMultiples{
	coords: p256MultiplesX,
	prefix: func(x []byte) uint64 { return binary.BigEndian.Uint64(x) >> 16 },
	is: func(k uint32, x []byte) bool {
		var scalar [32]byte
		binary.BigEndian.PutUint32(scalar[28:], k)
		priv, err := ecdh.P256().NewPrivateKey(scalar[:])
		if err != nil {
			return false
		}
		point := priv.PublicKey().Bytes() // 0x04 ‖ x ‖ y
		return bytes.Equal(point[1:1+p256CoordSize], x)
	},
}

// ed25519SmallMultiples is keyed by the encoded point with its sign bit
// (of x) cleared, which is y: P and -P differ only in that bit.
var ed25519SmallMultiples = &smallMultiples{
	coords: ed25519MultiplesY,
	prefix: func(enc []byte) uint64 { return binary.LittleEndian.Uint64(enc) & (1<<48 - 1) },
	is: func(k uint32, enc []byte) bool {
		var le [32]byte
		binary.LittleEndian.PutUint32(le[:], k)
		scalar, err := edwards25519.NewScalar().SetCanonicalBytes(le[:])
		if err != nil {
			return false
		}
		point := new(edwards25519.Point).ScalarBaseMult(scalar).Bytes()
		point[31] &= 0x7f
		return bytes.Equal(point[:31], enc[:31]) && point[31] == enc[31]&0x7f
	},
}

// ed25519MultiplesY returns the encoded y-coordinates of k·B for k = 1 … n:
// extended-coordinate additions, then one shared inversion of Z per chunk.
func ed25519MultiplesY(n int) [][32]byte {
	const chunk = 1024
	out := make([][32]byte, 0, n)
	base := edwards25519.NewGeneratorPoint()
	p := edwards25519.NewGeneratorPoint()
	ys := make([]field.Element, 0, chunk)
	zs := make([]field.Element, 0, chunk)
	prefix := make([]field.Element, chunk)
	for k := 1; k <= n; k++ {
		_, y, z, _ := p.ExtendedCoordinates()
		ys, zs = append(ys, *y), append(zs, *z)
		if len(zs) == chunk || k == n {
			out = appendAffineY(out, ys, zs, prefix)
			ys, zs = ys[:0], zs[:0]
		}
		p.Add(p, base)
	}
	return out
}

// appendAffineY appends the encodings of y/z for each pair, inverting all
// the z at once (Montgomery's trick); scratch holds at least len(zs).
func appendAffineY(out [][32]byte, ys, zs, scratch []field.Element) [][32]byte {
	scratch[0] = zs[0]
	for i := 1; i < len(zs); i++ {
		scratch[i].Multiply(&scratch[i-1], &zs[i])
	}
	var inv field.Element
	inv.Invert(&scratch[len(zs)-1])
	affine := make([][32]byte, len(zs))
	for i := len(zs) - 1; i >= 0; i-- {
		zInv := inv
		if i > 0 {
			zInv.Multiply(&inv, &scratch[i-1])
			inv.Multiply(&inv, &zs[i])
		}
		var y field.Element
		y.Multiply(&ys[i], &zInv)
		copy(affine[i][:], y.Bytes())
	}
	return append(out, affine...)
}
