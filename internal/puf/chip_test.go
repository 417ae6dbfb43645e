package puf

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"testing"
)

// testChip returns a chip with reproducible cells and noise.
func testChip(t testing.TB, seed byte, cfg Config) *Chip {
	t.Helper()
	noise := [32]byte{seed, 0xee}
	cfg.NoiseSeed = &noise
	c, err := NewChip([32]byte{seed}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func onesFraction(b []byte, nbits int) float64 {
	n := 0
	for _, x := range b {
		n += bits.OnesCount8(x)
	}
	return float64(n) / float64(nbits)
}

func hamming(a, b []byte) int {
	d := 0
	for i := range a {
		d += bits.OnesCount8(a[i] ^ b[i])
	}
	return d
}

func TestConfigValidation(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"negative BER", Config{BitErrorRate: -0.01}},
		{"BER one half", Config{BitErrorRate: 0.5}},
		{"BER NaN", Config{BitErrorRate: math.NaN()}},
		{"bias one", Config{Bias: 1}},
		{"negative bias", Config{Bias: -0.2}},
		{"bias NaN", Config{Bias: math.NaN()}},
		{"too few cells", Config{Cells: PUFBits - 1}},
		{"too many cells", Config{Cells: maxCells + 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewChip([32]byte{}, tt.cfg)
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("err = %v, want ErrInvalidConfig", err)
			}
		})
	}
	t.Run("zero value gets defaults", func(t *testing.T) {
		c, err := NewChip([32]byte{}, Config{})
		if err != nil {
			t.Fatal(err)
		}
		got := c.Config()
		if got.BitErrorRate != 0 || got.Bias != DefaultBias || got.Cells != DefaultCells {
			t.Fatalf("config %+v", got)
		}
	})
}

func TestChipCellsDependOnSeedOnly(t *testing.T) {
	cfg := Config{BitErrorRate: 0}
	a1 := testChip(t, 1, cfg).Read()
	cfg.NoiseSeed = &[32]byte{99} // different noise, no effect without noise
	a2, err := NewChip([32]byte{1}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if hamming(a1, a2.Read()) != 0 {
		t.Fatal("same chip seed gave different cells")
	}
	b := testChip(t, 2, Config{}).Read()
	if d := float64(hamming(a1, b)) / DefaultCells; d < 0.45 || d > 0.55 {
		t.Fatalf("two chips differ in %.3f of their cells, want about half", d)
	}
}

func TestChipBias(t *testing.T) {
	for _, bias := range []float64{0.1, 0.5, 0.8} {
		t.Run(fmt.Sprintf("bias=%v", bias), func(t *testing.T) {
			const cells = 1 << 16
			c := testChip(t, 3, Config{Bias: bias, Cells: cells})
			// 5 standard deviations of the fraction of ones is below 0.01.
			if f := onesFraction(c.Read(), cells); math.Abs(f-bias) > 0.01 {
				t.Fatalf("bias %v: fraction of ones %.4f", bias, f)
			}
		})
	}
}

func TestChipNoiseRate(t *testing.T) {
	for _, ber := range []float64{0, 0.05, 0.15, 0.3} {
		t.Run(fmt.Sprintf("ber=%v", ber), func(t *testing.T) {
			stable := testChip(t, 4, Config{}).Read()
			c := testChip(t, 4, Config{BitErrorRate: ber})
			const reads = 100
			flips := 0
			for range reads {
				flips += hamming(stable, c.Read())
			}
			got := float64(flips) / (reads * DefaultCells)
			// Tolerance is over 7 standard deviations at 15 %.
			if math.Abs(got-ber) > 0.004 {
				t.Fatalf("BER %v: measured %.4f", ber, got)
			}
		})
	}
}

func TestChipReadLayout(t *testing.T) {
	const cells = PUFBits + 4 // not a multiple of 8 or 64
	c := testChip(t, 5, Config{BitErrorRate: 0.3, Cells: cells})
	if got, want := c.ReadSize(), (cells+7)/8; got != want {
		t.Fatalf("ReadSize = %d, want %d", got, want)
	}
	for range 50 {
		r := c.Read()
		if pad := r[len(r)-1] >> (cells % 8); pad != 0 {
			t.Fatalf("padding bits %b are not zero", pad)
		}
	}
	if err := c.ReadInto(make([]byte, c.ReadSize()-1)); err == nil {
		t.Fatal("ReadInto accepted a short buffer")
	}
	buf := make([]byte, c.ReadSize())
	if err := c.ReadInto(buf); err != nil {
		t.Fatal(err)
	}
}

func TestChipNoiseReproducible(t *testing.T) {
	a := testChip(t, 6, DefaultConfig())
	b := testChip(t, 6, DefaultConfig())
	for range 10 {
		if hamming(a.Read(), b.Read()) != 0 {
			t.Fatal("same noise seed gave different readings")
		}
	}
}

func TestBernoulliMask(t *testing.T) {
	for _, p := range []float64{0, 1.0 / 3, 0.5, 0.999} {
		t.Run(fmt.Sprintf("p=%.3f", p), func(t *testing.T) {
			src := rand.NewChaCha8([32]byte{8})
			const words = 4000
			ones := 0
			for range words {
				ones += bits.OnesCount64(bernoulliMask(src, fraction32(p)))
			}
			got := float64(ones) / (words * 64)
			if math.Abs(got-p) > 0.005 { // over 5 standard deviations
				t.Fatalf("p = %v: fraction %.4f", p, got)
			}
		})
	}
}
