package httpapi

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hallmark-iot/hallmark/internal/admin"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/manifest"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/sigalg/sigalgtest"
	"github.com/hallmark-iot/hallmark/internal/store"
	"github.com/hallmark-iot/hallmark/internal/store/sqlite"
)

var testStart = time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is a server on a real SQLite store behind httptest, with an admin
// token.
type env struct {
	srv   *Server
	store store.Store
	ts    *httptest.Server
	clock *clock
	reg   *prometheus.Registry
	admin string // bearer token with the admin scope
}

func newEnv(t testing.TB) *env {
	t.Helper()
	return newEnvConfig(t, Config{})
}

func newEnvConfig(t testing.TB, cfg Config) *env {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "hallmark.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := &env{store: st, clock: &clock{t: testStart}, reg: prometheus.NewRegistry()}
	cfg.Now, cfg.Metrics = e.clock.Now, e.reg
	if e.srv, err = New(storeConfig(st, cfg)); err != nil {
		t.Fatal(err)
	}
	e.ts = httptest.NewServer(e.srv)
	t.Cleanup(e.ts.Close)
	e.admin = e.token(t, "test admin", ScopeAdmin)
	return e
}

// storeConfig completes cfg with the admin use cases, the audit log and
// the readiness check on st, as the platform wires them.
func storeConfig(st store.Store, cfg Config) Config {
	cfg.Admin = admin.New(st, admin.Config{Log: cfg.Log, Now: cfg.Now})
	cfg.Audit, cfg.Ready = st, st.Ping
	return cfg
}

// tokenAt is admin.NewToken as made at now.
func tokenAt(name string, scopes []string, ttl time.Duration, now time.Time) (string, store.Token) {
	secret, tok := admin.NewToken(name, scopes, 0)
	tok.CreatedAt = now.UTC()
	if ttl > 0 {
		tok.ExpiresAt = now.Add(ttl).UTC()
	}
	return secret, tok
}

// token stores a new token with the given scopes and returns its secret.
func (e *env) token(t testing.TB, name string, scopes ...string) string {
	t.Helper()
	secret, tok := tokenAt(name, scopes, 0, e.clock.Now())
	if err := e.store.CreateToken(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	return secret
}

// response is what a test request got back.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) problem(t testing.TB) Problem {
	t.Helper()
	media, _, _ := mime.ParseMediaType(r.header.Get("Content-Type"))
	if media != "application/problem+json" {
		t.Fatalf("status %d, Content-Type %q, body %s: want a problem", r.status, media, r.body)
	}
	var p Problem
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("problem body %s: %v", r.body, err)
	}
	if p.Status != r.status || p.Type != ProblemTypeBase+p.Code || p.Title == "" {
		t.Fatalf("inconsistent problem for status %d: %+v", r.status, p)
	}
	if p.RequestID == "" || p.RequestID != r.header.Get("X-Request-Id") {
		t.Fatalf("problem request ID %q, header %q", p.RequestID, r.header.Get("X-Request-Id"))
	}
	return p
}

// wantProblem checks the response is the problem with this status and code.
func (r response) wantProblem(t testing.TB, status int, code string) Problem {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	p := r.problem(t)
	if p.Code != code {
		t.Fatalf("problem code %q, want %q: %s", p.Code, code, r.body)
	}
	return p
}

func (r response) decode(t testing.TB, status int, v any) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q", ct)
	}
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

// call sends one request. A nil body sends none; a body of another type
// than []byte or string is marshalled as JSON with Content-Type
// application/json unless contentType is given.
func (e *env) call(t testing.TB, method, path, token string, body any, contentType ...string) response {
	t.Helper()
	auth := ""
	if token != "" {
		auth = "Bearer " + token
	}
	return e.callAuth(t, method, path, auth, body, contentType...)
}

