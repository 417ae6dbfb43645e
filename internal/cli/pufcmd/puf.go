// Package pufcmd owns "hallmark puf": enrolling and reconstructing a
// simulated SRAM PUF's seed, and the table of the fuzzy extractor's
// failure rate by bit error rate.
package pufcmd

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"math"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/hallmark-iot/hallmark/internal/cli/cmdline"
	"github.com/hallmark-iot/hallmark/internal/puf"
)

// maxHelperFile bounds what is read as helper data; the parser then insists
// on the exact size.
const maxHelperFile = 64 << 10

// New returns the puf command group.
func New(s *cmdline.Streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "puf",
		Short: "Simulate an SRAM PUF chip and its fuzzy extractor",
		Long: fmt.Sprintf(`A simulated SRAM PUF: every chip, named by a 64-hex-digit --chip-seed, has its
own stable cell values; every read flips each cell independently with
probability --ber. Enrolment majority-votes several reads and writes public
helper data; reconstruction turns one fresh noisy read and the helper data
back into the same 256-bit seed, or fails cleanly.

Code: %s.`, codeSummary()),
	}
	cmd.AddCommand(newPUFEnrolCmd(s), newPUFReconstructCmd(s), newPUFTableCmd(s))
	return cmd
}

func codeSummary() string {
	return fmt.Sprintf("inner repetition(%d) × outer BCH(%d,%d,t=%d) over GF(2^9) shortened from 511; "+
		"%d PUF bits for a %d-bit seed (%.2f PUF bits per seed bit); %d-byte helper data",
		puf.RepetitionLength, puf.BCHLength, puf.BCHMessageBits, puf.BCHCorrectable,
		puf.PUFBits, 8*puf.SeedSize, float64(puf.PUFBits)/(8*puf.SeedSize), puf.HelperSize)
}

// chipFlags are the flags that describe the simulated chip and what to do
// with the seed, shared by enrol and reconstruct.
type chipFlags struct {
	chipSeed string
	ber      float64
	bias     float64
	seedOut  string
}

func (f *chipFlags) bind(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.chipSeed, "chip-seed", "", "64 hex digits naming the simulated chip (required)")
	cmd.Flags().Float64Var(&f.ber, "ber", puf.DefaultBitErrorRate, "bit error rate of each read, in [0, 0.5)")
	cmd.Flags().Float64Var(&f.bias, "bias", puf.DefaultBias, "probability that a cell's stable value is 1, in (0, 1); must match enrolment")
	cmd.Flags().StringVar(&f.seedOut, "seed-out", "", "write the secret seed as hex to `FILE` (mode 0600; - for standard output); for testing only")
}

// chip builds the simulated chip the flags describe.
func (f *chipFlags) chip() (*puf.Chip, error) {
	if f.chipSeed == "" {
		return nil, cmdline.Usagef("--chip-seed is required (64 hex digits)")
	}
	raw, err := hex.DecodeString(f.chipSeed)
	if err != nil || len(raw) != 32 {
		return nil, cmdline.Usagef("--chip-seed must be 64 hex digits (32 bytes)")
	}
	cfg := puf.DefaultConfig()
	cfg.BitErrorRate, cfg.Bias = f.ber, f.bias
	chip, err := puf.NewChip([32]byte(raw), cfg)
	if err != nil {
		return nil, cmdline.Usage(err)
	}
	return chip, nil
}

// report returns where the human-readable summary goes: standard error when
// standard output carries the seed, so that it can be piped on.
func (f *chipFlags) report(s *cmdline.Streams) io.Writer {
	if f.seedOut == cmdline.Stdio {
		return s.Err
	}
	return s.Out
}

// finish prints the seed's fingerprint and writes the seed if asked to.
func (f *chipFlags) finish(s *cmdline.Streams, seed *[puf.SeedSize]byte) error {
	defer clear(seed[:])
	fp := sha256.Sum256(seed[:])
	fmt.Fprintf(f.report(s), "seed fingerprint: %x (SHA-256 of the seed)\n", fp)
	if f.seedOut == "" {
		return nil
	}
	text := []byte(hex.EncodeToString(seed[:]) + "\n")
	defer clear(text)
	return s.WriteOutput(f.seedOut, text, 0o600, true)
}

