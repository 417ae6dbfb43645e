package puf

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
)

// stableEnrolment enrols chip seed from its noise-free cell values, so that
// tests know the reference exactly.
func stableEnrolment(t *testing.T, seed byte) (stable []byte, want [SeedSize]byte, helper *HelperData) {
	t.Helper()
	stable = testChip(t, seed, Config{}).Read()
	want, helper, err := enrol([][]byte{stable}, rand.NewChaCha8([32]byte{seed, 1}))
	if err != nil {
		t.Fatal(err)
	}
	return stable, want, helper
}

func flipBit(b []byte, i int) { b[i/8] ^= 1 << (i % 8) }

func TestEnrolReconstructRoundTrip(t *testing.T) {
	for _, ber := range []float64{0, 0.05, 0.15} {
		t.Run(fmt.Sprintf("ber=%v", ber), func(t *testing.T) {
			chip := testChip(t, 10, Config{BitErrorRate: ber})
			want, helper, err := enrolChip(chip, DefaultEnrolReads, rand.NewChaCha8([32]byte{10}))
			if err != nil {
				t.Fatal(err)
			}
			if want == ([SeedSize]byte{}) {
				t.Fatal("seed is all zero")
			}
			// Deterministic noise: these 100 readings are known to decode
			// (the failure probability at 15 % is 3e-7 per reading).
			for i := range 100 {
				got, err := Reconstruct(chip.Read(), helper)
				if err != nil {
					t.Fatalf("reading %d: %v", i, err)
				}
				if got != want {
					t.Fatalf("reading %d: wrong seed", i)
				}
			}
		})
	}
}

func TestEnrolChipPublicAPI(t *testing.T) {
	chip, err := NewChip([32]byte{11}, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	s1, h1, err := EnrolChip(chip, DefaultEnrolReads)
	if err != nil {
		t.Fatal(err)
	}
	s2, h2, err := EnrolChip(chip, DefaultEnrolReads)
	if err != nil {
		t.Fatal(err)
	}
	if s1 == s2 || h1.Salt == h2.Salt {
		t.Fatal("two enrolments of one chip gave the same seed or salt")
	}
	got, err := Reconstruct(chip.Read(), h2)
	if err != nil || got != s2 {
		t.Fatalf("reconstruct after EnrolChip: %v", err)
	}
}

// TestReconstructBlockErrors checks the exact correction boundary: up to t
// failed repetition blocks (4 or more flips of 7) are corrected, with up to
// 3 flips in every other block; t+1 failed blocks are always rejected.
func TestReconstructBlockErrors(t *testing.T) {
	stable, want, helper := stableEnrolment(t, 12)
	rng := rand.New(rand.NewPCG(12, 12))
	for _, failed := range []int{0, 1, bchT - 1, bchT, bchT + 1, bchT + 5, 60} {
		t.Run(fmt.Sprintf("failed=%d", failed), func(t *testing.T) {
			for range 20 {
				reading := append([]byte(nil), stable...)
				for i, b := range rng.Perm(bchN) {
					flips := rng.IntN(4) // 0..3: the block still decodes
					if i < failed {
						flips = 4 + rng.IntN(4)
					}
					for _, j := range rng.Perm(RepetitionLength)[:flips] {
						flipBit(reading, b*RepetitionLength+j)
					}
				}
				got, err := Reconstruct(reading, helper)
				if failed <= bchT {
					if err != nil || got != want {
						t.Fatalf("not corrected: %v", err)
					}
				} else if !errors.Is(err, ErrReconstruct) {
					t.Fatalf("err = %v, want ErrReconstruct", err)
				}
			}
		})
	}
}

func TestReconstructWrongChip(t *testing.T) {
	_, _, helper := stableEnrolment(t, 13)
	other := testChip(t, 14, Config{}).Read()
	if _, err := Reconstruct(other, helper); !errors.Is(err, ErrReconstruct) {
		t.Fatalf("err = %v, want ErrReconstruct", err)
	}
}

func TestHelperTampering(t *testing.T) {
	stable, want, helper := stableEnrolment(t, 15)
	tests := []struct {
		name   string
		tamper func(h *HelperData)
	}{
		{"offset bit", func(h *HelperData) { flipBit(h.Offset[:], 100) }},
		{"last offset bit", func(h *HelperData) { flipBit(h.Offset[:], PUFBits-1) }},
		{"whole block", func(h *HelperData) {
			for j := range RepetitionLength {
				flipBit(h.Offset[:], 7*RepetitionLength+j)
			}
		}},
		{"salt", func(h *HelperData) { h.Salt[0] ^= 1 }},
		{"check tag", func(h *HelperData) { h.Check[CheckSize-1] ^= 0x80 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := *helper
			tt.tamper(&h)
			if _, err := Reconstruct(stable, &h); !errors.Is(err, ErrReconstruct) {
				t.Fatalf("err = %v, want ErrReconstruct", err)
			}
		})
	}
	// Adding a codeword of the concatenated code only changes which message
	// encodes the same reference: the seed is unchanged.
	t.Run("codeword added", func(t *testing.T) {
		msg := [bchK / 8]byte{0xde, 0xad}
		cw := bchEncode(&msg)
		var shift [OffsetSize]byte
		repEncode(&shift, &cw)
		h := *helper
		for i := range h.Offset {
			h.Offset[i] ^= shift[i]
		}
		got, err := Reconstruct(stable, &h)
		if err != nil || got != want {
			t.Fatalf("seed changed or failed: %v", err)
		}
	})
}

func TestMajority(t *testing.T) {
	a := make([]byte, OffsetSize)
	b := make([]byte, OffsetSize)
	for i := range a {
		a[i], b[i] = 0x0f, 0x3c
	}
	a[OffsetSize-1], b[OffsetSize-1] = 0, 0
	ref := majority([][]byte{a, b, a})
	for i := range OffsetSize - 1 {
		if ref[i] != 0x0f {
			t.Fatalf("byte %d = %#x, want the majority 0x0f", i, ref[i])
		}
	}
	ref = majority([][]byte{a, b, b})
	if ref[0] != 0x3c {
		t.Fatalf("byte 0 = %#x, want 0x3c", ref[0])
	}
}

func TestEnrolRejects(t *testing.T) {
	good := make([]byte, OffsetSize)
	tests := []struct {
		name     string
		readings [][]byte
	}{
		{"no readings", nil},
		{"even count", [][]byte{good, good}},
		{"short reading", [][]byte{good[:OffsetSize-1]}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := Enrol(tt.readings); err == nil {
				t.Fatal("enrol succeeded")
			}
		})
	}
	chip := testChip(t, 16, Config{})
	if _, _, err := EnrolChip(chip, 0); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("EnrolChip(0 reads): err = %v", err)
	}
}