// callAuth is call with the Authorization header as given.
func (e *env) callAuth(t testing.TB, method, path, auth string, body any, contentType ...string) response {
	t.Helper()
	var rd io.Reader
	ct := ""
	switch b := body.(type) {
	case nil:
	case []byte:
		rd, ct = bytes.NewReader(b), "application/json"
	case string:
		rd, ct = strings.NewReader(b), "application/json"
	default:
		data, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd, ct = bytes.NewReader(data), "application/json"
	}
	if len(contentType) > 0 {
		ct = contentType[0]
	}
	req, err := http.NewRequest(method, e.ts.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := e.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Header.Get("X-Request-Id") == "" {
		t.Fatalf("%s %s: no X-Request-Id", method, path)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: data}
}

// audit returns the audit log, oldest first.
func (e *env) audit(t testing.TB, f store.AuditFilter) []store.AuditEvent {
	t.Helper()
	f.Limit = 1000
	events, err := e.store.ListAudit(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	return events
}

func (e *env) lastAudit(t testing.TB) store.AuditEvent {
	t.Helper()
	events := e.audit(t, store.AuditFilter{})
	if len(events) == 0 {
		t.Fatal("audit log is empty")
	}
	return events[len(events)-1]
}

// deriveKey derives a key of suite id from a seed naming it, so tests are
// reproducible.
func deriveKey(t testing.TB, id sigalg.ID, name string, n int) crypto.Signer {
	return sigalgtest.DeriveNamed(t, id, name, n)
}

func stationPEM(t testing.TB, key crypto.Signer) string {
	t.Helper()
	data, err := sigalg.EncodePublicKeyPEM(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// deviceRecord is the manifest record a station writes for a device key.
func deviceRecord(t testing.TB, key crypto.Signer) manifest.Record {
	t.Helper()
	id, err := identity.FromPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	nonce := sha256.Sum256(id[:])
	proof, err := sigalg.Sign(key, identity.ProofMessage(identity.FactoryProofContext, nonce[:], id))
	if err != nil {
		t.Fatal(err)
	}
	suite, _ := sigalg.SuiteOf(key)
	return manifest.Record{
		Identity: id, Algorithm: suite.ID(), PublicKey: key.Public(),
		RootOfTrust: manifest.PUF, Injection: manifest.NotInjected,
		Time: testStart, Nonce: nonce[:], Proof: proof,
	}
}

// devices derives n device keys of suite alg, named by prefix.
func devices(t testing.TB, alg sigalg.ID, prefix string, n int) []manifest.Record {
	t.Helper()
	recs := make([]manifest.Record, n)
	for i := range recs {
		recs[i] = deviceRecord(t, deriveKey(t, alg, prefix, i))
	}
	return recs
}

// writeManifest writes a signed manifest of recs.
func writeManifest(t testing.TB, station crypto.Signer, batch string, recs []manifest.Record) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := manifest.NewWriter(&buf, manifest.Header{Batch: batch, Created: testStart}, station)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		r.Seq = 0
		if err := w.Add(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// registry sets up a station and a product through the API.
func (e *env) registry(t testing.TB) (station crypto.Signer) {
	t.Helper()
	station = deriveKey(t, sigalg.Ed25519, "station", 0)
	e.call(t, "POST", "/v1/admin/stations", e.admin, StationRequest{Name: "line 1", PublicKey: stationPEM(t, station)}).decode(t, 201, &Station{})
	e.call(t, "POST", "/v1/admin/products", e.admin, ProductRequest{
		ID: "sensor", Name: "Sensor", CertValidity: "8760h", CloudEndpoint: "mqtts://broker.example.com:8883",
	}).decode(t, 201, &Product{})
	return station
}

func (e *env) importManifest(t testing.TB, product string, data []byte) response {
	t.Helper()
	return e.call(t, "POST", "/v1/admin/manifests?product="+product, e.admin, data, "application/jsonl")
}

func (e *env) deviceCount(t testing.TB) int {
	t.Helper()
	n := 0
	f := store.DeviceFilter{Limit: 1000}
	for {
		page, err := e.store.ListDevices(context.Background(), f)
		if err != nil {
			t.Fatal(err)
		}
		n += len(page)
		if len(page) < f.Limit {
			return n
		}
		f.After = page[len(page)-1].Identity
	}
}
