package puf

import (
	cryptorand "crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
)

// Simulated chip defaults. DefaultBitErrorRate is the 15 % read noise the
// extractor is dimensioned for; DefaultCells is a 512-byte SRAM block, of
// which the extractor uses the first PUFBits cells.
const (
	DefaultBitErrorRate = 0.15
	DefaultBias         = 0.5
	DefaultCells        = 4096
	maxCells            = 1 << 24 // keeps a typo from allocating gigabytes
)

// ErrInvalidConfig is wrapped by every configuration validation error.
var ErrInvalidConfig = errors.New("invalid PUF configuration")

// Config describes a simulated SRAM chip.
type Config struct {
	// BitErrorRate is the probability that one read returns the complement
	// of a cell's stable value, independently for every cell and read. It
	// is used as given: 0 means a noise-free chip. Must be in [0, 0.5).
	BitErrorRate float64
	// Bias is the probability that a cell's stable value is 1. Zero selects
	// DefaultBias. Must be in (0, 1).
	Bias float64
	// Cells is the number of SRAM cells. Zero selects DefaultCells. Must be
	// at least PUFBits.
	Cells int
	// NoiseSeed seeds the read-noise generator. Nil draws a fresh seed from
	// crypto/rand; tests and reproducible measurements set it.
	NoiseSeed *[32]byte
}

// DefaultConfig returns the configuration of a typical chip: 15 % bit error
// rate, unbiased cells, DefaultCells cells.
func DefaultConfig() Config {
	return Config{BitErrorRate: DefaultBitErrorRate, Bias: DefaultBias, Cells: DefaultCells}
}

// withDefaults fills the fields whose zero value means "default" and checks
// the result.
func (c Config) withDefaults() (Config, error) {
	if c.Bias == 0 {
		c.Bias = DefaultBias
	}
	if c.Cells == 0 {
		c.Cells = DefaultCells
	}
	// Written as negations so that NaN fails every check.
	if !(c.BitErrorRate >= 0 && c.BitErrorRate < 0.5) {
		return c, fmt.Errorf("%w: bit error rate %v is outside [0, 0.5)", ErrInvalidConfig, c.BitErrorRate)
	}
	if !(c.Bias > 0 && c.Bias < 1) {
		return c, fmt.Errorf("%w: bias %v is outside (0, 1)", ErrInvalidConfig, c.Bias)
	}
	if c.Cells < PUFBits || c.Cells > maxCells {
		return c, fmt.Errorf("%w: %d cells is outside [%d, %d]", ErrInvalidConfig, c.Cells, PUFBits, maxCells)
	}
	return c, nil
}

// Chip is a simulated SRAM PUF: a fixed array of cells whose stable
// power-up values are derived from a per-chip seed, read through
// independent bit-flip noise. A Chip is not safe for concurrent use because
// reads advance its noise generator.
type Chip struct {
	cfg   Config
	cells []uint64 // stable values, bit i of the chip is cells[i/64] bit i%64
	tail  uint64   // mask of the cells present in the last word
	noise *rand.ChaCha8
	ber   uint64 // BitErrorRate as a 32-bit binary fraction
}

// NewChip creates the chip identified by seed: the same seed and Bias always
// give the same stable cell values.
func NewChip(seed [32]byte, cfg Config) (*Chip, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("new chip: %w", err)
	}
	// Hash the seed with a label so that cell values never coincide with
	// another use of the same 32 bytes.
	cellKey := sha256.Sum256(append([]byte("hallmark puf chip cells v1\x00"), seed[:]...))
	cellRNG := rand.NewChaCha8(cellKey)
	bias := fraction32(cfg.Bias)
	cells := make([]uint64, (cfg.Cells+63)/64)
	for i := range cells {
		cells[i] = bernoulliMask(cellRNG, bias)
	}
	tail := ^uint64(0)
	if rem := cfg.Cells % 64; rem != 0 {
		tail = 1<<rem - 1
	}
	cells[len(cells)-1] &= tail
	var noiseSeed [32]byte
	if cfg.NoiseSeed != nil {
		noiseSeed = *cfg.NoiseSeed
	} else {
		cryptorand.Read(noiseSeed[:]) // never fails since Go 1.24
	}
	return &Chip{cfg: cfg, cells: cells, tail: tail, noise: rand.NewChaCha8(noiseSeed), ber: fraction32(cfg.BitErrorRate)}, nil
}

// Config returns the chip's configuration with defaults filled in.
func (c *Chip) Config() Config { return c.cfg }

// ReadSize is the length in bytes of one reading: one bit per cell, bit i in
// byte i/8 at position i%8 (least significant first), unused high bits zero.
func (c *Chip) ReadSize() int { return (c.cfg.Cells + 7) / 8 }

// Read powers the chip up once and returns the noisy cell values.
func (c *Chip) Read() []byte {
	dst := make([]byte, c.ReadSize())
	c.read(dst)
	return dst
}

// ReadInto is Read without allocation, for measurement loops. dst must be
// exactly ReadSize bytes long.
func (c *Chip) ReadInto(dst []byte) error {
	if len(dst) != c.ReadSize() {
		return fmt.Errorf("read: buffer is %d bytes, want %d", len(dst), c.ReadSize())
	}
	c.read(dst)
	return nil
}

func (c *Chip) read(dst []byte) {
	var tmp [8]byte
	last := len(c.cells) - 1
	for i, v := range c.cells {
		if c.ber != 0 {
			v ^= bernoulliMask(c.noise, c.ber)
		}
		if i == last {
			v &= c.tail // cells beyond the last one read as zero
			binary.LittleEndian.PutUint64(tmp[:], v)
			copy(dst[8*i:], tmp[:])
			break
		}
		binary.LittleEndian.PutUint64(dst[8*i:], v)
	}
}

// fraction32 converts a probability to a 32-bit binary fraction p32/2^32,
// the resolution bernoulliMask works at (error below 1.2e-10).
func fraction32(p float64) uint64 {
	f := math.Round(p * (1 << 32))
	return min(uint64(f), 1<<32-1)
}

// bernoulliMask returns 64 independent bits, each 1 with probability
// p32/2^32. Lane j is 1 iff a uniform 32-bit number U_j < p32; the lanes'
// U_j are compared with p32 bit-serially from the most significant bit, one
// random word per bit position for all 64 lanes at once, stopping when every
// lane is decided. Half the undecided lanes are decided per word, so about
// 7–8 words give 64 bits instead of 32 for one uint32 draw per bit.
func bernoulliMask(src *rand.ChaCha8, p32 uint64) uint64 {
	if p32 == 0 {
		return 0
	}
	var ones uint64
	undecided := ^uint64(0)
	// Below p32's lowest set bit no lane can still become 1.
	low := bits.TrailingZeros64(p32)
	for bit := 31; bit >= low && undecided != 0; bit-- {
		u := src.Uint64()
		if p32>>bit&1 == 1 {
			ones |= undecided &^ u // U bit 0 < p bit 1: U < p
			undecided &= u
		} else {
			undecided &^= u // U bit 1 > p bit 0: U > p
		}
	}
	return ones // lanes still undecided have U == p32, which is not < p32
}
