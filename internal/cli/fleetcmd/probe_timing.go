package fleetcmd

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/hallmark-iot/hallmark/internal/app"
	"github.com/hallmark-iot/hallmark/internal/cli/cmdline"
	"github.com/hallmark-iot/hallmark/internal/fleet"
	"github.com/hallmark-iot/hallmark/internal/httpapi"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/pki"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

type probeTimingFlags struct {
	server, caFile  string
	known, suites   []string
	signWith        string
	samples, warmup int
	group           int
	timeout         time.Duration
	asJSON          bool
	local           bool
}

func newFleetProbeTimingCmd(s *cmdline.Streams) *cobra.Command {
	var f probeTimingFlags
	cmd := &cobra.Command{
		Use:   "probe-timing (--local [--suite S ...] | --server URL --ca-file ROOT.pem --known SUITE=IDENTITY ...) [--samples 2000] [--json]",
		Short: "Measure whether the time to refuse a proof tells registered identities from unknown ones",
		Long: `Time what an attacker times: for each suite, probes of a registered identity and
of an unregistered one alternate (ABBA); each probe asks a fresh challenge, then
sends a proof signed by a key of the suite that is not the device's, and times
that proof request over HTTPS until the last byte of its answer, which must be
401 proof-rejected for both. The report gives per suite the median latencies,
their difference, a Mann-Whitney U test (z and two-sided p) and how often an
attacker taking the median of --group probes of one identity would classify it
correctly, given the best threshold (0.5 is a coin toss).

With --local, the command starts a platform of its own in a temporary
directory (HTTPS on 127.0.0.1, SQLite, ECDSA CA, rate limits off) and registers
one device of each suite. With --server, name a registered identity of each
suite to probe with --known SUITE=IDENTITY; that platform's rate limits must let
the probes through (serve --rate-per-identity -1 --rate-per-address -1).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runProbeTiming(ctx, s, &f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.server, "server", "", "platform `URL` to probe")
	fl.BoolVar(&f.local, "local", false, "start a platform in this process and probe it")
	fl.StringVar(&f.caFile, "ca-file", "", "the platform's TLS root certificate `FILE` ("+pki.TLSTrustFile+" in serve's data directory), with --server")
	fl.StringArrayVar(&f.known, "known", nil, "`SUITE=IDENTITY`: a registered identity of that suite, with --server (repeatable)")
	fl.StringArrayVar(&f.suites, "suite", nil, "suite to probe on the local platform (repeatable; default: every suite)")
	fl.StringVar(&f.signWith, "sign-with", "", "sign the probes with a key of this suite instead of the identity's own suite")
	fl.IntVar(&f.samples, "samples", 2000, "timed probes of each identity, per suite")
	fl.IntVar(&f.warmup, "warmup", 50, "untimed probes of each identity first, per suite")
	fl.IntVar(&f.group, "group", 20, "probes the median attacker takes of one identity")
	fl.DurationVar(&f.timeout, "timeout", 10*time.Second, "limit on each HTTP request")
	fl.BoolVar(&f.asJSON, "json", false, "print the report as JSON")
	return cmd
}

// timingTarget is a registered identity of a suite.
type timingTarget struct {
	suite sigalg.Suite
	known identity.ID
}

func runProbeTiming(ctx context.Context, s *cmdline.Streams, f *probeTimingFlags) error {
	if f.local == (f.server != "") {
		return cmdline.Usagef("give --local to probe a platform this command starts, or --server URL to probe a running one")
	}
	if f.samples < f.group || f.group < 1 || f.warmup < 0 || f.timeout <= 0 {
		return cmdline.Usagef("--samples must be at least --group, --group at least 1, --warmup not negative and --timeout positive")
	}
	var signWith sigalg.Suite
	if f.signWith != "" {
		var err error
		if signWith, err = sigalg.Lookup(f.signWith); err != nil {
			return cmdline.Usage(err)
		}
	}
	tp, err := timingTargets(s, ctx, f)
	if err != nil {
		return err
	}
	defer tp.close()
	httpc := fleet.HTTPClient(tp.roots, 1, f.timeout)
	defer httpc.CloseIdleConnections()
	var reports []*fleet.TimingReport
	for _, t := range tp.targets {
		rep, err := fleet.ProbeTiming(ctx, fleet.TimingConfig{BaseURL: tp.url, HTTP: httpc, Suite: t.suite, Known: t.known, SignWith: signWith,
			Samples: f.samples, Warmup: f.warmup, Group: f.group})
		if err != nil {
			return err
		}
		reports = append(reports, rep)
	}
	if f.asJSON {
		data, err := json.MarshalIndent(map[string]any{"server": tp.url, "local": f.server == "", "suites": reports}, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(s.Out, "%s\n", data)
		return err
	}
	where := tp.url
	if f.server == "" {
		where = "a local platform (SQLite, ECDSA CA) at " + tp.url
	}
	return printTimingReports(s.Out, where, f.samples, f.group, reports)
}

// timingTargets are the platform and identities to probe: --server's and
// --known, or a local platform's.
func timingTargets(s *cmdline.Streams, ctx context.Context, f *probeTimingFlags) (*timingPlatform, error) {
	if f.server != "" {
		targets, roots, err := remoteTimingTargets(s, f)
		if err != nil {
			return nil, err
		}
		return &timingPlatform{url: f.server, roots: roots, targets: targets, close: func() {}}, nil
	}
	suites, err := timingSuites(f)
	if err != nil {
		return nil, err
	}
	local, err := startTimingPlatform(ctx, suites)
	if err != nil {
		return nil, fmt.Errorf("fleet probe-timing: local platform: %w", err)
	}
	return local, nil
}

// timingSuites are the suites --suite names, or all.
func timingSuites(f *probeTimingFlags) ([]sigalg.Suite, error) {
	if len(f.known) > 0 || f.caFile != "" {
		return nil, cmdline.Usagef("--known and --ca-file go with --server")
	}
	if len(f.suites) == 0 {
		return sigalg.All(), nil
	}
	var suites []sigalg.Suite
	for _, name := range f.suites {
		suite, err := sigalg.Lookup(name)
		if err != nil {
			return nil, cmdline.Usage(err)
		}
		suites = append(suites, suite)
	}
	return suites, nil
}

// remoteTimingTargets reads --known and --ca-file.
func remoteTimingTargets(s *cmdline.Streams, f *probeTimingFlags) ([]timingTarget, *x509.CertPool, error) {
	if f.caFile == "" || len(f.known) == 0 || len(f.suites) > 0 {
		return nil, nil, cmdline.Usagef("with --server, give --ca-file FILE and --known SUITE=IDENTITY for each suite to probe (not --suite)")
	}
	var targets []timingTarget
	for _, kv := range f.known {
		name, hexID, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, nil, cmdline.Usagef("--known %q: want SUITE=IDENTITY", kv)
		}
		suite, err := sigalg.Lookup(name)
		if err != nil {
			return nil, nil, cmdline.Usage(err)
		}
		id, err := identity.Parse(hexID)
		if err != nil {
			return nil, nil, cmdline.Usagef("--known %s: %v", name, err)
		}
		targets = append(targets, timingTarget{suite: suite, known: id})
	}
	roots, err := s.ReadTrustBundle(f.caFile, "CA certificate")
	if err != nil {
		return nil, nil, err
	}
	return targets, roots, nil
}

// timingPlatform is the platform probe-timing probes and its registered
// identities; close stops it if probe-timing started it.
type timingPlatform struct {
	url     string
	roots   *x509.CertPool
	targets []timingTarget
	close   func()
}

// startTimingPlatform starts a platform on its defaults but for the rate
// limits, in a temporary directory, and registers one device of each
// suite through the admin API, as a manifest import would.
func startTimingPlatform(ctx context.Context, suites []sigalg.Suite) (_ *timingPlatform, err error) {
	dir, err := os.MkdirTemp("", "hallmark-probe-timing-")
	if err != nil {
		return nil, err
	}
	p, err := app.Start(ctx, app.Config{DataDir: filepath.Join(dir, "platform"), Listen: "127.0.0.1:0", ServerName: "localhost",
		RatePerIdentity: -1, RatePerAddress: -1})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	tp := &timingPlatform{url: p.URL(), close: func() { p.Close(); os.RemoveAll(dir) }}
	defer func() {
		if err != nil {
			tp.close()
		}
	}()
	if tp.roots, err = pki.ParseTrustBundle(p.CA.RootPEM()); err != nil {
		return nil, err
	}
	token, err := os.ReadFile(p.AdminTokenPath())
	if err != nil {
		return nil, err
	}
	admin, err := httpapi.NewClient(p.URL(), strings.TrimSpace(string(token)), tp.roots)
	if err != nil {
		return nil, err
	}
	if tp.targets, err = registerTimingDevices(ctx, admin, suites); err != nil {
		return nil, err
	}
	return tp, nil
}

// registerTimingDevices imports device 0 of a random fleet of each suite.
func registerTimingDevices(ctx context.Context, admin *httpapi.Client, suites []sigalg.Suite) ([]timingTarget, error) {
	ed, err := sigalg.Ed25519.Suite()
	if err != nil {
		return nil, err
	}
	station, err := ed.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	stationPEM, err := sigalg.EncodePublicKeyPEM(station.Public())
	if err != nil {
		return nil, err
	}
	if _, err := admin.CreateStation(ctx, httpapi.StationRequest{Name: "probe", PublicKey: string(stationPEM)}); err != nil {
		return nil, fmt.Errorf("register station: %w", err)
	}
	if _, err := admin.CreateProduct(ctx, httpapi.ProductRequest{ID: "probe", Name: "Probe", CertValidity: "24h",
		CloudEndpoint: "mqtts://localhost:8883"}); err != nil {
		return nil, fmt.Errorf("create product: %w", err)
	}
	var targets []timingTarget
	for _, suite := range suites {
		seed := make([]byte, fleet.SeedSize)
		rand.Read(seed)
		fl, err := fleet.New(seed, suite, nil)
		if err != nil {
			return nil, err
		}
		dev, err := fl.Device(0)
		if err != nil {
			return nil, err
		}
		var man bytes.Buffer
		if _, err := fleet.WriteManifest(ctx, &man, fleet.ManifestConfig{Fleet: fl, Count: 1, Batch: "probe-" + string(suite.ID()), Station: station}); err != nil {
			return nil, err
		}
		if _, err := admin.ImportManifest(ctx, "probe", &man); err != nil {
			return nil, fmt.Errorf("import the %s device: %w", suite.ID(), err)
		}
		targets = append(targets, timingTarget{suite: suite, known: dev.Identity})
	}
	return targets, nil
}

func printTimingReports(w io.Writer, where string, samples, group int, reports []*fleet.TimingReport) error {
	fmt.Fprintf(w, "refused proofs, registered vs unregistered identity, %d interleaved probes of each per suite, %s\n", samples, where)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "SUITE\tSIGNED BY\tKNOWN p50\tUNKNOWN p50\tDIFFERENCE\tMANN-WHITNEY z\tp\tMEDIAN-OF-%d RIGHT\n", group)
	for _, r := range reports {
		fmt.Fprintf(tw, "%s\t%s\t%.1f µs\t%.1f µs\t%+.1f µs\t%.2f\t%s\t%.1f %%\n", r.Suite, r.SignedBy, r.KnownMedian, r.UnknownMedian,
			r.Difference, r.Test.Z, formatP(r.Test.P), 100*r.Accuracy)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "every probe was answered %q; a median-of-%d accuracy near 50 %% and p well above 0.01 mean timing does not tell them apart\n",
		"401 proof-rejected", group)
	return err
}

// formatP writes a p value, however small.
func formatP(p float64) string {
	switch {
	case p == 0 || math.IsNaN(p):
		return "<1e-300"
	case p < 0.001:
		return fmt.Sprintf("%.1e", p)
	}
	return fmt.Sprintf("%.3f", p)
}
