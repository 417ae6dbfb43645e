package campaign

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrInvalid refuses a campaign request that breaks its rules; the
// error's text says which.
var ErrInvalid = errors.New("invalid campaign request")

// Limits of a campaign.
const (
	// MaxDevices bounds a campaign's target, and an explicit list.
	MaxDevices = 100_000
	// MaxWaves bounds the waves of a campaign.
	MaxWaves = 20
	// maxWaveSpec bounds the text of a wave specification.
	maxWaveSpec = 256
)

// WaveStep is one step of a wave specification: the cumulative share of
// the target the rollout has reached once this wave is open, as a count
// of devices or a percentage.
type WaveStep struct {
	Count   int // devices, when Percent is zero
	Percent int // 1 to 100, when set
}

func (w WaveStep) String() string {
	if w.Percent > 0 {
		return strconv.Itoa(w.Percent) + "%"
	}
	return strconv.Itoa(w.Count)
}

// DefaultWaves rolls out to the whole target at once.
const DefaultWaves = "100%"

// ParseWaves reads a wave specification such as "10,25%,100%": comma
// separated cumulative steps, each a count of devices (1 to MaxDevices)
// or a whole percentage (1 to 100) of the target. Counts must increase
// among counts, percentages among percentages, and the last step must be
// 100% or a count (which covers the target when it is at least its size;
// Resolve checks). Nothing else is accepted: no spaces, no signs, no
// fractions, no empty steps.
func ParseWaves(spec string) ([]WaveStep, error) {
	if spec == "" || len(spec) > maxWaveSpec {
		return nil, fmt.Errorf("%w: waves must be 1 to %d characters", ErrInvalid, maxWaveSpec)
	}
	parts := strings.Split(spec, ",")
	if len(parts) > MaxWaves {
		return nil, fmt.Errorf("%w: waves: at most %d", ErrInvalid, MaxWaves)
	}
	steps := make([]WaveStep, 0, len(parts))
	lastCount, lastPercent := 0, 0
	for i, p := range parts {
		num, pct := strings.CutSuffix(p, "%")
		n, err := parseWhole(num)
		if err != nil {
			return nil, fmt.Errorf("%w: wave %d %q: %v", ErrInvalid, i+1, p, err)
		}
		switch {
		case pct && (n < 1 || n > 100):
			return nil, fmt.Errorf("%w: wave %d %q: a percentage is 1%% to 100%%", ErrInvalid, i+1, p)
		case pct && n <= lastPercent:
			return nil, fmt.Errorf("%w: wave %d %q: waves are cumulative, so percentages must increase", ErrInvalid, i+1, p)
		case !pct && (n < 1 || n > MaxDevices):
			return nil, fmt.Errorf("%w: wave %d %q: a count is 1 to %d devices", ErrInvalid, i+1, p, MaxDevices)
		case !pct && n <= lastCount:
			return nil, fmt.Errorf("%w: wave %d %q: waves are cumulative, so counts must increase", ErrInvalid, i+1, p)
		case pct && lastPercent == 100:
			return nil, fmt.Errorf("%w: wave %d %q: nothing can follow 100%%", ErrInvalid, i+1, p)
		}
		if pct {
			lastPercent = n
			steps = append(steps, WaveStep{Percent: n})
		} else {
			if lastPercent == 100 {
				return nil, fmt.Errorf("%w: wave %d %q: nothing can follow 100%%", ErrInvalid, i+1, p)
			}
			lastCount = n
			steps = append(steps, WaveStep{Count: n})
		}
	}
	if last := steps[len(steps)-1]; last.Percent != 0 && last.Percent != 100 {
		return nil, fmt.Errorf("%w: waves: the last wave must be 100%% or a count covering the target", ErrInvalid)
	}
	return steps, nil
}

// parseWhole reads a decimal number of 1 to 6 digits without sign or
// leading zero.
func parseWhole(s string) (int, error) {
	if s == "" || len(s) > 6 || (len(s) > 1 && s[0] == '0') {
		return 0, errors.New("not a whole number of 1 to 6 digits")
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, errors.New("not a whole number")
		}
	}
	return strconv.Atoi(s)
}

// Resolve turns steps into the sizes of the waves of a target of n
// devices: a percentage is rounded up (10% of 15 is 2 devices), a count
// is capped at n. A step that adds no device (5% after 3 devices of 20)
// is dropped, so that every wave opens with new devices; the last wave
// must reach n.
func Resolve(steps []WaveStep, n int) ([]int, error) {
	if n < 1 {
		return nil, fmt.Errorf("%w: the target holds no device", ErrInvalid)
	}
	var sizes []int
	reached := 0
	for _, s := range steps {
		cum := s.Count
		if s.Percent > 0 {
			cum = (s.Percent*n + 99) / 100
		}
		cum = min(cum, n)
		if cum <= reached {
			continue
		}
		sizes = append(sizes, cum-reached)
		reached = cum
	}
	if reached < n {
		return nil, fmt.Errorf("%w: waves reach %d of the %d devices targeted; end them with 100%%", ErrInvalid, reached, n)
	}
	return sizes, nil
}

// HaltRule stops a campaign whose wave fails too often: once at least
// MinFinished of a wave's devices (or all of a smaller wave) have
// finished, more than Threshold of them failing halts the campaign.
type HaltRule struct {
	Threshold   float64
	MinFinished int
}

// Defaults of the halt rule.
const (
	DefaultHaltThreshold = 0.2
	DefaultHaltMin       = 5
	maxHaltMin           = MaxDevices
)

// Check validates the rule.
func (h HaltRule) Check() error {
	switch {
	case !(h.Threshold >= 0 && h.Threshold <= 1):
		return fmt.Errorf("%w: halt_at must be 0 to 1 (the failure rate of a wave that halts the campaign)", ErrInvalid)
	case h.MinFinished < 1 || h.MinFinished > maxHaltMin:
		return fmt.Errorf("%w: halt_min_finished must be 1 to %d", ErrInvalid, maxHaltMin)
	}
	return nil
}

// Trips reports whether a wave of size devices, of which finished have
// finished and failed failed, halts the campaign.
func (h HaltRule) Trips(size, finished, failed int) bool {
	if finished < min(h.MinFinished, size) || finished == 0 {
		return false
	}
	return float64(failed) > h.Threshold*float64(finished)
}
