package fleetcmd

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/hallmark-iot/hallmark/internal/cli/cmdline"
	"github.com/hallmark-iot/hallmark/internal/fleet"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

func newFleetCeilingCmd(s *cmdline.Streams) *cobra.Command {
	var suite, caSuite, opSuite string
	var duration time.Duration
	var workers int
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "ceiling --suite S [--ca-suite S] [--op-suite S] [--duration 5s] [--json]",
		Short: "Measure the onboarding rate the server's cryptography alone allows on this machine",
		Long: `Run the cryptographic work of one onboarding, and nothing else, on every core:
first the server's part (parse the registered key, verify the proof, verify the
CSR, sign the certificate with a throwaway CA of --ca-suite), then the device's
part (sign the CSR and the transcript), each for --duration. It prints the
server's ceiling, the device's, and the ceiling when both share the cores, as
they do when the load generator runs on the platform's machine. Divide the
rate "hallmark fleet onboard" measured by the ceiling for the efficiency.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := fleet.CeilingConfig{Duration: duration, Workers: workers}
			if suite == "" {
				return cmdline.Usagef("--suite is required")
			}
			var err error
			if cfg.Suite, err = sigalg.Lookup(suite); err != nil {
				return cmdline.Usage(err)
			}
			if cfg.CASuite, err = sigalg.Lookup(caSuite); err != nil {
				return cmdline.Usage(err)
			}
			if cfg.OpSuite, err = sigalg.Lookup(opSuite); err != nil {
				return cmdline.Usage(err)
			}
			if duration <= 0 || workers < 0 {
				return cmdline.Usagef("--duration must be positive and --workers not negative")
			}
			c, err := fleet.MeasureCeiling(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			if asJSON {
				data, _ := json.MarshalIndent(map[string]any{
					"suite": c.Suite, "ca_suite": c.CASuite, "op_suite": c.OpSuite, "workers": c.Workers,
					"server_onboardings_per_second": c.Server, "client_onboardings_per_second": c.Client,
					"shared_onboardings_per_second": c.Shared,
				}, "", "  ")
				_, err = fmt.Fprintf(s.Out, "%s\n", data)
				return err
			}
			_, err = fmt.Fprintf(s.Out, "crypto ceiling on %d cores: %s devices, %s CA, %s operational keys\n"+
				"server crypto alone:           %8.0f onboardings/s\n"+
				"device crypto alone:           %8.0f onboardings/s\n"+
				"server and device sharing CPUs: %7.0f onboardings/s\n",
				c.Workers, c.Suite, c.CASuite, c.OpSuite, c.Server, c.Client, c.Shared)
			return err
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&suite, "suite", "", "enrolment key suite of the devices (required)")
	fl.StringVar(&caSuite, "ca-suite", string(sigalg.ECDSAP256), "the platform CA's suite")
	fl.StringVar(&opSuite, "op-suite", string(sigalg.ECDSAP256), "operational key suite")
	fl.DurationVar(&duration, "duration", 5*time.Second, "how long each of the two phases runs")
	fl.IntVar(&workers, "workers", 0, "parallel workers (default: number of CPUs)")
	fl.BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}
