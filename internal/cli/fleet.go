package cli

import (
	"context"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/hallmark-iot/hallmark/internal/atomicfile"
	"github.com/hallmark-iot/hallmark/internal/fleet"
	"github.com/hallmark-iot/hallmark/internal/manifest"
	"github.com/hallmark-iot/hallmark/internal/onboarding"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

func newFleetCmd(s *streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "fleet",
		Short: "Generate a simulated fleet's manifest and load-test onboarding with it",
		Long: `A fleet is a set of simulated devices determined by a 32-byte seed: device i's
enrolment and operational keys are derived from the seed and i, so a manifest
of a million devices is written once and the load generator later regenerates
any device in memory, storing nothing. See docs/fleet.md.`,
	}
	cmd.AddCommand(newFleetManifestCmd(s), newFleetOnboardCmd(s), newFleetCeilingCmd(s), newFleetProbeTimingCmd(s))
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
func (f *fleetFlags) fleet(s *streams, opSuite string) (*fleet.Fleet, error) {
	if f.devices == 0 {
		return nil, usagef("--devices N (at least 1) is required")
	}
	suite, err := sigalg.Lookup(f.suite)
	if err != nil {
		return nil, usageError{err}
	}
	var op sigalg.Suite
	if opSuite != "" {
		if op, err = sigalg.Lookup(opSuite); err != nil {
			return nil, usageError{err}
		}
	}
	seed, err := s.fleetSeed(f.seedFile, f.seedHex)
	if err != nil {
		return nil, err
	}
	defer clear(seed)
	return fleet.New(seed, suite, op)
}

// fleetSeed reads the seed from exactly one of a file and a flag.
func (s *streams) fleetSeed(file, hexSeed string) ([]byte, error) {
	if (file == "") == (hexSeed == "") {
		return nil, usagef("give the fleet seed with exactly one of --seed-file FILE and --seed HEX")
	}
	what := "--seed"
	raw := []byte(hexSeed)
	if file != "" {
		data, err := s.readInput(file, maxKeyFile, "fleet seed")
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
		return nil, usagef("fleet seed %s: want %d raw bytes or %d hex characters", what, fleet.SeedSize, 2*fleet.SeedSize)
	}
	return seed, nil
}

func newFleetManifestCmd(s *streams) *cobra.Command {
	var f fleetFlags
	var ks keyStoreFlags
	var batch, out string
	var force bool
	cmd := &cobra.Command{
		Use:   "manifest --seed-file SEED --devices N --keystore DIR --out FILE [--suite S] [--from I] [--batch NAME]",
		Short: "Write the signed manifest of a fleet's devices, as a provisioning station would",
		Long: `Derive devices --from to --from+N-1 of the fleet, have each sign its proof of
possession over a fresh station nonce, and write the manifest signed by the
station key (from the key store, as "hallmark station key create" makes it).
Import it with "hallmark admin manifest import --product ID FILE". The file is
written to a temporary name and renamed into place once signed; memory stays
constant (apart from the writer's set of identities, about 100 bytes a device),
so a million devices, the most one manifest holds, is fine.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runFleetManifest(ctx, s, &f, ks, batch, out, force)
		},
	}
	f.bind(cmd)
	ks.bind(cmd)
	cmd.Flags().StringVar(&batch, "batch", "", "batch `NAME` (default: fleet-FROM-LAST)")
	cmd.Flags().StringVarP(&out, "out", "o", "", "manifest `FILE` (- for standard output)")
	cmd.Flags().BoolVar(&force, "force", false, "replace an existing output file")
	return cmd
}

func runFleetManifest(ctx context.Context, s *streams, f *fleetFlags, ks keyStoreFlags, batch, out string, force bool) error {
	if out == "" {
		return usagef("--out FILE is required")
	}
	if f.devices > manifest.MaxRecords {
		return usagef("--devices %d: a manifest holds at most %d devices", f.devices, manifest.MaxRecords)
	}
	fl, err := f.fleet(s, "")
	if err != nil {
		return err
	}
	if batch == "" {
		batch = fmt.Sprintf("fleet-%d-%d", f.from, f.from+f.devices-1)
	}
	if out != stdioMarker && !force {
		if _, err := os.Stat(out); err == nil {
			return fmt.Errorf("write %s: file exists (use --force to replace it)", out)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("write %s: %w", out, pathError(err))
		}
	}
	m, err := s.openStore(ctx, ks, false)
	if err != nil {
		return err
	}
	defer m.Close()
	signer, err := m.Signer(ctx, ks.name)
	if err != nil {
		return err
	}
	var done atomic.Int64
	cfg := fleet.ManifestConfig{Fleet: fl, First: f.from, Count: f.devices, Batch: batch, Station: signer, Workers: f.workers, Done: &done}
	stopBar := s.startProgress(f.progress, int64(f.devices), "devices", func() (int64, int64) { return done.Load(), 0 })
	var sum fleet.ManifestSummary
	write := func(w io.Writer) error {
		sum, err = fleet.WriteManifest(ctx, w, cfg)
		return err
	}
	summaryTo := s.out
	if out == stdioMarker {
		err, summaryTo = write(s.out), s.err
	} else if werr := atomicfile.WriteFunc(out, 0o644, write); werr != nil {
		err = fmt.Errorf("write %s: %w", out, pathError(werr))
	}
	stopBar()
	if err != nil {
		return err
	}
	secs := sum.Elapsed.Seconds()
	_, err = fmt.Fprintf(summaryTo, "batch %s: %d devices (%s, indexes %d-%d) signed by station %s in %.1f s (%.0f devices/s)\n",
		sum.Batch, sum.Devices, fl.Suite().ID(), f.from, f.from+f.devices-1, sum.Station, secs, float64(sum.Devices)/max(secs, 1e-9))
	return err
}

type fleetOnboardFlags struct {
	fleetFlags
	pf          platformFlags
	opSuite     string
	concurrency int
	duration    time.Duration
	timeout     time.Duration
	asJSON      bool
	verify      bool
	ceiling     time.Duration
	caSuite     string
}

func newFleetOnboardCmd(s *streams) *cobra.Command {
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
	f.pf.bind(cmd)
	fl := cmd.Flags()
	fl.StringVar(&f.pf.server, "url", f.pf.server, "the same as --server")
	fl.StringVar(&f.opSuite, "op-suite", string(sigalg.ECDSAP256), "operational key suite")
	fl.IntVarP(&f.concurrency, "concurrency", "c", 16, "onboardings in flight")
	fl.DurationVar(&f.duration, "duration", 0, "stop starting onboardings after this long (default: when every device is done)")
	fl.DurationVar(&f.timeout, "timeout", 30*time.Second, "limit on each HTTP request")
	fl.BoolVar(&f.asJSON, "json", false, "print the report as JSON")
	fl.BoolVar(&f.verify, "verify", true, "verify each issued certificate chain against the roots")
	fl.DurationVar(&f.ceiling, "ceiling", 0, "after the run, measure the crypto ceiling for this long per phase and report measured/ceiling (see fleet ceiling)")
	fl.StringVar(&f.caSuite, "ca-suite", string(sigalg.ECDSAP256), "the platform CA's suite, for --ceiling")
	return cmd
}

func runFleetOnboard(ctx context.Context, s *streams, f *fleetOnboardFlags) error {
	if f.pf.server == "" || f.pf.caFile == "" {
		return usagef("--server URL and --ca-file FILE are required")
	}
	if f.concurrency < 1 || f.duration < 0 || f.timeout <= 0 || f.ceiling < 0 {
		return usagef("--concurrency must be at least 1, --duration and --ceiling not negative and --timeout positive")
	}
	caSuite, err := sigalg.Lookup(f.caSuite)
	if err != nil {
		return usageError{err}
	}
	fl, err := f.fleet(s, f.opSuite)
	if err != nil {
		return err
	}
	httpc, roots, err := s.loadClient(f.pf, f.concurrency, f.timeout)
	if err != nil {
		return err
	}
	defer httpc.CloseIdleConnections()
	cfg := fleet.OnboardConfig{
		Fleet: fl, First: f.from, Count: f.devices, Concurrency: f.concurrency, Duration: f.duration,
		Client: &onboarding.Client{BaseURL: f.pf.server, HTTP: httpc}, Workers: f.workers, Progress: &fleet.Progress{},
	}
	if f.verify {
		cfg.Roots = roots
	}
	stopBar := s.startProgress(f.progress, int64(f.devices), "onboarded", func() (int64, int64) {
		return cfg.Progress.Done.Load(), cfg.Progress.Failed.Load()
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
		data, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(s.out, "%s\n", data); err != nil {
			return err
		}
	} else if err := printOnboardReport(s.out, rep); err != nil {
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
		fmt.Fprintf(tw, "%s\t%d\t%s\n", k, rep.Errors[k], safe(oneLine(rep.ErrorSamples[k])))
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
func (s *streams) loadClient(f platformFlags, concurrency int, timeout time.Duration) (*http.Client, [][]byte, error) {
	rootPEM, err := s.readInput(f.caFile, maxKeyFile, "CA certificate")
	if err != nil {
		return nil, nil, err
	}
	pool := x509.NewCertPool()
	var roots [][]byte
	for rest := rootPEM; ; {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			break
		}
		if block.Type == "CERTIFICATE" {
			roots = append(roots, block.Bytes)
			if c, err := x509.ParseCertificate(block.Bytes); err == nil {
				pool.AddCert(c)
			}
		}
	}
	if len(roots) == 0 {
		return nil, nil, fmt.Errorf("read CA certificate %s: no PEM certificate", f.caFile)
	}
	return fleet.HTTPClient(pool, concurrency, timeout), roots, nil
}

func newFleetCeilingCmd(s *streams) *cobra.Command {
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
				return usagef("--suite is required")
			}
			var err error
			if cfg.Suite, err = sigalg.Lookup(suite); err != nil {
				return usageError{err}
			}
			if cfg.CASuite, err = sigalg.Lookup(caSuite); err != nil {
				return usageError{err}
			}
			if cfg.OpSuite, err = sigalg.Lookup(opSuite); err != nil {
				return usageError{err}
			}
			if duration <= 0 || workers < 0 {
				return usagef("--duration must be positive and --workers not negative")
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
				_, err = fmt.Fprintf(s.out, "%s\n", data)
				return err
			}
			_, err = fmt.Fprintf(s.out, "crypto ceiling on %d cores: %s devices, %s CA, %s operational keys\n"+
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

// startProgress draws a progress bar on standard error, when it is a
// terminal or force is set, until the returned function is called.
func (s *streams) startProgress(force bool, total int64, unit string, read func() (done, failed int64)) func() {
	if !force && !isTerminal(s.err) {
		return func() {}
	}
	start := time.Now()
	draw := func(final bool) {
		done, failed := read()
		frac := float64(done) / float64(max(total, 1))
		const width = 30
		filled := min(int(frac*width), width)
		bar := strings.Repeat("=", filled) + strings.Repeat(" ", width-filled)
		rate := float64(done) / max(time.Since(start).Seconds(), 1e-9)
		line := fmt.Sprintf("\r[%s] %d/%d %s %5.1f%%  %.0f/s", bar, done, total, unit, 100*frac, rate)
		if failed > 0 {
			line += fmt.Sprintf("  errors %d", failed)
		}
		if final {
			line += "\n"
		}
		io.WriteString(s.err, line)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				draw(false)
			case <-stop:
				draw(true)
				return
			}
		}
	})
	return func() { close(stop); wg.Wait() }
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
