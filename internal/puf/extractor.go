// Package puf owns Hallmark's simulated SRAM physically unclonable function
// and the fuzzy extractor that turns its noisy readings into a stable
// 256-bit device seed: the chip model, the error-correcting codes, the
// public helper-data format and its parser, and the statistics used to
// measure and bound the key-reconstruction failure rate. Deriving key pairs
// from the seed belongs to other packages.
//
// The extractor is the code-offset construction over a concatenated code:
// an inner repetition code of length 7 (majority vote) and an outer binary
// BCH(418, 256, t = 19) code shortened from length 511. It uses
// PUFBits = 418·7 = 2926 PUF bits and HelperSize = 405 bytes of helper data.
// Privacy amplification is HKDF-SHA256 over the recovered enrolment
// reference.
package puf

import (
	"crypto/hkdf"
	cryptorand "crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"math/bits"
)

// Extractor dimensions.
const (
	// RepetitionLength is the length of the inner repetition code.
	RepetitionLength = 7
	// BCHLength, BCHMessageBits and BCHCorrectable are n, k and t of the
	// shortened outer BCH code.
	BCHLength      = bchN
	BCHMessageBits = bchK
	BCHCorrectable = bchT
	// PUFBits is the number of PUF cells the extractor uses: the first
	// PUFBits bits of a reading.
	PUFBits = BCHLength * RepetitionLength
	// SeedSize is the size of the reconstructed seed in bytes.
	SeedSize = 32
	// DefaultEnrolReads is how many readings enrolment majority-votes.
	DefaultEnrolReads = 31
	// maxEnrolReads bounds the work one enrolment can be asked to do.
	maxEnrolReads = 1001
)

// HKDF info strings; the version suffix ties them to helper-data version 1.
const (
	seedInfo  = "hallmark puf seed v1"
	checkInfo = "hallmark puf check v1"
)

// ErrReconstruct means the reading was too noisy (or the helper data does
// not belong to this chip): the check tag did not match, so no seed is
// returned rather than a wrong one.
var ErrReconstruct = errors.New("PUF key reconstruction failed")

// Enrol majority-votes the readings cell by cell into the enrolment
// reference, then derives the seed and the public helper data from it. The
// number of readings must be odd so that every vote has a winner; each
// reading must hold at least PUFBits bits. Fresh randomness comes from
// crypto/rand.
func Enrol(readings [][]byte) (seed [SeedSize]byte, helper *HelperData, err error) {
	return enrol(readings, cryptorand.Reader)
}

// EnrolChip reads the chip reads times and enrols the result.
func EnrolChip(c *Chip, reads int) (seed [SeedSize]byte, helper *HelperData, err error) {
	return enrolChip(c, reads, cryptorand.Reader)
}

func enrolChip(c *Chip, reads int, rnd io.Reader) ([SeedSize]byte, *HelperData, error) {
	if err := checkReads(reads); err != nil {
		return [SeedSize]byte{}, nil, fmt.Errorf("enrol: %w", err)
	}
	readings := make([][]byte, reads)
	for i := range readings {
		readings[i] = c.Read()
	}
	return enrol(readings, rnd)
}

func checkReads(n int) error {
	if n < 1 || n > maxEnrolReads || n%2 == 0 {
		return fmt.Errorf("%w: enrolment needs an odd number of readings in [1, %d], got %d", ErrInvalidConfig, maxEnrolReads, n)
	}
	return nil
}

// enrol takes its randomness (message and salt) from rnd so that
// measurements can be reproduced from a seed.
func enrol(readings [][]byte, rnd io.Reader) (seed [SeedSize]byte, helper *HelperData, err error) {
	if err := checkReads(len(readings)); err != nil {
		return seed, nil, fmt.Errorf("enrol: %w", err)
	}
	for i, r := range readings {
		if len(r) < OffsetSize {
			return seed, nil, fmt.Errorf("enrol: reading %d has %d bytes, need at least %d", i, len(r), OffsetSize)
		}
	}
	ref := majority(readings)
	defer clear(ref[:])
	var msg [bchK / 8]byte
	defer clear(msg[:])
	helper = new(HelperData)
	if _, err := io.ReadFull(rnd, msg[:]); err != nil {
		return seed, nil, fmt.Errorf("enrol: random message: %w", err)
	}
	if _, err := io.ReadFull(rnd, helper.Salt[:]); err != nil {
		return seed, nil, fmt.Errorf("enrol: random salt: %w", err)
	}
	cw := bchEncode(&msg)
	defer clear(cw[:])
	repEncode(&helper.Offset, &cw)
	for i := range helper.Offset {
		helper.Offset[i] ^= ref[i]
	}
	seed, check, err := deriveKeys(&ref, &helper.Salt)
	if err != nil {
		return seed, nil, fmt.Errorf("enrol: %w", err)
	}
	helper.Check = check
	return seed, helper, nil
}

