package fleetcmd

import (
	"encoding/json"
	"fmt"
	"io"
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
part (sign the CSR and the transcript), then full TLS 1.3 handshakes between a
device's client and a server configured as the platform's listener (TLS 1.3,
X25519MLKEM768, an ECDSA P-256 certificate issued by the throwaway CA, session
tickets on), each for --duration. It prints the server's ceiling, the device's,
and the ceiling when both share the cores, as they do when the load generator
runs on the platform's machine. Divide the rate "hallmark fleet onboard"
measured by the ceiling for the efficiency.

It also prints CPU times per operation, from the worker threads' own CPU time
(getrusage RUSAGE_THREAD; each worker keeps its OS thread), so that other work
on the machine does not inflate them: the server's onboarding cryptography, the
server's side of one handshake (the client's runs on other threads and is not
counted; in-memory pipes leave out the kernel's socket work; the thread's CPU
for exchanging the same flights without TLS, the scheduler's hand-overs while
the server waits for the client, is measured after and subtracted), and their
sum, the
server-side crypto floor of an onboarding over a fresh TLS connection. Over a
keep-alive connection the floor is the onboarding cryptography alone. "hallmark
fleet onboard" divides the server's CPU per onboarding by the floor.`,
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
				ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
				data, _ := json.MarshalIndent(map[string]any{
					"suite": c.Suite, "ca_suite": c.CASuite, "op_suite": c.OpSuite, "workers": c.Workers,
					"server_onboardings_per_second": c.Server, "client_onboardings_per_second": c.Client,
					"shared_onboardings_per_second": c.Shared,
					"server_cpu_ms":                 ms(c.ServerCPU), "client_cpu_ms": ms(c.ClientCPU),
					"handshake_cpu_ms": ms(c.HandshakeCPU), "handshake_waits_cpu_ms": ms(c.HandshakeWaits), "handshakes": c.Handshakes,
					"handshake_key_exchange": c.Handshake.KeyExchange, "handshake_certificate": c.Handshake.Certificate,
					"handshake_chain_length": c.Handshake.ChainLength,
					"floor_fresh_ms":         ms(c.FloorFresh()), "floor_keep_alive_ms": ms(c.FloorKeepAlive()),
				}, "", "  ")
				_, err = fmt.Fprintf(s.Out, "%s\n", data)
				return err
			}
			fmt.Fprintf(s.Out, "crypto ceiling on %d cores: %s devices, %s CA, %s operational keys\n"+
				"server crypto alone:           %8.0f onboardings/s\n"+
				"device crypto alone:           %8.0f onboardings/s\n"+
				"server and device sharing CPUs: %7.0f onboardings/s\n",
				c.Workers, c.Suite, c.CASuite, c.OpSuite, c.Server, c.Client, c.Shared)
			return printFloor(s.Out, c)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&suite, "suite", "", "enrolment key suite of the devices (required)")
	fl.StringVar(&caSuite, "ca-suite", string(sigalg.ECDSAP256), "the platform CA's suite")
	fl.StringVar(&opSuite, "op-suite", string(sigalg.ECDSAP256), "operational key suite")
	fl.DurationVar(&duration, "duration", 5*time.Second, "how long each of the three phases runs")
	fl.IntVar(&workers, "workers", 0, "parallel workers (default: number of CPUs)")
	fl.BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

// printFloor prints the ceiling's CPU times per operation and the
// server-side crypto floors.
func printFloor(w io.Writer, c *fleet.Ceiling) error {
	_, err := fmt.Fprintf(w, "server CPU, onboarding crypto (proof, CSR, certificate): %s per onboarding\n"+
		"server CPU, TLS 1.3 handshake (%s, %s certificate, chain of %d; %d measured): %s per handshake (less %s of waiting for the client)\n"+
		"server-side crypto floor, %s devices: fresh TLS %s, keep-alive %s per onboarding\n",
		fmtCPU(c.ServerCPU), c.Handshake.KeyExchange, c.Handshake.Certificate, c.Handshake.ChainLength, c.Handshakes, fmtCPU(c.HandshakeCPU), fmtCPU(c.HandshakeWaits),
		c.Suite, fmtCPU(c.FloorFresh()), fmtCPU(c.FloorKeepAlive()))
	return err
}
