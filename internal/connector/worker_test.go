package connector_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/connector"
	"github.com/hallmark-iot/hallmark/internal/connector/webhook"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
	"github.com/hallmark-iot/hallmark/internal/store/sqlite"
)

var secret = []byte("worker-test-secret-0123456789")

var start = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

// clock is the workers' injectable time, advanced by the test.
type clock struct{ ns atomic.Int64 }

func newClock() *clock               { c := &clock{}; c.ns.Store(start.UnixNano()); return c }
func (c *clock) Now() time.Time      { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) Add(d time.Duration) { c.ns.Add(int64(d)) }

// receiver is a webhook endpoint: it verifies each request and answers
// with the queued statuses, then 200.
type receiver struct {
	mu       sync.Mutex
	statuses []int
	ids      []string
	events   []webhook.Event
	verify   error
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	r.mu.Lock()
	defer r.mu.Unlock()
	// The connector stamps requests with the workers' clock, which the
	// tests move forward: verify from its start with a wide tolerance.
	if err := webhook.Verify(secret, req.Header, body, start, 24*time.Hour); err != nil {
		r.verify = err
	}
	var ev webhook.Event
	if err := json.Unmarshal(body, &ev); err != nil {
		r.verify = err
	}
	r.ids = append(r.ids, req.Header.Get(webhook.HeaderID))
	r.events = append(r.events, ev)
	status := http.StatusOK
	if len(r.statuses) > 0 {
		status, r.statuses = r.statuses[0], r.statuses[1:]
	}
	w.WriteHeader(status)
}

func (r *receiver) seen(t *testing.T) []string {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.verify != nil {
		t.Fatalf("receiver: %v", r.verify)
	}
	return append([]string(nil), r.ids...)
}

// env is a real registry with onboarded devices, a webhook receiver and
// a webhook connector pointing at it.
type env struct {
	store   *sqlite.Store
	clock   *clock
	rec     *receiver
	srv     *httptest.Server
	hook    *webhook.Connector
	devices []identity.ID
	product store.Product
}