func newPUFEnrolCmd(s *cmdline.Streams) *cobra.Command {
	var f chipFlags
	var helperOut string
	var reads int
	var force bool
	cmd := &cobra.Command{
		Use:   "enrol --chip-seed HEX --helper-out FILE [--ber P] [--bias B] [--reads N]",
		Short: "Enrol a simulated chip: majority-vote N reads, write the helper data",
		Long: `Enrol a simulated chip: read it --reads times, majority-vote every cell into
the enrolment reference, and write the public helper data (binary, mode 0644)
to --helper-out. The seed itself is secret and is not printed; the command
prints SHA-256 of the seed, which reconstruct prints too, so the two can be
compared. --seed-out writes the seed for tests and for "keys derive".`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if helperOut == "" || helperOut == cmdline.Stdio {
				return cmdline.Usagef("--helper-out FILE is required (helper data is binary)")
			}
			if reads < 1 || reads%2 == 0 {
				return cmdline.Usagef("--reads must be a positive odd number, got %d", reads)
			}
			chip, err := f.chip()
			if err != nil {
				return err
			}
			seed, helper, err := puf.EnrolChip(chip, reads)
			if err != nil {
				return err
			}
			defer clear(seed[:])
			data, err := helper.MarshalBinary()
			if err != nil {
				return err
			}
			if err := s.WriteOutput(helperOut, data, 0o644, force); err != nil {
				return err
			}
			warnEntropy(s, f.bias)
			w := f.report(s)
			fmt.Fprintf(w, "enrolled: %d of %d cells used, majority of %d reads\n", puf.PUFBits, chip.Config().Cells, reads)
			fmt.Fprintf(w, "helper data: %d bytes written to %s\n", len(data), helperOut)
			return f.finish(s, &seed)
		},
	}
	f.bind(cmd)
	cmd.Flags().StringVar(&helperOut, "helper-out", "", "write the helper data to `FILE` (required)")
	cmd.Flags().IntVar(&reads, "reads", puf.DefaultEnrolReads, "number of reads to majority-vote (odd)")
	cmd.Flags().BoolVar(&force, "force", false, "replace an existing helper-data file")
	return cmd
}

// warnEntropy warns when biased cells leave less than a full seed's worth
// of min-entropy after the helper data is published.
func warnEntropy(s *cmdline.Streams, bias float64) {
	if h := puf.ResidualEntropy(bias); h < 8*puf.SeedSize {
		fmt.Fprintf(s.Err, "warning: with cell bias %v the helper data leaves about %.0f bits of min-entropy, less than the %d-bit seed\n",
			bias, h, 8*puf.SeedSize)
	}
}

func newPUFReconstructCmd(s *cmdline.Streams) *cobra.Command {
	var f chipFlags
	var helperPath string
	cmd := &cobra.Command{
		Use:   "reconstruct --chip-seed HEX --helper FILE [--ber P] [--bias B]",
		Short: "Reconstruct the seed from one fresh noisy read and the helper data",
		Long: `Power the simulated chip up once, read it, and reconstruct the enrolled seed
from that reading and the helper data. Prints the seed's SHA-256 fingerprint,
the same as enrol printed, or fails with exit status 1 when the reading is
too noisy or the helper data belongs to another chip.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if helperPath == "" {
				return cmdline.Usagef("--helper FILE is required (- for standard input)")
			}
			chip, err := f.chip()
			if err != nil {
				return err
			}
			data, err := s.ReadInput(helperPath, maxHelperFile, "helper data")
			if err != nil {
				return err
			}
			helper, err := puf.ParseHelperData(data)
			if err != nil {
				return fmt.Errorf("read helper data %s: %w", cmdline.DisplayPath(helperPath), err)
			}
			seed, err := puf.Reconstruct(chip.Read(), helper)
			if err != nil {
				return err
			}
			return f.finish(s, &seed)
		},
	}
	f.bind(cmd)
	cmd.Flags().StringVar(&helperPath, "helper", "", "helper data `FILE` written by enrol (- for standard input)")
	return cmd
}

// tableFlags are the flags of puf table.
type tableFlags struct {
	trials  int64
	bers    []float64
	workers int
	reads   int
	seed    string
}

func newPUFTableCmd(s *cmdline.Streams) *cobra.Command {
	var f tableFlags
	cmd := &cobra.Command{
		Use:   "table [--trials N] [--ber P,P,...] [--workers N] [--seed HEX]",
		Short: "Measure the key-reconstruction failure rate at several bit error rates",
		Long: `Measure the key-reconstruction failure rate end to end: simulate chips (one per
1000 trials), enrol each, then read and reconstruct --trials times per bit
error rate, counting every reconstruction that does not return the enrolled
seed. Prints the measured rate, its one-sided 95% Clopper-Pearson upper bound
and the exact analytic rate. The run seed printed with the table reproduces
the same counts with --seed, whatever --workers is.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			master, err := f.validate()
			if err != nil {
				return err
			}
			return runPUFTable(cmd.Context(), s, &f, master)
		},
	}
	cmd.Flags().Int64Var(&f.trials, "trials", 1_000_000, "reconstructions per bit error rate")
	cmd.Flags().Float64SliceVar(&f.bers, "ber", []float64{0.05, 0.10, 0.15, 0.20}, "bit error rates to measure, each in [0, 0.5)")
	cmd.Flags().IntVar(&f.workers, "workers", 0, "parallel workers (0: one per CPU)")
	cmd.Flags().IntVar(&f.reads, "reads", puf.DefaultEnrolReads, "reads majority-voted at each enrolment (odd)")
	cmd.Flags().StringVar(&f.seed, "seed", "", "64 hex digits to reproduce a run (default: random)")
	return cmd
}

