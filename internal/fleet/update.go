package fleet

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hallmark-iot/hallmark/internal/device"
	"github.com/hallmark-iot/hallmark/internal/httpapi"
	"github.com/hallmark-iot/hallmark/internal/migration"
	"github.com/hallmark-iot/hallmark/internal/onboarding/onboardpki"
	"github.com/hallmark-iot/hallmark/internal/ota"
	"github.com/hallmark-iot/hallmark/internal/pki"
)

// UpdateConfig says which devices take their campaign, where and how hard.
type UpdateConfig struct {
	Fleet *Fleet
	// First is the index of the first device; Count devices follow it.
	// Devices without a record in Credentials are not run.
	First, Count uint64
	// Credentials is the file fleet onboard --credentials-out wrote.
	Credentials *CredentialReader
	// Chips makes each device's simulated chip.
	Chips *ChipTemplate
	// Server is the platform's base URL; Roots its TLS roots.
	Server string
	Roots  *x509.CertPool
	// Timeout limits each HTTP request.
	Timeout time.Duration
	// Concurrency is the number of devices updating at once.
	Concurrency int
	// ScratchDir holds the agent's files of the devices in flight (state,
	// journal, partial download), each removed when its device is done:
	// at most Concurrency devices' files exist at once. A tmpfs keeps the
	// agent's fsyncs out of the measurement.
	ScratchDir string
	// Attempts is how many agent steps a device gets before a transient
	// error counts as its failure (at least 1).
	Attempts int
	// Progress, if not nil, is advanced as devices finish.
	Progress *Progress
}

// Step names of UpdateReport.Steps: the platform's routes as the agent
// calls them, and the whole of one device.
const (
	StepPoll      = "poll"
	StepDownload  = "download"
	StepChallenge = "migrate-challenge"
	StepMigrate   = "migrate"
	StepDevice    = "device"
	stepReport    = "report-"
)

// UpdateReport is the outcome of an update run.
type UpdateReport struct {
	Requested   uint64
	Concurrency int
	// Attempted devices = Updated-or-failed; Updated devices reported
	// booted; Migrated also re-keyed (a migration campaign).
	Attempted, Updated, Migrated, Failed int64
	// Failures counts devices by how they ended: "failed:REASON",
	// "rolled-back:REASON", "no-assignment", or a transport error's kind
	// (ErrorKind) when the attempts ran out.
	Failures     map[string]int64
	ErrorSamples map[string]string
	// Bytes is the image bytes downloaded.
	Bytes int64
	Wall  time.Duration
	// UpdatesPerSecond and MigrationsPerSecond are over Wall.
	UpdatesPerSecond, MigrationsPerSecond float64
	// Steps holds the latency of each step that succeeded: poll,
	// download (request to the last byte), report-STATE, migrate-challenge,
	// migrate, and device (the whole assignment, including the chip's
	// install and boot).
	Steps map[string]Latency
}

