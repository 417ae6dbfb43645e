package relay

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/connector/webhook"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
	"github.com/hallmark-iot/hallmark/internal/store/sqlite"
)

var secret = []byte("relay-test-secret-0123456789")

// fleet is a real SQLite registry with devices whose transitions write
// events.
type fleet struct {
	s       *sqlite.Store
	devices []identity.ID
	clock   time.Time
}

func newFleet(t testing.TB, n int) *fleet {
	t.Helper()
	ctx := t.Context()
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "hallmark.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	now := time.Now().UTC().Truncate(time.Microsecond)
	pub := []byte("station public key")
	station := store.Station{ID: identity.FromSPKI(pub), Name: "s1", Algorithm: sigalg.ECDSAP256, PublicKey: pub, CreatedAt: now}
	product := store.Product{ID: "sensor-v1", Name: "Sensor", CertValidity: 24 * time.Hour, CloudEndpoint: "mqtts://b:8883", CreatedAt: now}
	must(t, s.CreateStation(ctx, station))
	must(t, s.CreateProduct(ctx, product))
	f := &fleet{s: s, clock: now}
	var devices []store.Device
	for i := range n {
		key := []byte(fmt.Sprintf("device key %d", i))
		devices = append(devices, store.Device{Identity: identity.FromSPKI(key), Algorithm: sigalg.Ed25519, PublicKey: key,
			RootOfTrust: "keygen", Injection: "none"})
		f.devices = append(f.devices, devices[i].Identity)
	}
	_, err = s.ImportBatch(ctx, store.Batch{ID: "b1", StationID: station.ID, ProductID: product.ID,
		ManifestDigest: sha256.Sum256([]byte("b1")), ImportedAt: now}, devices)
	must(t, err)
	return f
}

// cycle decommissions then reprovisions device i: two events.
func (f *fleet) cycle(t testing.TB, i int) {
	t.Helper()
	for _, tr := range []store.Transition{store.TransitionDecommission, store.TransitionReprovision} {
		f.clock = f.clock.Add(time.Second)
		_, err := f.s.TransitionDevice(t.Context(), f.devices[i], store.TransitionRequest{Transition: tr, Reason: "test " + string(tr), At: f.clock})
		must(t, err)
	}
}

func (f *fleet) events(t testing.TB) []store.DeviceEvent {
	t.Helper()
	all, err := f.s.ListEvents(t.Context(), store.EventFilter{Limit: store.MaxPageSize})
	must(t, err)
	return all
}

// receiver is a webhook endpoint over HTTPS that verifies each request
// and answers from a script (then 200).
type receiver struct {
	mu       sync.Mutex
	script   []int
	got      []webhook.DeviceEvent // every request, duplicates included
	ids      []string
	verified []error
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(req.Body, 64<<10))
	var ev webhook.DeviceEvent
	err := webhook.Verify(secret, req.Header, body, time.Now(), 0)
	if err == nil {
		err = json.Unmarshal(body, &ev)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got, r.ids, r.verified = append(r.got, ev), append(r.ids, req.Header.Get(webhook.HeaderID)), append(r.verified, err)
	status := http.StatusOK
	if len(r.script) > 0 {
		status, r.script = r.script[0], r.script[1:]
	}
	w.WriteHeader(status)
}

func (r *receiver) snapshot() ([]webhook.DeviceEvent, []string, []error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got), slices.Clone(r.ids), slices.Clone(r.verified)
}

func newSink(t *testing.T, r *receiver) *webhook.Connector {
	t.Helper()
	srv := httptest.NewTLSServer(r)
	t.Cleanup(srv.Close)
	c, err := webhook.New(webhook.Config{URL: srv.URL, Secret: secret, Client: srv.Client()})
	must(t, err)
	return c
}

// metrics records what the relay reports.
type metrics struct {
	mu       sync.Mutex
	outcomes map[string]int
	behind   []int
}

func (m *metrics) ObserveDelivery(_, outcome string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.outcomes == nil {
		m.outcomes = map[string]int{}
	}
	m.outcomes[outcome]++
}

func (m *metrics) SetBehind(_ string, events int, _ time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.behind = append(m.behind, events)
}

func (m *metrics) count(outcome string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.outcomes[outcome]
}

// start runs a relay until the test ends.
func start(t *testing.T, cfg Config) *Relay {
	t.Helper()
	if cfg.Poll == 0 {
		cfg.Poll = 10 * time.Millisecond
	}
	cfg.BackoffBase, cfg.BackoffCap = 5*time.Millisecond, 20*time.Millisecond
	r, err := New(cfg)
	must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return r
}

// waitFor polls cond for up to ten seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func received(r *receiver, n int) func() bool {
	return func() bool { got, _, _ := r.snapshot(); return len(got) >= n }
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
