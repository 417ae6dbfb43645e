// Package httpapi owns the platform's HTTP layer: routing, RFC 9457 problem
// responses (problemFor is the one place errors become problems), strict
// JSON decoding, reading the admin bearer token and the per-address
// authentication back-off, the admin routes (stations, products, manifest
// import, devices, audit log, tokens), health, readiness, metrics and the
// OpenAPI document, and a Go client of the admin API for the CLI. An admin
// handler only decodes, authorises (the route's scope), calls the use case
// in internal/admin, which owns its rules, store calls and audit event,
// and encodes.
//
// Every route lives in one table of Route values, each with its OpenAPI
// description, so the document served at /openapi.json is built from the
// same list the mux is: the onboarding routes join through Server.Handle.
// The package is transport-agnostic: TLS, listeners and timeouts belong to
// the caller (internal/app), and tests use httptest.
package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hallmark-iot/hallmark/internal/admin"
	"github.com/hallmark-iot/hallmark/internal/audit"
)

// DefaultMaxManifestBytes bounds a manifest upload unless configured.
const DefaultMaxManifestBytes = 2 << 30

// MetricsRegistry is where the server registers its collectors and what
// /metrics exposes; *prometheus.Registry is one.
type MetricsRegistry interface {
	prometheus.Registerer
	prometheus.Gatherer
}

// Config configures a Server.
type Config struct {
	// Admin is the admin use cases the admin routes call.
	Admin *admin.Service
	// Audit is the audit log: the events of admin requests refused before
	// they reach a use case go there, and, when Refusals is nil, the
	// summaries of refused anonymous ones.
	Audit audit.Appender
	// Ready reports whether the platform can serve, its store answering
	// (/readyz).
	Ready func(context.Context) error
	// Log receives one line per request and every internal error; nil
	// discards.
	Log *slog.Logger
	// Metrics receives the HTTP collectors and is served at /metrics; nil
	// makes a private registry.
	Metrics MetricsRegistry
	// MaxManifestBytes bounds a manifest upload; zero selects
	// DefaultMaxManifestBytes.
	MaxManifestBytes int64
	// Now is the clock; nil uses time.Now.
	Now func() time.Time
	// Refusals records refused anonymous admin requests (counters and
	// summaries in the audit log); nil makes one on Audit and Metrics,
	// whose summaries are written only when its Flush or Run is called
	// (Server.Refusals returns it).
	Refusals *audit.Aggregator
	// AuthLimit is the per-address back-off on failed admin
	// authentication; the zero value selects the defaults.
	AuthLimit AuthLimit
}

// Server is the platform's HTTP handler.
type Server struct {
	svc          *admin.Service
	rec          *audit.Recorder
	ready        func(context.Context) error
	log          *slog.Logger
	metrics      MetricsRegistry
	now          func() time.Time
	maxManifest  int64
	mux          *http.ServeMux
	requests     *prometheus.CounterVec
	durations    *prometheus.HistogramVec
	refusals     *audit.Aggregator
	authLimit    *authThrottle
	mu           sync.Mutex // guards routes and openapi
	routes       []Route
	openapiCache []byte
}

// New builds a server with every admin and platform route.
func New(cfg Config) (*Server, error) {
	if cfg.Admin == nil || cfg.Audit == nil || cfg.Ready == nil {
		return nil, errors.New("httpapi: no admin service, audit log or readiness check")
	}
	s := &Server{
		svc: cfg.Admin, ready: cfg.Ready, log: cfg.Log, metrics: cfg.Metrics, now: cfg.Now,
		maxManifest: cfg.MaxManifestBytes, mux: http.NewServeMux(),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.metrics == nil {
		s.metrics = prometheus.NewRegistry()
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.maxManifest <= 0 {
		s.maxManifest = DefaultMaxManifestBytes
	}
	s.rec = audit.NewRecorder(cfg.Audit, s.log, s.now)
	if err := s.registerMetrics(); err != nil {
		return nil, err
	}
	if err := s.initAuthDefences(cfg); err != nil {
		return nil, err
	}
	for _, rt := range s.builtinRoutes() {
		if err := s.Handle(rt); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func (s *Server) registerMetrics() error {
	s.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hallmark_http_requests_total",
		Help: "HTTP requests by route pattern and status code.",
	}, []string{"route", "code"})
	s.durations = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "hallmark_http_request_duration_seconds",
		Help:    "HTTP request duration by route pattern and status code.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 18),
	}, []string{"route", "code"})
	for _, c := range []prometheus.Collector{s.requests, s.durations} {
		if err := s.metrics.Register(c); err != nil {
			return fmt.Errorf("httpapi: register metrics: %w", err)
		}
	}
	return nil
}

// Route is one entry of the route table: a method and path pattern in
// net/http syntax ("/v1/admin/devices/{identity}"), its handler, and its
// OpenAPI description.
type Route struct {
	Method  string
	Path    string
	Handler http.Handler
	Doc     RouteDoc
}

// Pattern is the route's ServeMux pattern, "METHOD /path".
func (rt Route) Pattern() string { return rt.Method + " " + rt.Path }

var (
	methodPattern = regexp.MustCompile(`^(GET|POST|PUT|PATCH|DELETE)$`)
	pathPattern   = regexp.MustCompile(`^(/[a-z0-9._-]+|/\{[a-z_]+\})+$`)
)