// Update runs cfg's devices through their campaign with the real update
// agent (internal/ota) over mutual TLS: each device, on its own connection
// with its own certificate, polls its assignment, downloads the whole
// image (no cache is shared: the download is the load), has its chip
// verify, install and boot it, confirms and reports, and for a migration
// campaign migrates its enrolment key and reports migrated with its new
// certificate. A device's failure is counted, not returned.
func Update(ctx context.Context, cfg UpdateConfig) (*UpdateReport, error) {
	switch {
	case cfg.Fleet == nil || cfg.Credentials == nil || cfg.Chips == nil || cfg.Roots == nil:
		return nil, errors.New("fleet update: a fleet, credentials, a chip template and roots are required")
	case cfg.Count == 0 || cfg.Concurrency <= 0:
		return nil, fmt.Errorf("fleet update: %d devices at concurrency %d, want at least 1 of each", cfg.Count, cfg.Concurrency)
	case cfg.First > ^uint64(0)-cfg.Count:
		return nil, errors.New("fleet update: device indexes overflow")
	}
	if _, err := httpapi.NewOTATransport(cfg.Server, http.DefaultClient); err != nil {
		return nil, fmt.Errorf("fleet update: %w", err)
	}
	cfg.Attempts = max(cfg.Attempts, 1)
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	type job struct {
		d     *Onboardable
		chain [][]byte
	}
	jobs := make(chan job, 2*cfg.Concurrency)
	readErr := make(chan error, 1)
	rctx, stopRead := context.WithCancel(ctx)
	defer stopRead()
	go func() {
		defer close(jobs)
		var sent uint64
		for sent < cfg.Count {
			index, chain, err := cfg.Credentials.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				readErr <- err
				return
			}
			if index < cfg.First || index-cfg.First >= cfg.Count {
				continue
			}
			d, err := cfg.Fleet.Onboardable(index)
			if err != nil {
				readErr <- err
				return
			}
			select {
			case jobs <- job{d, chain}:
				sent++
			case <-rctx.Done():
				return
			}
		}
		readErr <- nil
	}()

	total := newUpdateStats()
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	for range cfg.Concurrency {
		wg.Go(func() {
			st := newUpdateStats()
			for j := range jobs {
				if ctx.Err() != nil {
					break
				}
				st.record(updateOne(ctx, &cfg, j.d, j.chain, st), cfg.Progress)
			}
			mu.Lock()
			total.merge(st)
			mu.Unlock()
		})
	}
	wg.Wait()
	wall := time.Since(start)
	stopRead()
	for range jobs {
	}
	if err := <-readErr; err != nil {
		return nil, fmt.Errorf("fleet update: credentials: %w", err)
	}
	rep := &UpdateReport{Requested: cfg.Count, Concurrency: cfg.Concurrency, Attempted: total.devices,
		Updated: total.updated, Migrated: total.migrated, Failed: total.failed, Failures: total.failures,
		ErrorSamples: total.samples, Bytes: total.bytes.Load(), Wall: wall, Steps: map[string]Latency{}}
	for name, h := range total.steps {
		rep.Steps[name] = h.summary()
	}
	if wall > 0 {
		rep.UpdatesPerSecond = float64(total.updated) / wall.Seconds()
		rep.MigrationsPerSecond = float64(total.migrated) / wall.Seconds()
	}
	return rep, nil
}

// deviceOutcome is how one device's assignment ended.
type deviceOutcome struct {
	took     time.Duration
	booted   bool // the platform acknowledged booted
	migrated bool
	kind     string // empty on success
	detail   string
}

// updateOne runs device d's agent until its assignment has an outcome.
func updateOne(ctx context.Context, cfg *UpdateConfig, d *Onboardable, chain [][]byte, st *updateStats) deviceOutcome {
	t0 := time.Now()
	fail := func(kind string, err error) deviceOutcome {
		return deviceOutcome{took: time.Since(t0), kind: kind, detail: err.Error()}
	}
	chip, err := cfg.Chips.Chip(d, chain)
	if err != nil {
		return fail("other", err)
	}
	dir, err := os.MkdirTemp(cfg.ScratchDir, "dev-"+strconv.FormatUint(d.Index, 10)+"-")
	if err != nil {
		return fail("other", err)
	}
	defer os.RemoveAll(dir)
	statePath := filepath.Join(dir, "device.json")
	cert := &tls.Certificate{Certificate: chain, PrivateKey: d.Operational}
	tr, closeTr, err := cfg.transport(cert, st)
	if err != nil {
		return fail("other", err)
	}
	defer func() { closeTr() }()
	agent := &ota.Agent{Device: chip, StatePath: statePath, Transport: tr, Migrator: tr, CSRs: onboardpki.CSRs{},
		Reconnect: func(dev *device.Device) (ota.Transport, error) {
			held := dev.Credentials()
			newTr, newClose, err := cfg.transport(&tls.Certificate{Certificate: pemChain(held.CertificateChain), PrivateKey: d.Operational}, st)
			if err != nil {
				return nil, err
			}
			closeTr()
			closeTr = newClose
			newTr.acked = tr.acked
			tr = newTr
			return newTr, nil
		}}
	var lastErr error
	for attempt := 0; attempt < cfg.Attempts; attempt++ {
		if attempt > 0 && ctx.Err() != nil {
			break
		}
		res, err := agent.Step(ctx)
		if err != nil {
			lastErr = err
			continue
		}
		took := time.Since(t0)
		booted := tr.acked.Load()
		switch {
		case res.Assignment == nil:
			return deviceOutcome{took: took, kind: "no-assignment", detail: fmt.Sprintf("device %d (%s) has no open assignment", d.Index, d.Device.Identity)}
		case res.Outcome == nil:
			lastErr = errors.New("the agent stopped without an outcome")
			continue
		}
		switch o := res.Outcome; o.State {
		case ota.StateBooted:
			return deviceOutcome{took: took, booted: true}
		case ota.StateMigrated:
			return deviceOutcome{took: took, booted: true, migrated: true}
		default:
			return deviceOutcome{took: took, booted: booted, kind: string(o.State) + ":" + o.Reason, detail: o.Detail}
		}
	}
	if lastErr == nil {
		lastErr = ctx.Err()
	}
	return deviceOutcome{took: time.Since(t0), booted: tr.acked.Load(), kind: ErrorKind(lastErr), detail: lastErr.Error()}
}