// validate checks the flags and returns the run seed.
func (f *tableFlags) validate() ([32]byte, error) {
	var master [32]byte
	if f.trials <= 0 {
		return master, cmdline.Usagef("--trials must be positive, got %d", f.trials)
	}
	if len(f.bers) == 0 {
		return master, cmdline.Usagef("--ber needs at least one bit error rate")
	}
	for _, p := range f.bers {
		if !(p >= 0 && p < 0.5) {
			return master, cmdline.Usagef("--ber %v is outside [0, 0.5)", p)
		}
	}
	if f.workers < 0 {
		return master, cmdline.Usagef("--workers must not be negative, got %d", f.workers)
	}
	if f.reads < 1 || f.reads%2 == 0 {
		return master, cmdline.Usagef("--reads must be a positive odd number, got %d", f.reads)
	}
	if f.seed == "" {
		if _, err := rand.Read(master[:]); err != nil {
			return master, err
		}
		return master, nil
	}
	raw, err := hex.DecodeString(f.seed)
	if err != nil || len(raw) != len(master) {
		return master, cmdline.Usagef("--seed must be 64 hex digits (32 bytes)")
	}
	return [32]byte(raw), nil
}

// tableRow is the fixed-width layout of the table; rows are printed as each
// measurement finishes, since a large run takes minutes.
const tableRow = "%5s %11s %9s %10s %9s %9s %9s %8s\n"

func runPUFTable(ctx context.Context, s *cmdline.Streams, f *tableFlags, master [32]byte) error {
	fmt.Fprintf(s.Out, "Code: %s; enrolment majority of %d reads.\n", codeSummary(), f.reads)
	fmt.Fprintf(s.Out, "Run seed: %x\n\n", master)
	fmt.Fprintf(s.Out, tableRow, "BER", "TRIALS", "FAILURES", "UNDETECTED", "RATE", "95% UPPER", "ANALYTIC", "TIME")
	for _, ber := range f.bers {
		cfg := puf.DefaultConfig()
		cfg.BitErrorRate = ber
		seed := rowSeed(master, ber)
		start := time.Now()
		// A row of a million trials takes about half a minute: a terminal
		// shows how far it is (StartProgress), a pipe gets only the rows.
		var done atomic.Int64
		stop := s.StartProgress(cmdline.Progress{
			Label: fmt.Sprintf("BER %.2f", ber), Unit: "trials", Total: f.trials,
			Read: func() (int64, int64) { return done.Load(), 0 },
		})
		r, err := puf.MeasureFailureRate(ctx, puf.MeasureConfig{
			Chip: cfg, Trials: f.trials, Workers: f.workers, EnrolReads: f.reads,
			Seed: &seed, Progress: done.Store,
		})
		stop()
		if err != nil {
			return fmt.Errorf("table at BER %v: %w", ber, err)
		}
		fmt.Fprintf(s.Out, tableRow, fmt.Sprintf("%.2f", ber), fmt.Sprint(r.Trials), fmt.Sprint(r.Failures),
			fmt.Sprint(r.Undetected), formatRate(r.Rate), fmt.Sprintf("%.2e", r.Upper95),
			fmt.Sprintf("%.2e", r.Analytic), time.Since(start).Round(100*time.Millisecond))
	}
	_, err := fmt.Fprintln(s.Out, "\nRATE = FAILURES/TRIALS; 95% UPPER = one-sided Clopper-Pearson bound; "+
		"ANALYTIC = exact P(more than 19 of 418 repetition blocks fail).")
	return err
}

// rowSeed gives every bit error rate its own chips and noise, derived from
// the run seed, so a row does not depend on which other rows were asked for.
func rowSeed(master [32]byte, ber float64) [32]byte {
	b := append([]byte("hallmark puf table row v1\x00"), master[:]...)
	b = binary.BigEndian.AppendUint64(b, math.Float64bits(ber))
	return sha256.Sum256(b)
}

func formatRate(r float64) string {
	if r == 0 {
		return "0"
	}
	return fmt.Sprintf("%.2e", r)
}
