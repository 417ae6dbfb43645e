package fleet

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hallmark-iot/hallmark/internal/httpapi"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/onboarding"
	"github.com/hallmark-iot/hallmark/internal/pki"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// OnboardConfig says which devices to onboard, where and how hard.
type OnboardConfig struct {
	Fleet *Fleet
	// First is the index of the first device; Count devices follow it.
	First, Count uint64
	// Client talks to the platform for every device: over HTTPS
	// (httpapi.NewOnboardingClient, whose http.Client should keep at least
	// Concurrency connections alive) or in process (onboarding.InProcess).
	// Clients.Configure sets it, or DeviceClient, for a platform's URL.
	Client *onboarding.Client
	// DeviceClient, if not nil, is used instead of Client: each device
	// gets a client of its own, released once its onboarding ends, as
	// Fresh connections need.
	DeviceClient func() (client *onboarding.Client, release func(), err error)
	// Connections names the mode for the report; Dials, if not nil,
	// counts the TLS connections the clients opened.
	Connections Connections
	Dials       func() DialStats
	// Concurrency is the number of onboardings in flight.
	Concurrency int
	// Duration, if positive, stops starting onboardings after that long
	// even if devices remain; those in flight finish.
	Duration time.Duration
	// Roots are the platform's root certificates (DER). Each issued chain
	// is verified against them for client authentication, and the leaf
	// must carry the device's identity and operational key. Nil skips the
	// check, to measure raw throughput.
	Roots [][]byte
	// Workers derive devices ahead of the onboarding goroutines;
	// GOMAXPROCS if zero.
	Workers int
	// Progress, if not nil, is advanced as onboardings finish.
	Progress *Progress
	// Credentials, if not nil, receives each onboarded device's chain,
	// for fleet update to present later.
	Credentials *CredentialWriter
}

// Progress counts finished onboardings while a run goes on.
type Progress struct {
	Done, Failed atomic.Int64
}

// Report is the outcome of an onboarding run.
type Report struct {
	Suite       sigalg.ID
	Requested   uint64
	Concurrency int
	Verified    bool
	// Attempted = Onboarded + Failed.
	Attempted, Onboarded, Failed int64
	// Errors counts failures by kind: the platform's problem code
	// (proof-rejected, rate-limited, …), or transport, tls, timeout,
	// chain-invalid, canceled, other.
	Errors map[string]int64
	// ErrorSamples holds the first message of each kind.
	ErrorSamples map[string]string
	// Wall is from the first onboarding started to the last finished.
	Wall time.Duration
	// Throughput is successful onboardings per second of Wall.
	Throughput float64
	// Latency is of successful exchanges, challenge and proof.
	Latency Latency
	// Connections is the mode the devices used; Dials, when counted, the
	// TLS connections they opened over the run.
	Connections Connections
	Dials       *DialStats
	// CPU, if measured, is the CPU time the run took (cpu.go); Onboard
	// leaves it nil.
	CPU *CPUUsage
	// Ceiling, if measured in the same run, is what the crypto allows;
	// Onboard leaves it nil.
	Ceiling *Ceiling
	// Floor is the server-side crypto floor per onboarding when it was
	// measured apart (fleet ceiling) and given; Ceiling's wins.
	Floor time.Duration
}

// CryptoFloor is the server-side crypto floor per onboarding of the run's
// connections mode, zero if unknown.
func (r *Report) CryptoFloor() time.Duration {
	if r.Ceiling != nil {
		return r.Ceiling.Floor(r.Connections)
	}
	return r.Floor
}

// ServerCPUPerOnboarding is the server's CPU time per successful
// onboarding, zero if not measured.
func (r *Report) ServerCPUPerOnboarding() time.Duration {
	if r.CPU == nil {
		return 0
	}
	return r.CPU.PerOnboarding(r.Onboarded)
}

// FloorRatio is the server's CPU per onboarding divided by the crypto
// floor of the run's connections mode: how far the platform is from doing
// nothing but the cryptography its onboardings need, a figure that
// travels across machines better than a rate. Zero if either is unknown.
func (r *Report) FloorRatio() float64 {
	cpu, floor := r.ServerCPUPerOnboarding(), r.CryptoFloor()
	if cpu <= 0 || floor <= 0 {
		return 0
	}
	return float64(cpu) / float64(floor)
}