// pemChain decodes the chain a migration stored in the chip.
func pemChain(pems []string) [][]byte {
	var out [][]byte
	for _, p := range pems {
		if block, _ := pem.Decode([]byte(p)); block != nil {
			out = append(out, block.Bytes)
		}
	}
	return out
}

// transport is a device's connection to the platform presenting cert:
// one keep-alive HTTP/1.1 connection, as the device holds.
func (cfg *UpdateConfig) transport(cert *tls.Certificate, st *updateStats) (*timedTransport, func(), error) {
	tr := &http.Transport{
		TLSClientConfig:     pki.ClientTLSConfig(cfg.Roots, cert),
		MaxIdleConnsPerHost: 1,
		IdleConnTimeout:     30 * time.Second,
		TLSNextProto:        map[string]func(string, *tls.Conn) http.RoundTripper{},
	}
	hc := &http.Client{Timeout: cfg.Timeout, Transport: timedRoundTrip{next: tr, st: st}}
	ot, err := httpapi.NewOTATransport(cfg.Server, hc)
	if err != nil {
		return nil, nil, err
	}
	return &timedTransport{OTATransport: ot, st: st, acked: &atomic.Bool{}}, tr.CloseIdleConnections, nil
}

// timedTransport times each of the agent's calls to the platform.
type timedTransport struct {
	*httpapi.OTATransport
	st *updateStats
	// acked is set once the platform acknowledged booted; shared with
	// the transport that replaces this one after a migration.
	acked *atomic.Bool
}

func (t *timedTransport) Assignment(ctx context.Context) (*ota.Assignment, time.Duration, error) {
	t0 := time.Now()
	a, retry, err := t.OTATransport.Assignment(ctx)
	t.st.step(StepPoll, t0, err)
	return a, retry, err
}

func (t *timedTransport) Download(ctx context.Context, path string, offset int64) (io.ReadCloser, int64, error) {
	t0 := time.Now()
	body, total, err := t.OTATransport.Download(ctx, path, offset)
	if err != nil {
		t.st.step(StepDownload, t0, err)
		return nil, total, err
	}
	return &timedBody{ReadCloser: body, t: t, t0: t0}, total, nil
}

func (t *timedTransport) Report(ctx context.Context, r ota.Report) error {
	t0 := time.Now()
	err := t.OTATransport.Report(ctx, r)
	t.st.step(stepReport+string(r.State), t0, err)
	if err == nil && r.State == ota.StateBooted {
		t.acked.Store(true)
	}
	return err
}

// timedRoundTrip times the migration routes, whatever the Go signature of
// the transport's methods carrying them: from the request to the answer's
// headers (the answers are small).
type timedRoundTrip struct {
	next http.RoundTripper
	st   *updateStats
}

func (t timedRoundTrip) RoundTrip(req *http.Request) (*http.Response, error) {
	name := ""
	switch req.URL.Path {
	case migration.PathMigrateChallenge:
		name = StepChallenge
	case migration.PathMigrate:
		name = StepMigrate
	}
	t0 := time.Now()
	resp, err := t.next.RoundTrip(req)
	if name != "" && err == nil && resp.StatusCode < 300 {
		t.st.step(name, t0, nil)
	}
	return resp, err
}

