package fleetcmd

import (
	"context"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/hallmark-iot/hallmark/internal/cli/cmdline"
	"github.com/hallmark-iot/hallmark/internal/fleet"
	"github.com/hallmark-iot/hallmark/internal/httpapi"
	"github.com/hallmark-iot/hallmark/internal/onboarding/onboardpki"
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
}

func newFleetOnboardCmd(s *cmdline.Streams) *cobra.Command {
	var f fleetOnboardFlags
	cmd := &cobra.Command{
		Use:   "onboard --server URL --ca-file ROOT.pem --seed-file SEED --devices N [--from I] [--concurrency C] [--duration D] [--json]",
		Short: "Onboard a fleet's devices concurrently and report throughput, latency and errors",
		Long: `Regenerate devices --from to --from+N-1 of the fleet in memory and onboard them
with C concurrent exchanges (challenge, then proof and CSR) over HTTPS, TLS 1.3,
with C keep-alive connections. Each issued chain is verified against the roots
in --ca-file (--verify=false skips it). The report gives devices onboarded,
errors by kind (the platform's problem code, or transport, tls, timeout,
chain-invalid), wall time, onboardings per second and the latency of the
exchange (p50, p95, p99, max). The exit status is 1 if any onboarding failed.

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
	if f.concurrency < 1 || f.duration < 0 || f.timeout <= 0 || f.ceiling < 0 {
		return cmdline.Usagef("--concurrency must be at least 1, --duration and --ceiling not negative and --timeout positive")
	}
	caSuite, err := sigalg.Lookup(f.caSuite)
	if err != nil {
		return cmdline.Usage(err)
	}
	fl, err := f.fleet(s, f.opSuite)
	if err != nil {
		return err
	}
	httpc, roots, err := loadClient(s, f.pf, f.concurrency, f.timeout)
	if err != nil {
		return err
	}
	defer httpc.CloseIdleConnections()
	client, err := httpapi.NewOnboardingClient(f.pf.Server, httpc, onboardpki.CSRs{})
	if err != nil {
		return err
	}
	cfg := fleet.OnboardConfig{
		Fleet: fl, First: f.from, Count: f.devices, Concurrency: f.concurrency, Duration: f.duration,
		Client: client, Workers: f.workers, Progress: &fleet.Progress{},
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
	if c := rep.Ceiling; c != nil {
		fmt.Fprintf(w, "crypto ceiling (%s CA, %d cores): server alone %.0f/s (measured %.0f %%), sharing CPUs with the client %.0f/s (measured %.0f %%)\n",
			c.CASuite, c.Workers, c.Server, 100*rep.Throughput/c.Server, c.Shared, 100*rep.Throughput/c.Shared)
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
func fmtLatency(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2fs", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%dµs", d.Microseconds())
}

// loadClient makes the load generator's HTTP client (fleet.HTTPClient)
// trusting the roots in the CA file, and returns the roots as DER, to
// verify issued chains against.
func loadClient(s *cmdline.Streams, f cmdline.PlatformFlags, concurrency int, timeout time.Duration) (*http.Client, [][]byte, error) {
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
	return fleet.HTTPClient(pool, concurrency, timeout), roots, nil
}