// Handle adds a route to the server and to its OpenAPI document. The
// route's handler runs inside the server's middleware (request ID, access
// log, metrics, panic recovery, refusal of query parameters the route's doc
// does not declare). Call it before the server serves; a route whose
// method and path are taken, or whose doc lacks an operation ID, summary or
// success response, is refused.
func (s *Server) Handle(rt Route) error {
	if !methodPattern.MatchString(rt.Method) || !pathPattern.MatchString(rt.Path) || rt.Handler == nil {
		return fmt.Errorf("httpapi: route %q: bad method, path or handler", rt.Pattern())
	}
	if err := rt.Doc.check(rt.Path); err != nil {
		return fmt.Errorf("httpapi: route %q: %w", rt.Pattern(), err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, have := range s.routes {
		if have.Pattern() == rt.Pattern() {
			return fmt.Errorf("httpapi: route %q registered twice", rt.Pattern())
		}
		if have.Doc.OperationID == rt.Doc.OperationID {
			return fmt.Errorf("httpapi: operation ID %q used twice", rt.Doc.OperationID)
		}
	}
	s.mux.Handle(rt.Pattern(), s.queryGuard(rt))
	s.routes = append(s.routes, rt)
	s.openapiCache = nil
	return nil
}

// Routes returns the route table, in registration order.
func (s *Server) Routes() []Route {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Route(nil), s.routes...)
}

// ServeHTTP runs the middleware around the mux.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rid := incomingRequestID(r.Header.Get("X-Request-Id"))
	r = r.WithContext(audit.WithRequestID(r.Context(), rid))
	rec := &statusRecorder{ResponseWriter: w}
	h := rec.Header()
	h.Set("X-Request-Id", rid)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.Error("handler panicked", "request_id", rid, "route", r.Pattern, "panic", fmt.Sprint(v))
			if !rec.wrote {
				s.writeProblem(rec, r, NewProblem("internal", ""))
			}
		}
		s.observe(r, rec, time.Since(start), rid)
	}()
	handler, pattern := s.mux.Handler(r)
	if pattern == "" {
		// No route: ServeMux's own 404 or 405.
		s.muxAnswer(rec, r, handler)
		return
	}
	s.mux.ServeHTTP(rec, r)
}

// muxAnswer turns ServeMux's plain-text 404 and 405 into problems, keeping
// the Allow header of a 405; any other answer passes as it is.
func (s *Server) muxAnswer(w http.ResponseWriter, r *http.Request, h http.Handler) {
	probe := &headerProbe{header: http.Header{}}
	h.ServeHTTP(probe, r)
	switch probe.status {
	case http.StatusNotFound:
		s.writeProblem(w, r, problemf("not-found", "no route %s %s", r.Method, r.URL.Path))
	case http.StatusMethodNotAllowed:
		w.Header().Set("Allow", probe.header.Get("Allow"))
		s.writeProblem(w, r, problemf("method-not-allowed", "%s is not allowed on %s", r.Method, r.URL.Path))
	default:
		h.ServeHTTP(w, r)
	}
}

func (s *Server) observe(r *http.Request, rec *statusRecorder, took time.Duration, rid string) {
	status := rec.status
	if status == 0 {
		status = http.StatusOK
	}
	route := r.Pattern
	if route == "" {
		route = "unmatched" // never the raw path: it would explode the label set
	}
	code := strconv.Itoa(status)
	s.requests.WithLabelValues(route, code).Inc()
	s.durations.WithLabelValues(route, code).Observe(took.Seconds())
	level := slog.LevelInfo
	if route == "GET /healthz" || route == "GET /readyz" || route == "GET /metrics" {
		level = slog.LevelDebug
	}
	s.log.LogAttrs(r.Context(), level, "request", slog.String("request_id", rid),
		slog.String("method", r.Method), slog.String("route", route), slog.Int("status", status),
		slog.Duration("took", took), slog.String("remote", r.RemoteAddr))
}

// queryGuard refuses query parameters the route does not declare, and any
// declared one given twice: a typo ("?sate=revoked") must not silently
// list every device.
func (s *Server) queryGuard(rt Route) http.Handler {
	allowed := map[string]bool{}
	for _, p := range rt.Doc.Query {
		allowed[p.Name] = true
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q, err := parseQuery(r.URL.RawQuery)
		if err != nil {
			s.writeProblem(w, r, err)
			return
		}
		for name, values := range q {
			if !allowed[name] {
				s.writeProblem(w, r, problemf("malformed-request", "unknown query parameter %q", name))
				return
			}
			if len(values) > 1 {
				s.writeProblem(w, r, problemf("malformed-request", "query parameter %q given more than once", name))
				return
			}
		}
		rt.Handler.ServeHTTP(w, r)
	})
}

var requestIDPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{8,64}$`)

// incomingRequestID keeps a caller's well-formed request ID, so one ID
// follows a request through proxies, and makes a new one otherwise.
func incomingRequestID(v string) string {
	if requestIDPattern.MatchString(v) {
		return v
	}
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// requestID returns the request's ID, for logs and problems. It travels
// as audit.WithRequestID puts it, so that a lost audit event's log line
// names it too.
func requestID(ctx context.Context) string { return audit.RequestID(ctx) }

// remoteAddr is the client's IP address as the connection shows it, in
// canonical form (audit.Source). Forwarding headers are ignored: the
// platform terminates TLS itself.
func remoteAddr(r *http.Request) string {
	return audit.Source(r.RemoteAddr)
}

// statusRecorder remembers the status a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (r *statusRecorder) WriteHeader(code int) {
	if !r.wrote {
		r.status, r.wrote = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if !r.wrote {
		r.status, r.wrote = http.StatusOK, true
	}
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (flush,
// deadlines) and http.MaxBytesReader close it.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// headerProbe runs a handler without answering, to see what it would do.
type headerProbe struct {
	header http.Header
	status int
}

func (p *headerProbe) Header() http.Header { return p.header }
func (p *headerProbe) WriteHeader(code int) {
	if p.status == 0 {
		p.status = code
	}
}
func (p *headerProbe) Write(b []byte) (int, error) {
	p.WriteHeader(http.StatusOK)
	return len(b), nil
}
