package fleetcmd

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/hallmark-iot/hallmark/internal/cli/cmdline"
	"github.com/hallmark-iot/hallmark/internal/fleet"
	"github.com/hallmark-iot/hallmark/internal/pki"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

type fleetOnboardFlags struct {
	fleetFlags
	pf          cmdline.PlatformFlags
	url         string // --url, the older name of --server
	opSuite     string
	concurrency int
	duration    time.Duration
	timeout     time.Duration
	asJSON      bool
	verify      bool
	ceiling     time.Duration
	caSuite     string
	credsOut    string
	connections string
	cpu         bool
	extraPIDs   []int
	floor       time.Duration
}

func newFleetOnboardCmd(s *cmdline.Streams) *cobra.Command {
	var f fleetOnboardFlags
	cmd := &cobra.Command{
		Use:   "onboard --server URL --ca-file ROOT.pem --seed-file SEED --devices N [--from I] [--concurrency C] [--connections fresh|keep-alive] [--duration D] [--json]",
		Short: "Onboard a fleet's devices concurrently and report throughput, latency, CPU and errors",
		Long: `Regenerate devices --from to --from+N-1 of the fleet in memory and onboard them
with C concurrent exchanges (challenge, then proof and CSR) over HTTPS, TLS 1.3,
HTTP/1.1. --connections says how devices reach the platform:

  fresh       (default) each device opens its own TCP connection and makes a
              full TLS 1.3 handshake (X25519MLKEM768), sends its challenge and
              proof on it and closes it, without session resumption: what a
              device does when it onboards for the first time. The latency
              includes the connection and the handshake.
  keep-alive  devices share C keep-alive connections, opened once: what a
              gateway or proxy in front of many devices does; the handshakes
              are paid once per connection, not per device.

Each issued chain is verified against the roots in --ca-file (--verify=false
skips it). The report gives devices onboarded, errors by kind (the platform's
problem code, or transport, tls, timeout, chain-invalid), wall time,
onboardings per second, the latency of the exchange (p50, p95, p99, max), the
TLS handshakes made, and CPU time: the server's, read from its /metrics
(process_cpu_seconds_total before and after the run, per successful
onboarding, with the onboardings the server itself counted), and the load
generator's own. The server's figure is its process only: a PostgreSQL-backed
platform's database works in PostgreSQL's processes, which --extra-cpu-pid adds
(give the postmaster's PID, the first line of postmaster.pid in its data
directory; it and all its descendants are read from /proc, so only for a
database on this machine). With --ceiling or --crypto-floor the report divides
the server's CPU per onboarding by the server-side crypto floor of the mode (see
fleet ceiling). The exit status is 1 if any onboarding failed.

The platform's per-address rate limit (600 a minute by default) throttles a
load test from one address: run the platform with --rate-per-address -1.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runFleetOnboard(ctx, s, &f)
		},
	}
	f.bind(cmd)
	f.pf.Bind(cmd)
	fl := cmd.Flags()
	fl.StringVar(&f.url, "url", "", "the same as --server")
	fl.StringVar(&f.opSuite, "op-suite", string(sigalg.ECDSAP256), "operational key suite")
	fl.IntVarP(&f.concurrency, "concurrency", "c", 16, "onboardings in flight")
	fl.DurationVar(&f.duration, "duration", 0, "stop starting onboardings after this long (default: when every device is done)")
	fl.DurationVar(&f.timeout, "timeout", 30*time.Second, "limit on each HTTP request")
	fl.BoolVar(&f.asJSON, "json", false, "print the report as JSON")
	fl.BoolVar(&f.verify, "verify", true, "verify each issued certificate chain against the roots")
	fl.DurationVar(&f.ceiling, "ceiling", 0, "after the run, measure the crypto ceiling for this long per phase and report measured/ceiling (see fleet ceiling)")
	fl.StringVar(&f.caSuite, "ca-suite", string(sigalg.ECDSAP256), "the platform CA's suite, for --ceiling")
	fl.StringVar(&f.connections, "connections", string(fleet.Fresh), "fresh: a new TLS connection per device, as devices do; keep-alive: --concurrency connections shared by all devices, as a gateway does")
	fl.BoolVar(&f.cpu, "cpu", true, "read the server's CPU time from its /metrics before and after the run")
	fl.IntSliceVar(&f.extraPIDs, "extra-cpu-pid", nil, "count the CPU time of process `PID` and its descendants as the server's (PostgreSQL's postmaster; repeatable; this machine only)")
	fl.DurationVar(&f.floor, "crypto-floor", 0, "server-side crypto floor per onboarding from an earlier fleet ceiling (its line for this --connections mode), for the ratio; --ceiling measures it instead")
	fl.StringVar(&f.credsOut, "credentials-out", "", "keep each onboarded device's certificate chain in `FILE`, for fleet update (public data; keys come from the seed)")
	return cmd
}
func runFleetOnboard(ctx context.Context, s *cmdline.Streams, f *fleetOnboardFlags) (err error) {
	if f.url != "" {
		// Given on the command line, which wins over HALLMARK_SERVER.
		f.pf.Server = f.url
	}
	if f.pf.Server == "" || f.pf.CAFile == "" {
		return cmdline.Usagef("--server URL and --ca-file FILE are required")
	}
	if f.concurrency < 1 || f.duration < 0 || f.timeout <= 0 || f.ceiling < 0 || f.floor < 0 {
		return cmdline.Usagef("--concurrency must be at least 1, --duration, --ceiling and --crypto-floor not negative and --timeout positive")
	}
	mode, err := fleet.ParseConnections(f.connections)
	if err != nil {
		return cmdline.Usage(err)
	}
	if f.ceiling > 0 && f.floor > 0 {
		return cmdline.Usagef("--ceiling measures the crypto floor and --crypto-floor gives it: not both")
	}
	for _, pid := range f.extraPIDs {
		if pid <= 0 {
			return cmdline.Usagef("--extra-cpu-pid %d: want a process ID", pid)
		}
	}
	if len(f.extraPIDs) > 0 && !f.cpu {
		return cmdline.Usagef("--extra-cpu-pid needs --cpu")
	}
	caSuite, err := sigalg.Lookup(f.caSuite)
	if err != nil {
		return cmdline.Usage(err)
	}
	fl, err := f.fleet(s, f.opSuite)
	if err != nil {
		return err
	}
	pool, roots, err := readRoots(s, f.pf)
	if err != nil {
		return err
	}
	clients, err := fleet.NewClients(f.pf.Server, pool, mode, f.concurrency, f.timeout)
	if err != nil {
		return err
	}
	defer clients.Close()
	cfg := fleet.OnboardConfig{
		Fleet: fl, First: f.from, Count: f.devices, Concurrency: f.concurrency, Duration: f.duration,
		Workers: f.workers, Progress: &fleet.Progress{},
	}
	if err := clients.Configure(&cfg); err != nil {
		return err
	}
	var meter *fleet.CPUMeter
	var cpu0 fleet.CPUSample
	if f.cpu {
		// A client of its own, so that its connection is not counted
		// with the devices'.
		metricsClient := fleet.HTTPClient(pool, 1, f.timeout)
		defer metricsClient.CloseIdleConnections()
		meter = &fleet.CPUMeter{HTTP: metricsClient, Server: f.pf.Server, ExtraPIDs: f.extraPIDs}
		if cpu0, err = meter.Sample(ctx); err != nil {
			return fmt.Errorf("fleet onboard: %w (--cpu=false skips it)", err)
		}
	}
	if f.verify {
		cfg.Roots = roots
	}
	if f.credsOut != "" {
		closeCreds, err := credentialsOut(f.credsOut, &cfg)
		if err != nil {
			return err
		}
		defer func() {
			if cerr := closeCreds(); cerr != nil && err == nil {
				err = cerr
			}
		}()
	}
	stopBar := s.StartProgress(cmdline.Progress{
		Unit: "onboarded", Total: int64(f.devices), Keep: true, Always: f.progress,
		Read: func() (int64, int64) { return cfg.Progress.Done.Load(), cfg.Progress.Failed.Load() },
	})
	rep, err := fleet.Onboard(ctx, cfg)
	stopBar()
	if err != nil {
		return err
	}
	if meter != nil {
		// Read right after the run, before the ceiling, which would
		// count as the load generator's.
		cpu1, err := meter.Sample(context.WithoutCancel(ctx))
		if err != nil {
			return fmt.Errorf("fleet onboard: %w", err)
		}
		rep.CPU = meter.Usage(cpu0, cpu1)
	}
	rep.Floor = f.floor
	if f.ceiling > 0 && ctx.Err() == nil {
		// Measured after the run, not during it, so that neither disturbs
		// the other.
		if rep.Ceiling, err = fleet.MeasureCeiling(ctx, fleet.CeilingConfig{Suite: fl.Suite(), CASuite: caSuite,
			OpSuite: fl.OperationalSuite(), Duration: f.ceiling, Workers: f.workers}); err != nil {
			return err
		}
	}
	if f.asJSON {
		if err := s.PrintJSON(rep); err != nil {
			return err
		}
	} else if err := printOnboardReport(s.Out, rep); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("fleet onboard: interrupted after %d onboardings: %w", rep.Attempted, err)
	}
	if rep.Failed > 0 {
		return fmt.Errorf("fleet onboard: %d of %d onboardings failed", rep.Failed, rep.Attempted)
	}
	return nil
}
func printOnboardReport(w io.Writer, rep *fleet.Report) error {
	verified := "chains verified"
	if !rep.Verified {
		verified = "chains not verified"
	}
	fmt.Fprintf(w, "onboarded %d of %d devices (%s, concurrency %d, %s) in %.2f s: %.1f onboardings/s\n",
		rep.Onboarded, rep.Requested, rep.Suite, rep.Concurrency, verified, rep.Wall.Seconds(), rep.Throughput)
	if l := rep.Latency; rep.Onboarded > 0 {
		fmt.Fprintf(w, "latency (challenge + proof): p50 %s  p95 %s  p99 %s  max %s\n",
			fmtLatency(l.P50), fmtLatency(l.P95), fmtLatency(l.P99), fmtLatency(l.Max))
	}
	if d := rep.Dials; d != nil {
		what := "one new connection per device"
		if rep.Connections == fleet.KeepAlive {
			what = fmt.Sprintf("up to %d keep-alive connections shared by the devices", rep.Concurrency)
		}
		fmt.Fprintf(w, "connections: %s (%s): %d TLS handshakes, %d resumed\n", rep.Connections, what, d.Handshakes, d.Resumed)
	}
	if u := rep.CPU; u != nil {
		// Per onboarding only when there were some: a run of refusals
		// has a cost, but not one per onboarding.
		per := func(d time.Duration) string {
			if rep.Onboarded <= 0 {
				return "no onboarding to divide by"
			}
			return fmtCPU(d/time.Duration(rep.Onboarded)) + " per onboarding"
		}
		fmt.Fprintf(w, "server CPU: %.2f s over the run, %s (the server counted %d onboardings)\n",
			u.Server.Seconds(), per(u.Server), u.ServerOnboarded)
		if len(u.ExtraPIDs) > 0 {
			fmt.Fprintf(w, "  + processes %v and their descendants: %.2f s; together %s\n", u.ExtraPIDs, u.Extra.Seconds(), per(u.Server+u.Extra))
		} else {
			fmt.Fprintln(w, "  (the server's process only: a PostgreSQL-backed platform's database CPU is not included; add it with --extra-cpu-pid POSTMASTER_PID)")
		}
		fmt.Fprintf(w, "load generator CPU: %.2f s, %s\n", u.LoadGenerator.Seconds(), per(u.LoadGenerator))
	}
	if c := rep.Ceiling; c != nil {
		fmt.Fprintf(w, "crypto ceiling (%s CA, %d cores): server alone %.0f/s (measured %.0f %%), sharing CPUs with the client %.0f/s (measured %.0f %%)\n",
			c.CASuite, c.Workers, c.Server, 100*rep.Throughput/c.Server, c.Shared, 100*rep.Throughput/c.Shared)
		printFloor(w, c)
	}
	if floor := rep.CryptoFloor(); floor > 0 {
		line := fmt.Sprintf("server-side crypto floor (%s): %s per onboarding", rep.Connections, fmtCPU(floor))
		if r := rep.FloorRatio(); r > 0 {
			line += fmt.Sprintf("; server CPU per onboarding ÷ floor = %.2f", r)
		}
		fmt.Fprintln(w, line)
	}
	if rep.Failed == 0 {
		_, err := fmt.Fprintln(w, "errors: none")
		return err
	}
	fmt.Fprintf(w, "errors: %d\n", rep.Failed)
	kinds := make([]string, 0, len(rep.Errors))
	for k := range rep.Errors {
		kinds = append(kinds, k)
	}
	sort.Slice(kinds, func(i, j int) bool {
		if rep.Errors[kinds[i]] != rep.Errors[kinds[j]] {
			return rep.Errors[kinds[i]] > rep.Errors[kinds[j]]
		}
		return kinds[i] < kinds[j]
	})
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tCOUNT\tFIRST ERROR")
	for _, k := range kinds {
		fmt.Fprintf(tw, "%s\t%d\t%s\n", k, rep.Errors[k], cmdline.Safe(cmdline.OneLine(rep.ErrorSamples[k])))
	}
	return tw.Flush()
}

// fmtCPU writes a CPU time per operation in milliseconds, to the
// microsecond.
func fmtCPU(d time.Duration) string {
	return fmt.Sprintf("%.3f ms", float64(d)/float64(time.Millisecond))
}

func fmtLatency(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2fs", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%dµs", d.Microseconds())
}

// readRoots reads the roots in the CA file, as a pool for TLS and as DER
// to verify issued chains against.
func readRoots(s *cmdline.Streams, f cmdline.PlatformFlags) (*x509.CertPool, [][]byte, error) {
	rootPEM, err := s.ReadInput(f.CAFile, cmdline.MaxKeyFile, "CA certificate")
	if err != nil {
		return nil, nil, err
	}
	pool, err := pki.ParseTrustBundle(rootPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("read CA certificate %s: %w", cmdline.DisplayPath(f.CAFile), err)
	}
	// Every block is a certificate (ParseTrustBundle checked), ML-DSA
	// roots included: they verify issued chains though TLS cannot use them.
	var roots [][]byte
	for block, rest := pem.Decode(rootPEM); block != nil; block, rest = pem.Decode(rest) {
		roots = append(roots, block.Bytes)
	}
	return pool, roots, nil
}
