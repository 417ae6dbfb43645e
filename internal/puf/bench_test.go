package puf

import (
	"math/rand/v2"
	"testing"
)

// benchChip returns an enrolled chip at the default 15 % bit error rate.
func benchChip(b *testing.B) (*Chip, [SeedSize]byte, *HelperData) {
	b.Helper()
	noise := [32]byte{1}
	cfg := DefaultConfig()
	cfg.NoiseSeed = &noise
	chip, err := NewChip([32]byte{7}, cfg)
	if err != nil {
		b.Fatal(err)
	}
	seed, helper, err := enrolChip(chip, DefaultEnrolReads, rand.NewChaCha8([32]byte{9}))
	if err != nil {
		b.Fatal(err)
	}
	return chip, seed, helper
}

// BenchmarkReconstruct measures decoding plus key derivation on
// pre-generated noisy readings.
func BenchmarkReconstruct(b *testing.B) {
	chip, _, helper := benchChip(b)
	readings := make([][]byte, 256)
	for i := range readings {
		readings[i] = chip.Read()
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		// A rare decoding failure is part of what is measured.
		_, _ = Reconstruct(readings[i%len(readings)], helper)
		i++
	}
}

// BenchmarkRead measures one noisy read of a DefaultCells chip at 15 %.
func BenchmarkRead(b *testing.B) {
	chip, _, _ := benchChip(b)
	buf := make([]byte, chip.ReadSize())
	b.ReportAllocs()
	for b.Loop() {
		if err := chip.ReadInto(buf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadAndReconstruct is one trial of the failure-rate measurement.
func BenchmarkReadAndReconstruct(b *testing.B) {
	chip, want, helper := benchChip(b)
	buf := make([]byte, chip.ReadSize())
	b.ReportAllocs()
	for b.Loop() {
		chip.read(buf)
		if got, err := Reconstruct(buf, helper); err == nil && got != want {
			b.Fatal("wrong seed without error")
		}
	}
}

// BenchmarkBCHDecode measures the outer decoder alone with five errors, the
// mean number of inner-block errors at 15 %.
func BenchmarkBCHDecode(b *testing.B) {
	msg := [bchK / 8]byte{1, 2, 3}
	clean := bchEncode(&msg)
	noisy := clean
	for _, p := range []int{3, 77, 160, 250, 411} {
		noisy[p/64] ^= 1 << (p % 64)
	}
	b.ReportAllocs()
	for b.Loop() {
		cw := noisy
		if !bchDecode(&cw) || cw != clean {
			b.Fatal("decoding failed")
		}
	}
}

// BenchmarkEnrol measures an enrolment with the default 31 readings.
func BenchmarkEnrol(b *testing.B) {
	chip, _, _ := benchChip(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := EnrolChip(chip, DefaultEnrolReads); err != nil {
			b.Fatal(err)
		}
	}
}