func TestReconstructRejects(t *testing.T) {
	stable, _, helper := stableEnrolment(t, 17)
	if _, err := Reconstruct(stable[:OffsetSize-1], helper); err == nil || errors.Is(err, ErrReconstruct) {
		t.Fatalf("short reading: err = %v", err)
	}
	if _, err := Reconstruct(stable, nil); !errors.Is(err, ErrMalformedHelper) {
		t.Fatalf("nil helper: err = %v", err)
	}
	h := *helper
	h.Offset[OffsetSize-1] |= 0x80
	if _, err := Reconstruct(stable, &h); !errors.Is(err, ErrMalformedHelper) {
		t.Fatalf("padding set: err = %v", err)
	}
}

func TestRepetitionCode(t *testing.T) {
	rng := rand.New(rand.NewPCG(18, 18))
	msg := randomMessage(rng)
	cw := bchEncode(&msg)
	var enc [OffsetSize]byte
	repEncode(&enc, &cw)
	var noisy [OffsetSize + 1]byte
	copy(noisy[:], enc[:])
	if got := repDecode(&noisy); got != cw {
		t.Fatal("clean round trip failed")
	}
	for b := range bchN { // 3 flips per block are corrected
		for _, j := range rng.Perm(RepetitionLength)[:3] {
			flipBit(noisy[:], b*RepetitionLength+j)
		}
	}
	if got := repDecode(&noisy); got != cw {
		t.Fatal("3 flips per block not corrected")
	}
	copy(noisy[:], enc[:])
	for j := range 4 { // a fourth flip in block 0 inverts it
		flipBit(noisy[:], j)
	}
	got := repDecode(&noisy)
	if got[0]&1 == cw[0]&1 || got[0]>>1 != cw[0]>>1 {
		t.Fatal("4 flips in block 0 should invert exactly bit 0")
	}
}
