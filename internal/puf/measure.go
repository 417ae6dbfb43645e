package puf

import (
	"context"
	cryptorand "crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
)

// trialsPerChip is how many reconstructions each simulated chip undergoes
// after its enrolment. Spreading trials over many chips averages over
// enrolment outcomes (a rare mis-voted reference cell), which is what the
// analytic rate describes; enrolling costs about as much as 30 trials, so
// 1000 keeps that overhead near 3 %.
const trialsPerChip = 1000

// MeasureConfig describes a failure-rate measurement.
type MeasureConfig struct {
	// Chip is the simulated chip model; Chip.BitErrorRate is the rate under
	// test. Chip.NoiseSeed is ignored: every chip gets its own.
	Chip Config
	// Trials is the number of reconstructions, at least 1.
	Trials int64
	// Workers is the number of goroutines; 0 means GOMAXPROCS.
	Workers int
	// EnrolReads is the number of readings each enrolment votes over; 0
	// means DefaultEnrolReads.
	EnrolReads int
	// Seed, when set, makes the run reproducible: it determines every
	// chip, reading and enrolment, whatever the number of workers. Nil
	// draws one from crypto/rand (reported in Result.Seed).
	Seed *[32]byte
	// Progress, if set, is called with the number of trials done so far
	// after each chip; calls never overlap.
	Progress func(done int64)
}

// Result is the outcome of MeasureFailureRate.
type Result struct {
	BitErrorRate float64
	Trials       int64
	// Failures counts reconstructions that did not return the enrolled
	// seed: ErrReconstruct and wrong seeds alike.
	Failures int64
	// Undetected counts the failures that returned a wrong seed without an
	// error, i.e. that the check tag missed. It should be zero.
	Undetected int64
	// Rate is Failures/Trials; Upper95 its one-sided 95 % Clopper–Pearson
	// upper bound; Analytic the exact rate from AnalyticFailureRate.
	Rate, Upper95, Analytic float64
	// Seed reproduces this measurement through MeasureConfig.Seed.
	Seed [32]byte
}

// MeasureFailureRate runs end-to-end reconstructions (read, reconstruct,
// compare the seed with the enrolled one) on freshly simulated chips, in
// parallel, and counts failures.
func MeasureFailureRate(ctx context.Context, mc MeasureConfig) (Result, error) {
	m, err := newMeasurer(mc)
	if err != nil {
		return Result{}, fmt.Errorf("measure: %w", err)
	}
	var wg sync.WaitGroup
	errs := make([]error, m.workers)
	for w := range m.workers {
		wg.Go(func() { errs[w] = m.work(ctx) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return Result{}, fmt.Errorf("measure: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return Result{}, fmt.Errorf("measure: %w", err)
	}
	r := Result{
		BitErrorRate: m.cfg.Chip.BitErrorRate,
		Trials:       m.cfg.Trials,
		Failures:     m.failures.Load(),
		Undetected:   m.undetected.Load(),
		Analytic:     AnalyticFailureRate(m.cfg.Chip.BitErrorRate, m.cfg.EnrolReads),
		Seed:         m.seed,
	}
	r.Rate = float64(r.Failures) / float64(r.Trials)
	r.Upper95 = upper95(r.Failures, r.Trials)
	return r, nil
}

type measurer struct {
	cfg                  MeasureConfig
	seed                 [32]byte
	workers              int
	chips                int64
	next                 atomic.Int64 // next chip index to simulate
	failures, undetected atomic.Int64
	mu                   sync.Mutex // serialises Progress
	done                 int64
}

func newMeasurer(mc MeasureConfig) (*measurer, error) {
	if mc.Trials < 1 {
		return nil, fmt.Errorf("%w: trials must be at least 1, got %d", ErrInvalidConfig, mc.Trials)
	}
	if mc.Workers < 0 {
		return nil, fmt.Errorf("%w: workers must not be negative, got %d", ErrInvalidConfig, mc.Workers)
	}
	if mc.EnrolReads == 0 {
		mc.EnrolReads = DefaultEnrolReads
	}
	if err := checkReads(mc.EnrolReads); err != nil {
		return nil, err
	}
	mc.Chip.NoiseSeed = nil
	chip, err := mc.Chip.withDefaults()
	if err != nil {
		return nil, err
	}
	mc.Chip = chip
	m := &measurer{cfg: mc, workers: mc.Workers}
	if m.workers == 0 {
		m.workers = runtime.GOMAXPROCS(0)
	}
	if mc.Seed != nil {
		m.seed = *mc.Seed
	} else {
		cryptorand.Read(m.seed[:])
	}
	m.chips = (mc.Trials + trialsPerChip - 1) / trialsPerChip
	m.workers = int(min(int64(m.workers), m.chips))
	return m, nil
}

func (m *measurer) work(ctx context.Context) error {
	for ctx.Err() == nil {
		i := m.next.Add(1) - 1
		if i >= m.chips {
			return nil
		}
		trials := min(trialsPerChip, m.cfg.Trials-i*trialsPerChip)
		if err := m.runChip(i, trials); err != nil {
			return err
		}
		if m.cfg.Progress != nil {
			m.mu.Lock()
			m.done += trials
			m.cfg.Progress(m.done)
			m.mu.Unlock()
		}
	}
	return nil
}

// runChip simulates chip number index: creates it, enrols it and runs its
// trials. Everything random derives from the run seed and the index, so the
// outcome does not depend on which worker runs which chip.
func (m *measurer) runChip(index, trials int64) error {
	key := append([]byte("hallmark puf measure v1\x00"), m.seed[:]...)
	key = binary.BigEndian.AppendUint64(key, uint64(index))
	rng := rand.NewChaCha8(sha256.Sum256(key))
	var chipSeed, noiseSeed [32]byte
	rng.Read(chipSeed[:])
	rng.Read(noiseSeed[:])
	cfg := m.cfg.Chip
	cfg.NoiseSeed = &noiseSeed
	chip, err := NewChip(chipSeed, cfg)
	if err != nil {
		return err
	}
	want, helper, err := enrolChip(chip, m.cfg.EnrolReads, rng)
	if err != nil {
		return err
	}
	buf := make([]byte, chip.ReadSize())
	var failures, undetected int64
	for range trials {
		chip.read(buf)
		got, err := Reconstruct(buf, helper)
		switch {
		case errors.Is(err, ErrReconstruct):
			failures++
		case err != nil:
			return err
		case got != want:
			failures++
			undetected++
		}
	}
	m.failures.Add(failures)
	m.undetected.Add(undetected)
	return nil
}
