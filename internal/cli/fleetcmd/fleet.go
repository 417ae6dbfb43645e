// Package fleetcmd owns "hallmark fleet": a simulated fleet determined by a
// seed, its signed manifest (manifest.go), the onboarding load generator
// (onboard.go), the crypto ceiling (ceiling.go), the timing probe of
// refused proofs (probe_timing.go) and the update and migration load
// (update.go).
package fleetcmd

import (
	"encoding/hex"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hallmark-iot/hallmark/internal/cli/cmdline"
	"github.com/hallmark-iot/hallmark/internal/fleet"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// New returns the fleet command group.
func New(s *cmdline.Streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "fleet",
		Short: "Generate a simulated fleet's manifest and load-test onboarding with it",
		Long: `A fleet is a set of simulated devices determined by a 32-byte seed: device i's
enrolment and operational keys are derived from the seed and i, so a manifest
of a million devices is written once and the load generator later regenerates
any device in memory, storing nothing. See docs/fleet.md.`,
	}
	cmd.AddCommand(newFleetManifestCmd(s), newFleetOnboardCmd(s), newFleetCeilingCmd(s), newFleetProbeTimingCmd(s), newFleetUpdateCmd(s))
	return cmd
}

// fleetFlags choose the fleet and a range of its devices.
type fleetFlags struct {
	seedFile, seedHex, suite string
	devices, from            uint64
	workers                  int
	progress                 bool
}

func (f *fleetFlags) bind(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.seedFile, "seed-file", "", "fleet seed `FILE`: 32 raw bytes or 64 hex characters")
	fl.StringVar(&f.seedHex, "seed", "", "fleet seed as 64 hex characters (visible in the process list; prefer --seed-file)")
	fl.Uint64VarP(&f.devices, "devices", "n", 0, "number of devices")
	fl.Uint64Var(&f.from, "from", 0, "index of the first device")
	fl.StringVar(&f.suite, "suite", string(sigalg.ECDSAP256), "enrolment key suite: "+strings.Join(sigalg.Names(), ", "))
	fl.IntVar(&f.workers, "workers", 0, "key derivation goroutines (default: number of CPUs)")
	fl.BoolVar(&f.progress, "progress", false, "show progress on standard error even when it is not a terminal")
}

// fleet checks the flags and returns the fleet they name.
func (f *fleetFlags) fleet(s *cmdline.Streams, opSuite string) (*fleet.Fleet, error) {
	if f.devices == 0 {
		return nil, cmdline.Usagef("--devices N (at least 1) is required")
	}
	suite, err := sigalg.Lookup(f.suite)
	if err != nil {
		return nil, cmdline.Usage(err)
	}
	var op sigalg.Suite
	if opSuite != "" {
		if op, err = sigalg.Lookup(opSuite); err != nil {
			return nil, cmdline.Usage(err)
		}
	}
	seed, err := fleetSeed(s, f.seedFile, f.seedHex)
	if err != nil {
		return nil, err
	}
	defer clear(seed)
	return fleet.New(seed, suite, op)
}

// fleetSeed reads the seed from exactly one of a file and a flag.
func fleetSeed(s *cmdline.Streams, file, hexSeed string) ([]byte, error) {
	if (file == "") == (hexSeed == "") {
		return nil, cmdline.Usagef("give the fleet seed with exactly one of --seed-file FILE and --seed HEX")
	}
	what := "--seed"
	raw := []byte(hexSeed)
	if file != "" {
		data, err := s.ReadInput(file, cmdline.MaxKeyFile, "fleet seed")
		if err != nil {
			return nil, err
		}
		if len(data) == fleet.SeedSize {
			return data, nil
		}
		what, raw = file, []byte(strings.TrimSpace(string(data)))
	}
	seed := make([]byte, hex.DecodedLen(len(raw)))
	if n, err := hex.Decode(seed, raw); err != nil || n != fleet.SeedSize {
		return nil, cmdline.Usagef("fleet seed %s: want %d raw bytes or %d hex characters", what, fleet.SeedSize, 2*fleet.SeedSize)
	}
	return seed, nil
}
