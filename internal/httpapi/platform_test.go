package httpapi

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/store"
)

func TestHealthAndReadiness(t *testing.T) {
	e := newEnv(t)
	var st Status
	e.call(t, "GET", "/healthz", "", nil).decode(t, 200, &st)
	if st.Status != "ok" {
		t.Fatal(st)
	}
	e.call(t, "GET", "/readyz", "", nil).decode(t, 200, &st)
	if st.Status != "ready" {
		t.Fatal(st)
	}
	e.store.Close()
	e.call(t, "GET", "/readyz", "", nil).wantProblem(t, 503, "unavailable")
	e.call(t, "GET", "/healthz", "", nil).decode(t, 200, &st)
}

func TestNotFoundAndMethodNotAllowed(t *testing.T) {
	e := newEnv(t)
	e.call(t, "GET", "/v1/admin/nothing", e.admin, nil).wantProblem(t, 404, "not-found")
	r := e.call(t, "PUT", "/v1/admin/stations", e.admin, nil)
	r.wantProblem(t, 405, "method-not-allowed")
	if allow := r.header.Get("Allow"); !strings.Contains(allow, "GET") || !strings.Contains(allow, "POST") {
		t.Fatalf("Allow %q", allow)
	}
}

func TestRequestID(t *testing.T) {
	e := newEnv(t)
	req, _ := http.NewRequest("GET", e.ts.URL+"/healthz", nil)
	req.Header.Set("X-Request-Id", "trace-0123456789")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("X-Request-Id"); got != "trace-0123456789" {
		t.Fatalf("request ID %q not kept", got)
	}
	// An unsafe one is replaced, not echoed into logs and headers.
	req.Header.Set("X-Request-Id", "bad id\twith spaces")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("X-Request-Id"); got == "" || strings.ContainsAny(got, " \t") {
		t.Fatalf("request ID %q", got)
	}
}

// failingStore fails the calls a test picks, to reach the internal paths.
type failingStore struct {
	store.Store
	err error
}

func (f failingStore) ListStations(context.Context) ([]store.Station, error) { return nil, f.err }

// syncBuffer is a log destination safe for the server's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestInternalErrorsDoNotLeak(t *testing.T) {
	base := newEnv(t)
	var logs syncBuffer
	secretCause := errors.New("open /var/lib/hallmark/secret-path: disk on fire")
	srv, err := New(storeConfig(failingStore{Store: base.store, err: secretCause}, Config{Log: slog.New(slog.NewJSONHandler(&logs, nil))}))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Handle(Route{Method: "GET", Path: "/panic", Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		panic("secret panic value")
	}), Doc: RouteDoc{OperationID: "panic", Summary: "Panics.", Responses: []Response{{Status: 200, Description: "never"}}}}); err != nil {
		t.Fatal(err)
	}
	e := &env{srv: srv, store: base.store, ts: httptest.NewServer(srv)}
	defer e.ts.Close()
	for _, path := range []string{"/v1/admin/stations", "/panic"} {
		r := e.call(t, "GET", path, base.admin, nil)
		p := r.wantProblem(t, 500, "internal")
		if p.Detail != "" || strings.Contains(string(r.body), "secret") {
			t.Fatalf("%s leaks: %s", path, r.body)
		}
		if !strings.Contains(logs.String(), p.RequestID) {
			t.Fatalf("%s: request ID %s not in the log", path, p.RequestID)
		}
	}
	if !strings.Contains(logs.String(), "disk on fire") || !strings.Contains(logs.String(), "secret panic value") {
		t.Fatalf("causes not logged: %s", logs.String())
	}
	if ev := base.lastAudit(t); ev.Action != "station.list" || ev.Outcome != "error" || strings.Contains(ev.Detail, "secret") {
		t.Fatalf("audit %+v", ev)
	}
}

func TestMetrics(t *testing.T) {
	e := newEnv(t)
	e.registry(t)
	e.call(t, "GET", "/v1/admin/devices/"+strings.Repeat("cd", 32), e.admin, nil)
	e.call(t, "GET", "/no/such/path/12345", "", nil)
	r := e.call(t, "GET", "/metrics", "", nil)
	body := string(r.body)
	for _, want := range []string{
		`hallmark_http_requests_total{code="201",route="POST /v1/admin/stations"} 1`,
		`hallmark_http_requests_total{code="404",route="GET /v1/admin/devices/{identity}"} 1`,
		`hallmark_http_requests_total{code="404",route="unmatched"} 1`,
		`hallmark_http_request_duration_seconds_count{code="201",route="POST /v1/admin/products"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(body, "12345") || strings.Contains(body, strings.Repeat("cd", 32)) {
		t.Fatal("raw paths in metric labels")
	}
}