func newEnv(t *testing.T, statuses ...int) *env {
	t.Helper()
	ctx := t.Context()
	s, err := sqlite.Open(ctx, sqlite.Memory)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	e := &env{store: s, clock: newClock(), rec: &receiver{statuses: statuses}}
	e.srv = httptest.NewServer(e.rec)
	t.Cleanup(e.srv.Close)
	e.hook = e.newHook(t, e.srv.URL)
	stationKey := sha256.Sum256([]byte("station"))
	station := store.Station{ID: identity.FromSPKI(stationKey[:]), Name: "s", Algorithm: sigalg.Ed25519, PublicKey: stationKey[:], CreatedAt: start}
	e.product = store.Product{ID: "sensor", Name: "Sensor", CertValidity: time.Hour, CloudEndpoint: "mqtts://broker.test:8883", CreatedAt: start}
	must(t, s.CreateStation(ctx, station))
	must(t, s.CreateProduct(ctx, e.product))
	var devices []store.Device
	for i := range 3 {
		pub := sha256.Sum256([]byte{byte(i)})
		d := store.Device{Identity: identity.FromSPKI(pub[:]), Algorithm: sigalg.Ed25519, PublicKey: pub[:], RootOfTrust: "keygen", Injection: "none"}
		devices = append(devices, d)
		e.devices = append(e.devices, d.Identity)
	}
	b := store.Batch{ID: "b1", StationID: station.ID, ProductID: e.product.ID, ImportedAt: start}
	if _, err := s.ImportBatch(ctx, b, devices); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) newHook(t *testing.T, url string) *webhook.Connector {
	t.Helper()
	hook, err := webhook.New(webhook.Config{URL: url, Secret: secret, Timeout: 5 * time.Second, Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return hook
}

// onboard records device i's onboarding with a register job for the hook.
func (e *env) onboard(t *testing.T, i int) {
	t.Helper()
	cert := store.Certificate{Identity: e.devices[i], NotBefore: start, NotAfter: start.Add(time.Hour), DER: []byte("cert of " + e.devices[i].String())}
	cert.Serial[0] = byte(i + 1)
	must(t, e.store.RecordOnboarding(t.Context(), cert, e.clock.Now(), store.Job{Kind: store.JobRegister, Connector: "webhook"}))
}

func (e *env) worker(t *testing.T, c connector.Connector, cfg connector.WorkerConfig) *connector.Worker {
	t.Helper()
	if cfg.Now == nil {
		cfg.Now = e.clock.Now
	}
	cfg.BackoffBase, cfg.BackoffCap = time.Second, 8*time.Second
	w, err := connector.NewWorker(e.store, map[string]connector.Connector{"webhook": c}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func (e *env) job(t *testing.T, i int) store.Job {
	t.Helper()
	jobs, err := e.store.ListJobs(t.Context(), store.JobFilter{Identity: e.devices[i], Limit: 1})
	if err != nil || len(jobs) != 1 {
		t.Fatalf("ListJobs = %v, %v", jobs, err)
	}
	return jobs[0]
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func runOnce(t *testing.T, w *connector.Worker, want int) {
	t.Helper()
	n, err := w.RunOnce(t.Context())
	if err != nil || n != want {
		t.Fatalf("RunOnce = %d, %v; want %d jobs", n, err, want)
	}
}

func TestWorkerRegisters(t *testing.T) {
	e := newEnv(t)
	e.onboard(t, 0)
	w := e.worker(t, e.hook, connector.WorkerConfig{})
	runOnce(t, w, 1)
	runOnce(t, w, 0)
	j := e.job(t, 0)
	if j.State != store.JobDone || j.Attempts != 1 {
		t.Fatalf("job = %+v, want done after 1 attempt", j)
	}
	if ids := e.rec.seen(t); len(ids) != 1 {
		t.Fatalf("receiver saw %d events, want 1", len(ids))
	}
	ev := e.rec.events[0]
	if ev.Type != webhook.EventRegistered || ev.Device.Identity != e.devices[0] || ev.Device.Product != "sensor" ||
		ev.Device.CloudEndpoint != e.product.CloudEndpoint || !strings.HasPrefix(ev.Device.Certificate, "-----BEGIN CERTIFICATE-----") {
		t.Fatalf("event = %+v", ev)
	}
	if state, _ := store.CloudStateOf([]store.Job{j}); state != store.CloudActive {
		t.Errorf("cloud state %s, want registered", state)
	}
}

// TestWorkerRetries: the receiver fails twice, then accepts; the job
// completes on the third attempt, each retry scheduled within its backoff
// bound, and all deliveries carry one ID.
func TestWorkerRetries(t *testing.T) {
	e := newEnv(t, 500, 503)
	e.onboard(t, 0)
	w := e.worker(t, e.hook, connector.WorkerConfig{})
	for attempt, bound := range []time.Duration{time.Second, 2 * time.Second} {
		runOnce(t, w, 1)
		j := e.job(t, 0)
		delay := j.NextRunAt.Sub(j.UpdatedAt)
		if j.State != store.JobPending || j.Attempts != attempt+1 || delay < 0 || delay > bound || !strings.Contains(j.LastError, "50") {
			t.Fatalf("after attempt %d: %+v (delay %v), want pending with delay at most %v", attempt+1, j, delay, bound)
		}
		if state, lastErr := store.CloudStateOf([]store.Job{j}); state != store.CloudPending || lastErr == "" {
			t.Errorf("cloud state %s %q, want pending with the last error", state, lastErr)
		}
		e.clock.Add(bound)
	}
	runOnce(t, w, 1)
	if j := e.job(t, 0); j.State != store.JobDone || j.Attempts != 3 {
		t.Fatalf("job = %+v, want done after 3 attempts", j)
	}
	ids := e.rec.seen(t)
	if len(ids) != 3 || ids[0] != ids[1] || ids[1] != ids[2] {
		t.Fatalf("event IDs %v, want 3 deliveries of one ID", ids)
	}
}

// TestWorkerServerDownThenUp: nothing listens at first; the job waits and
// completes once the receiver is up on that address.
func TestWorkerServerDownThenUp(t *testing.T) {
	e := newEnv(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	w := e.worker(t, e.newHook(t, "http://"+addr+"/hook"), connector.WorkerConfig{})
	e.onboard(t, 0)
	runOnce(t, w, 1)
	if j := e.job(t, 0); j.State != store.JobPending || j.LastError == "" {
		t.Fatalf("job with the server down = %+v, want pending with an error", j)
	}
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(e.rec)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	defer srv.Close()
	e.clock.Add(time.Second)
	runOnce(t, w, 1)
	if j := e.job(t, 0); j.State != store.JobDone || j.Attempts != 2 {
		t.Fatalf("job = %+v, want done after 2 attempts", j)
	}
	if ids := e.rec.seen(t); len(ids) != 1 {
		t.Fatalf("receiver saw %d events, want 1", len(ids))
	}
}

// killer registers, then kills its worker before the worker records the
// success: the crash window at-least-once delivery must survive.
type killer struct {
	connector.Connector
	kill context.CancelFunc
}

func (k killer) Register(ctx context.Context, d connector.Device) error {
	err := k.Connector.Register(ctx, d)
	k.kill()
	return err
}

func TestWorkerKilledMidJob(t *testing.T) {
	e := newEnv(t)
	e.onboard(t, 0)
	lease := time.Minute
	ctx, kill := context.WithCancel(t.Context())
	doomed := e.worker(t, killer{e.hook, kill}, connector.WorkerConfig{ID: "doomed", Lease: lease})
	if n, err := doomed.RunOnce(ctx); n != 1 || err != nil {
		t.Fatalf("doomed RunOnce = %d, %v", n, err)
	}
	if j := e.job(t, 0); j.State != store.JobRunning || j.Worker != "doomed" {
		t.Fatalf("job after the kill = %+v, want still leased to the dead worker", j)
	}
	other := e.worker(t, e.hook, connector.WorkerConfig{ID: "other", Lease: lease})
	runOnce(t, other, 0) // the lease holds
	e.clock.Add(lease)
	runOnce(t, other, 1)
	if j := e.job(t, 0); j.State != store.JobDone || j.Worker != "other" {
		t.Fatalf("job = %+v, want done by the other worker", j)
	}
	ids := e.rec.seen(t)
	if len(ids) != 2 || ids[0] != ids[1] {
		t.Fatalf("event IDs %v, want the event twice with one ID", ids)
	}
}

func TestWorkerFailures(t *testing.T) {
	t.Run("permanent", func(t *testing.T) {
		e := newEnv(t, 401)
		e.onboard(t, 0)
		runOnce(t, e.worker(t, e.hook, connector.WorkerConfig{}), 1)
		j := e.job(t, 0)
		state, lastErr := store.CloudStateOf([]store.Job{j})
		if j.State != store.JobFailed || j.Attempts != 1 || state != store.CloudFailed || !strings.Contains(lastErr, "401") {
			t.Fatalf("job = %+v, state %s %q; want failed at once with the 401", j, state, lastErr)
		}
	})
	t.Run("max attempts", func(t *testing.T) {
		e := newEnv(t, 500, 500, 500)
		e.onboard(t, 0)
		w := e.worker(t, e.hook, connector.WorkerConfig{MaxAttempts: 2})
		runOnce(t, w, 1)
		e.clock.Add(time.Hour)
		runOnce(t, w, 1)
		if j := e.job(t, 0); j.State != store.JobFailed || j.Attempts != 2 {
			t.Fatalf("job = %+v, want failed after 2 attempts", j)
		}
	})
	t.Run("revoked before registration", func(t *testing.T) {
		e := newEnv(t)
		e.onboard(t, 0)
		must(t, e.store.RevokeDevice(t.Context(), e.devices[0], "stolen", e.clock.Now(),
			store.Job{Kind: store.JobDeregister, Connector: "webhook"}))
		runOnce(t, e.worker(t, e.hook, connector.WorkerConfig{}), 2)
		jobs, err := e.store.ListJobs(t.Context(), store.JobFilter{Identity: e.devices[0]})
		must(t, err)
		if jobs[0].Kind != store.JobDeregister || jobs[0].State != store.JobDone || jobs[1].State != store.JobFailed {
			t.Fatalf("jobs = %+v, want deregister done and register refused", jobs)
		}
		if state, _ := store.CloudStateOf(jobs); state != store.CloudDeregistered {
			t.Errorf("cloud state %s, want deregistered", state)
		}
		e.rec.seen(t)
		if len(e.rec.events) != 1 || e.rec.events[0].Type != webhook.EventDeregistered {
			t.Fatalf("events = %+v, want one deregistration only", e.rec.events)
		}
	})
}

// TestWorkerRun runs the loop itself until every job is done.
func TestWorkerRun(t *testing.T) {
	e := newEnv(t)
	for i := range e.devices {
		e.onboard(t, i)
	}
	w := e.worker(t, e.hook, connector.WorkerConfig{Poll: time.Millisecond, Batch: 2})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		jobs, err := e.store.ListJobs(t.Context(), store.JobFilter{State: store.JobDone})
		must(t, err)
		if len(jobs) == len(e.devices) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d jobs done", len(jobs), len(e.devices))
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	if ids := e.rec.seen(t); len(ids) != len(e.devices) {
		t.Fatalf("receiver saw %d events", len(ids))
	}
}

func TestBackoffBounds(t *testing.T) {
	for _, c := range []struct {
		attempt int
		max     time.Duration
	}{{1, time.Second}, {2, 2 * time.Second}, {3, 4 * time.Second}, {9, 256 * time.Second}, {10, 5 * time.Minute}, {1000, 5 * time.Minute}} {
		var top time.Duration
		for range 2000 {
			d := connector.Backoff(c.attempt)
			if d < 0 || d > c.max {
				t.Fatalf("Backoff(%d) = %v, want within [0, %v]", c.attempt, d, c.max)
			}
			top = max(top, d)
		}
		// Full jitter uses the whole range: 2000 draws all below half the
		// bound has probability 2^-2000.
		if top < c.max/2 {
			t.Errorf("Backoff(%d) never above %v in 2000 draws", c.attempt, top)
		}
	}
	if d := connector.BackoffWith(5, 0, time.Second); d != 0 {
		t.Errorf("BackoffWith zero base = %v", d)
	}
}

func TestNewWorkerChecksConfig(t *testing.T) {
	e := newEnv(t)
	if _, err := connector.NewWorker(e.store, map[string]connector.Connector{"other": e.hook}, connector.WorkerConfig{}); err == nil {
		t.Error("NewWorker accepted a connector under another name")
	}
	_, err := connector.NewWorker(e.store, nil, connector.WorkerConfig{Lease: time.Second, JobTimeout: time.Second})
	if err == nil || errors.Is(err, connector.ErrPermanent) {
		t.Errorf("NewWorker with jobs longer than the lease = %v, want an error", err)
	}
}