// timedBody records the download when the agent has read it all.
type timedBody struct {
	io.ReadCloser
	t    *timedTransport
	t0   time.Time
	n    int64
	done bool
}

func (b *timedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	if err == io.EOF && !b.done {
		b.done = true
		b.t.st.step(StepDownload, b.t0, nil)
	}
	return n, err
}

func (b *timedBody) Close() error {
	b.t.st.bytes.Add(b.n)
	return b.ReadCloser.Close()
}

// updateStats are one worker's counts and histograms.
type updateStats struct {
	devices, updated, migrated, failed int64
	failures                           map[string]int64
	samples                            map[string]string
	steps                              map[string]*histogram
	bytes                              *atomic.Int64
}

func newUpdateStats() *updateStats {
	return &updateStats{failures: map[string]int64{}, samples: map[string]string{}, steps: map[string]*histogram{}, bytes: &atomic.Int64{}}
}

// step records a successful call's latency; a worker's transports call it
// from the worker's goroutine only.
func (s *updateStats) step(name string, t0 time.Time, err error) {
	if err != nil {
		return
	}
	h := s.steps[name]
	if h == nil {
		h = newHistogram()
		s.steps[name] = h
	}
	h.add(time.Since(t0))
}

func (s *updateStats) record(o deviceOutcome, p *Progress) {
	s.devices++
	if o.booted {
		s.updated++
	}
	if o.migrated {
		s.migrated++
	}
	if o.kind == "" {
		s.step(StepDevice, time.Now().Add(-o.took), nil)
	} else {
		s.failed++
		s.failures[o.kind]++
		if _, ok := s.samples[o.kind]; !ok {
			s.samples[o.kind] = o.detail
		}
	}
	if p != nil {
		p.Done.Add(1)
		if o.kind != "" {
			p.Failed.Add(1)
		}
	}
}

func (s *updateStats) merge(o *updateStats) {
	s.devices += o.devices
	s.updated += o.updated
	s.migrated += o.migrated
	s.failed += o.failed
	for k, n := range o.failures {
		s.failures[k] += n
	}
	for k, m := range o.samples {
		if _, ok := s.samples[k]; !ok {
			s.samples[k] = m
		}
	}
	for k, h := range o.steps {
		if s.steps[k] == nil {
			s.steps[k] = newHistogram()
		}
		s.steps[k].merge(h)
	}
	s.bytes.Add(o.bytes.Load())
}

// MarshalJSON writes the report with latencies in milliseconds.
func (r *UpdateReport) MarshalJSON() ([]byte, error) {
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	steps := map[string]map[string]float64{}
	for name, l := range r.Steps {
		steps[name] = map[string]float64{"count": float64(l.Count), "p50": ms(l.P50), "p95": ms(l.P95), "p99": ms(l.P99), "max": ms(l.Max), "mean": ms(l.Mean)}
	}
	failures := r.Failures
	if failures == nil {
		failures = map[string]int64{}
	}
	return json.Marshal(struct {
		Requested           uint64                        `json:"requested"`
		Concurrency         int                           `json:"concurrency"`
		Attempted           int64                         `json:"attempted"`
		Updated             int64                         `json:"updated"`
		Migrated            int64                         `json:"migrated"`
		Failed              int64                         `json:"failed"`
		Failures            map[string]int64              `json:"failures"`
		ErrorSamples        map[string]string             `json:"error_samples,omitempty"`
		Bytes               int64                         `json:"bytes_downloaded"`
		WallSeconds         float64                       `json:"wall_seconds"`
		UpdatesPerSecond    float64                       `json:"updates_per_second"`
		MigrationsPerSecond float64                       `json:"migrations_per_second"`
		LatencyMS           map[string]map[string]float64 `json:"latency_ms"`
	}{r.Requested, r.Concurrency, r.Attempted, r.Updated, r.Migrated, r.Failed, failures, r.ErrorSamples, r.Bytes,
		r.Wall.Seconds(), r.UpdatesPerSecond, r.MigrationsPerSecond, steps})
}