// majority returns, for each of the PUFBits cells, the value most readings
// agree on. Industry quotes SRAM bit error rates against this stable value,
// so the reference is as close to it as enrolment can get.
func majority(readings [][]byte) (ref [OffsetSize]byte) {
	half := len(readings) / 2
	for i := range PUFBits {
		ones := 0
		for _, r := range readings {
			ones += int(r[i/8] >> (i % 8) & 1)
		}
		if ones > half {
			ref[i/8] |= 1 << (i % 8)
		}
	}
	return ref
}

// Reconstruct recovers the enrolled seed from a fresh reading (at least
// PUFBits bits) and the chip's helper data. It returns ErrReconstruct when
// the reading has too many errors, and an error wrapping ErrMalformedHelper
// when the helper data is not well-formed.
func Reconstruct(reading []byte, helper *HelperData) (seed [SeedSize]byte, err error) {
	if len(reading) < OffsetSize {
		return seed, fmt.Errorf("reconstruct: reading has %d bytes, need at least %d", len(reading), OffsetSize)
	}
	if err := helper.validate(); err != nil {
		return seed, fmt.Errorf("reconstruct: %w", err)
	}
	// Shift the reading onto the code: reading XOR offset is a codeword of
	// the concatenated code plus the read errors.
	var noisy [OffsetSize + 1]byte // one spare byte for 16-bit loads
	defer clear(noisy[:])
	for i := range OffsetSize {
		noisy[i] = reading[i] ^ helper.Offset[i]
	}
	cw := repDecode(&noisy)
	defer clear(cw[:])
	if !bchDecode(&cw) {
		return seed, fmt.Errorf("reconstruct: %w (uncorrectable errors)", ErrReconstruct)
	}
	// Recompute the reference from the helper data rather than correcting
	// the reading: any change to the offset then changes the reference and
	// fails the check tag, unless it is itself a codeword and cancels out.
	var ref [OffsetSize]byte
	defer clear(ref[:])
	repEncode(&ref, &cw)
	for i := range ref {
		ref[i] ^= helper.Offset[i]
	}
	seed, check, err := deriveKeys(&ref, &helper.Salt)
	if err != nil {
		return [SeedSize]byte{}, fmt.Errorf("reconstruct: %w", err)
	}
	if subtle.ConstantTimeCompare(check[:], helper.Check[:]) != 1 {
		clear(seed[:])
		return seed, fmt.Errorf("reconstruct: %w (check tag mismatch)", ErrReconstruct)
	}
	return seed, nil
}

// deriveKeys is the privacy amplification step: HKDF-SHA256 with the
// reference as input keying material. The check tag comes from the same
// pseudorandom key under a different label, so it reveals nothing about the
// seed.
func deriveKeys(ref *[OffsetSize]byte, salt *[SaltSize]byte) (seed [SeedSize]byte, check [CheckSize]byte, err error) {
	prk, err := hkdf.Extract(sha256.New, ref[:], salt[:])
	if err != nil {
		return seed, check, fmt.Errorf("hkdf extract: %w", err)
	}
	defer clear(prk)
	s, err := hkdf.Expand(sha256.New, prk, seedInfo, SeedSize)
	if err != nil {
		return seed, check, fmt.Errorf("hkdf expand: %w", err)
	}
	copy(seed[:], s)
	clear(s)
	c, err := hkdf.Expand(sha256.New, prk, checkInfo, CheckSize)
	if err != nil {
		return seed, check, fmt.Errorf("hkdf expand: %w", err)
	}
	copy(check[:], c)
	return seed, check, nil
}

// repEncode writes the repetition encoding of cw, bit b repeated in bits
// 7b..7b+6, into dst (which it overwrites).
func repEncode(dst *[OffsetSize]byte, cw *bchCodeword) {
	clear(dst[:])
	for b := range bchN {
		if cw[b/64]>>(b%64)&1 == 0 {
			continue
		}
		o := b * RepetitionLength
		v := uint16(1<<RepetitionLength-1) << (o % 8)
		dst[o/8] |= byte(v)
		if v>>8 != 0 {
			dst[o/8+1] |= byte(v >> 8)
		}
	}
}

// repDecode majority-decodes each 7-bit block of noisy into one bit.
func repDecode(noisy *[OffsetSize + 1]byte) (cw bchCodeword) {
	for b := range bchN {
		o := b * RepetitionLength
		block := (uint16(noisy[o/8]) | uint16(noisy[o/8+1])<<8) >> (o % 8) & (1<<RepetitionLength - 1)
		if bits.OnesCount16(block) > RepetitionLength/2 {
			cw[b/64] |= 1 << (b % 64)
		}
	}
	return cw
}