// HTTPClient is the load generator's client: TLS 1.3 to roots only,
// HTTP/1.1 with one keep-alive connection per concurrent onboarding, as
// that many devices would hold.
func HTTPClient(roots *x509.CertPool, concurrency int, timeout time.Duration) *http.Client {
	tr := &http.Transport{
		TLSClientConfig:     pki.ClientTLSConfig(roots, nil),
		MaxIdleConns:        concurrency,
		MaxIdleConnsPerHost: concurrency,
		IdleConnTimeout:     90 * time.Second,
		// A non-nil empty map keeps HTTP/2 off: one multiplexed
		// connection would not load the server as many devices do.
		TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{},
	}
	return &http.Client{Timeout: timeout, Transport: tr}
}

// Onboard regenerates cfg's devices and onboards them concurrently with
// the real onboarding client. Devices are derived on Workers goroutines a
// bounded distance ahead of the onboarding goroutines, each with its
// operational key; the measured latency is the exchange, in which the
// device makes its CSR bound to the challenge. A
// failed onboarding is counted in the report, not returned: the error
// return is for a run that could not happen at all.
func Onboard(ctx context.Context, cfg OnboardConfig) (*Report, error) {
	if cfg.Fleet == nil || (cfg.Client == nil && cfg.DeviceClient == nil) {
		return nil, errors.New("fleet onboard: a fleet and a client are required")
	}
	if cfg.Count == 0 || cfg.Concurrency <= 0 {
		return nil, fmt.Errorf("fleet onboard: %d devices at concurrency %d, want at least 1 of each", cfg.Count, cfg.Concurrency)
	}
	if cfg.First > ^uint64(0)-cfg.Count {
		return nil, errors.New("fleet onboard: device indexes overflow")
	}
	genCtx, stopGen := context.WithCancel(ctx)
	defer stopGen()
	ready := make(chan *Onboardable, 2*cfg.Concurrency)
	genErr := make(chan error, 1)
	go func() {
		defer close(ready)
		genErr <- Generate(genCtx, cfg.First, cfg.Count, cfg.Workers, cfg.Fleet.Onboardable, func(d *Onboardable) error {
			select {
			case ready <- d:
				return nil
			case <-genCtx.Done():
				return genCtx.Err()
			}
		})
	}()

	var stop atomic.Bool
	if cfg.Duration > 0 {
		t := time.AfterFunc(cfg.Duration, func() { stop.Store(true) })
		defer t.Stop()
	}
	var dials0 DialStats
	if cfg.Dials != nil {
		dials0 = cfg.Dials()
	}
	total := &runStats{hist: newHistogram(), errors: map[string]int64{}, samples: map[string]string{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	for range cfg.Concurrency {
		wg.Go(func() {
			st := &runStats{hist: newHistogram(), errors: map[string]int64{}, samples: map[string]string{}}
			for d := range ready {
				if stop.Load() || ctx.Err() != nil {
					break
				}
				st.record(onboardOne(ctx, &cfg, d), cfg.Progress)
			}
			mu.Lock()
			total.merge(st)
			mu.Unlock()
		})
	}
	wg.Wait()
	wall := time.Since(start)
	stopGen()
	for range ready { // let the generator see the cancellation and end
	}
	if err := <-genErr; err != nil && !errors.Is(err, context.Canceled) {
		return nil, fmt.Errorf("fleet onboard: %w", err)
	}
	rep := &Report{
		Suite: cfg.Fleet.suite.ID(), Requested: cfg.Count, Concurrency: cfg.Concurrency, Verified: cfg.Roots != nil,
		Onboarded: total.ok, Failed: total.failed, Attempted: total.ok + total.failed,
		Errors: total.errors, ErrorSamples: total.samples, Wall: wall, Latency: total.hist.summary(),
		Connections: cfg.Connections,
	}
	if cfg.Dials != nil {
		d := cfg.Dials()
		rep.Dials = &DialStats{Handshakes: d.Handshakes - dials0.Handshakes, Resumed: d.Resumed - dials0.Resumed}
	}
	if wall > 0 {
		rep.Throughput = float64(total.ok) / wall.Seconds()
	}
	return rep, nil
}

type outcome struct {
	took time.Duration
	err  error
}

func onboardOne(ctx context.Context, cfg *OnboardConfig, d *Onboardable) outcome {
	client := cfg.Client
	var release func()
	if cfg.DeviceClient != nil {
		c, rel, err := cfg.DeviceClient()
		if err != nil {
			return outcome{err: err}
		}
		client, release = c, rel
	}
	t0 := time.Now()
	got, err := client.OnboardDevice(ctx, d, d.opSuite, nil)
	took := time.Since(t0)
	if release != nil {
		release() // the device leaves: its connection closes now
	}
	if err == nil && cfg.Roots != nil {
		err = got.Verify(rootsVerifier(cfg.Roots, time.Now()))
	}
	if err == nil && cfg.Credentials != nil {
		err = cfg.Credentials.Add(d.Index, got.Chain)
	}
	return outcome{took, err}
}

// rootsVerifier verifies an issued chain to roots for client
// authentication and checks that the leaf names the device.
func rootsVerifier(roots [][]byte, now time.Time) onboarding.ChainVerifier {
	return func(chain [][]byte, id identity.ID) (*x509.Certificate, error) {
		leaf, err := pki.VerifyChain(chain[0], chain[1:], roots, now, x509.ExtKeyUsageClientAuth)
		if err != nil {
			return nil, err
		}
		if got, err := pki.DeviceIdentity(leaf); err != nil || got != id {
			return nil, fmt.Errorf("the leaf does not name %s", id)
		}
		return leaf, nil
	}
}

type runStats struct {
	ok, failed int64
	hist       *histogram
	errors     map[string]int64
	samples    map[string]string
}

func (s *runStats) record(o outcome, p *Progress) {
	if o.err == nil {
		s.ok++
		s.hist.add(o.took)
		if p != nil {
			p.Done.Add(1)
		}
		return
	}
	s.failed++
	kind := ErrorKind(o.err)
	s.errors[kind]++
	if _, ok := s.samples[kind]; !ok {
		s.samples[kind] = o.err.Error()
	}
	if p != nil {
		p.Done.Add(1)
		p.Failed.Add(1)
	}
}

func (s *runStats) merge(o *runStats) {
	s.ok += o.ok
	s.failed += o.failed
	s.hist.merge(o.hist)
	for k, n := range o.errors {
		s.errors[k] += n
	}
	for k, m := range o.samples {
		if _, ok := s.samples[k]; !ok {
			s.samples[k] = m
		}
	}
}

// ErrorKind names the kind of a failed onboarding: the platform's problem
// code when it answered with one (or, in process, the code its refusal
// would have over HTTPS), otherwise what went wrong on the way.
func ErrorKind(err error) string {
	var p *httpapi.Problem
	var status *httpapi.StatusError
	var certErr *tls.CertificateVerificationError
	var netErr net.Error
	switch {
	case errors.As(err, &p):
		return p.Code
	case errors.As(err, &status):
		return fmt.Sprintf("http-%d", status.Status)
	case httpapi.OnboardingCode(err) != "":
		return httpapi.OnboardingCode(err) // a refusal in process: the code HTTPS would carry
	case errors.Is(err, onboarding.ErrChainInvalid):
		return "chain-invalid"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.As(err, &certErr):
		return "tls"
	case errors.As(err, &netErr):
		if netErr.Timeout() {
			return "timeout"
		}
		return "transport"
	}
	return "other"
}

// MarshalJSON writes the report with durations in milliseconds and the
// wall time in seconds, the units a dashboard plots.
func (r *Report) MarshalJSON() ([]byte, error) {
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	errs := r.Errors
	if errs == nil {
		errs = map[string]int64{}
	}
	var c *ceilingJSON
	if r.Ceiling != nil {
		c = &ceilingJSON{r.Ceiling.CASuite, r.Ceiling.Server, r.Ceiling.Shared, r.Throughput / r.Ceiling.Server, r.Throughput / r.Ceiling.Shared,
			ms(r.Ceiling.ServerCPU), ms(r.Ceiling.HandshakeCPU), r.Ceiling.Handshake.KeyExchange, ms(r.Ceiling.FloorFresh()), ms(r.Ceiling.FloorKeepAlive())}
	}
	type cpuJSON struct {
		ServerMS                     float64 `json:"server_ms"`
		ServerOnboarded              int64   `json:"server_onboarded"`
		ExtraMS                      float64 `json:"extra_ms"`
		ExtraPIDs                    []int   `json:"extra_pids,omitempty"`
		LoadGeneratorMS              float64 `json:"load_generator_ms"`
		ServerPerOnboardingMS        float64 `json:"server_per_onboarding_ms"`
		LoadGeneratorPerOnboardingMS float64 `json:"load_generator_per_onboarding_ms"`
	}
	var cpu *cpuJSON
	if u := r.CPU; u != nil {
		cpu = &cpuJSON{ms(u.Server), u.ServerOnboarded, ms(u.Extra), u.ExtraPIDs, ms(u.LoadGenerator), ms(r.ServerCPUPerOnboarding()), 0}
		if r.Onboarded > 0 {
			cpu.LoadGeneratorPerOnboardingMS = ms(u.LoadGenerator / time.Duration(r.Onboarded))
		}
	}
	type tlsJSON struct {
		Handshakes int64 `json:"handshakes"`
		Resumed    int64 `json:"resumed"`
	}
	var dials *tlsJSON
	if r.Dials != nil {
		dials = &tlsJSON{r.Dials.Handshakes, r.Dials.Resumed}
	}
	return json.Marshal(struct {
		Suite        sigalg.ID          `json:"suite"`
		Requested    uint64             `json:"requested"`
		Concurrency  int                `json:"concurrency"`
		Connections  Connections        `json:"connections,omitempty"`
		Verified     bool               `json:"verified"`
		Attempted    int64              `json:"attempted"`
		Onboarded    int64              `json:"onboarded"`
		Failed       int64              `json:"failed"`
		Errors       map[string]int64   `json:"errors"`
		ErrorSamples map[string]string  `json:"error_samples,omitempty"`
		WallSeconds  float64            `json:"wall_seconds"`
		Throughput   float64            `json:"onboardings_per_second"`
		LatencyMS    map[string]float64 `json:"latency_ms"`
		TLS          *tlsJSON           `json:"tls,omitempty"`
		CPU          *cpuJSON           `json:"cpu,omitempty"`
		Ceiling      *ceilingJSON       `json:"ceiling,omitempty"`
		FloorMS      float64            `json:"crypto_floor_ms,omitempty"`
		FloorRatio   float64            `json:"server_cpu_to_crypto_floor,omitempty"`
	}{
		r.Suite, r.Requested, r.Concurrency, r.Connections, r.Verified, r.Attempted, r.Onboarded, r.Failed, errs, r.ErrorSamples,
		r.Wall.Seconds(), r.Throughput, map[string]float64{
			"p50": ms(r.Latency.P50), "p95": ms(r.Latency.P95), "p99": ms(r.Latency.P99),
			"max": ms(r.Latency.Max), "mean": ms(r.Latency.Mean),
		}, dials, cpu, c, ms(r.CryptoFloor()), r.FloorRatio(),
	})
}

// ceilingJSON is a ceiling within an onboarding report.
type ceilingJSON struct {
	CASuite          sigalg.ID `json:"ca_suite"`
	Server           float64   `json:"server_onboardings_per_second"`
	Shared           float64   `json:"shared_onboardings_per_second"`
	RatioServer      float64   `json:"ratio_server"`
	RatioShared      float64   `json:"ratio_shared"`
	ServerCPUMS      float64   `json:"server_cpu_ms"`
	HandshakeCPUMS   float64   `json:"handshake_cpu_ms"`
	KeyExchange      string    `json:"handshake_key_exchange"`
	FloorFreshMS     float64   `json:"floor_fresh_ms"`
	FloorKeepAliveMS float64   `json:"floor_keep_alive_ms"`
}
