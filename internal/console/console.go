// Package console owns the operators' web console: sign-in sessions,
// CSRF defence, security headers, its pages, templates and embedded
// static assets (a style sheet and two small scripts, no third-party
// code, nothing fetched from elsewhere), and the SVG charts it draws on
// the server. `hallmark serve` serves it beside the API, on the same
// port, under /console/ (docs/console.md).
//
// A page only decodes, calls a use case of internal/admin (which owns its
// rules, store calls and audit event) and renders with html/template:
// what devices, stations and operators name is always shown as text.
// Sessions are opened with an admin API token and act with its scopes,
// read afresh on every request.
package console

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/hallmark-iot/hallmark/internal/admin"
)

// Prefix is where the console is served.
const Prefix = "/console/"

// CookieName is the session cookie's name: the __Host- prefix makes a
// browser keep it only if it is Secure, for this host and path /.
const CookieName = "__Host-hallmark-console"

// ContentSecurityPolicy is sent with every console answer: only the
// console's own scripts, styles and images, no inline code, no framing.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// DefaultMaxManifestBytes bounds a manifest upload unless configured.
const DefaultMaxManifestBytes = 2 << 30

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed static
var staticFiles embed.FS

// Config configures the console.
type Config struct {
	// Admin is the admin use cases the pages call.
	Admin *admin.Service
	// Console is the console's own use cases: sessions, the fleet
	// summary, batches, events.
	Console *admin.Console
	// Log receives internal errors; nil discards.
	Log *slog.Logger
	// MaxManifestBytes bounds a manifest upload; zero selects
	// DefaultMaxManifestBytes.
	MaxManifestBytes int64
	// AuthGuard is the per-address back-off on failed authentication
	// that the API's admin routes use (httpapi.Server.AuthGuard), so a
	// sign-in cannot guess more tokens than the API allows; nil limits
	// nothing.
	AuthGuard AuthGuard
}

// AuthGuard locks out an address that failed to authenticate too often.
type AuthGuard interface {
	// LockedFor returns how long addr remains locked out, zero if not.
	LockedFor(addr string) time.Duration
	// Fail counts a failed authentication from addr.
	Fail(addr string)
}

// Handler serves the console.
type Handler struct {
	admin       *admin.Service
	console     *admin.Console
	log         *slog.Logger
	maxManifest int64
	mux         *http.ServeMux
	pages       map[string]*template.Template
	static      map[string]asset
	origins     *http.CrossOriginProtection
	guard       AuthGuard
}

// asset is one embedded static file.
type asset struct {
	body        []byte
	contentType string
}

// New builds the console's handler.
func New(cfg Config) (*Handler, error) {
	if cfg.Admin == nil || cfg.Console == nil {
		return nil, errors.New("console: no admin or console use cases")
	}
	h := &Handler{admin: cfg.Admin, console: cfg.Console, log: cfg.Log, maxManifest: cfg.MaxManifestBytes,
		mux: http.NewServeMux(), origins: http.NewCrossOriginProtection(), guard: cfg.AuthGuard}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.maxManifest <= 0 {
		h.maxManifest = DefaultMaxManifestBytes
	}
	var err error
	if h.pages, err = parsePages(); err != nil {
		return nil, err
	}
	if h.static, err = loadStatic(); err != nil {
		return nil, err
	}
	h.origins.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.renderError(w, r, nil, http.StatusForbidden, "This request came from another site, so it was refused and nothing changed.")
	}))
	h.routes()
	return h, nil
}

// ServeHTTP sets the security headers of every console answer, then
// routes.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", ContentSecurityPolicy)
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("Cache-Control", "no-store")
	hd.Set("Cross-Origin-Opener-Policy", "same-origin")
	hd.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.mux.ServeHTTP(w, r)
}

func (h *Handler) routes() {
	m := h.mux
	m.HandleFunc("GET /console/static/{file}", h.serveStatic)
	m.HandleFunc("GET /console/signin", h.signInPage)
	m.HandleFunc("POST /console/signin", h.signIn)
	m.Handle("POST /console/signout", h.action(h.signOut))
	m.Handle("GET /console/{$}", h.page(h.overview))
	m.Handle("GET /console/devices", h.page(h.devices))
	m.Handle("GET /console/devices/{identity}", h.page(h.device))
	m.Handle("POST /console/devices/{identity}/{action}", h.action(h.deviceAction))
	m.Handle("GET /console/batches", h.page(h.batches))
	m.Handle("GET /console/manifests", h.page(h.manifests))
	m.Handle("POST /console/manifests", h.upload())
	m.Handle("GET /console/stations", h.page(h.stations))
	m.Handle("POST /console/stations", h.action(h.createStation))
	m.Handle("GET /console/products", h.page(h.products))
	m.Handle("POST /console/products", h.action(h.createProduct))
	m.Handle("GET /console/tokens", h.page(h.tokens))
	m.Handle("POST /console/tokens", h.action(h.createToken))
	m.Handle("POST /console/tokens/{id}/revoke", h.action(h.revokeToken))
	m.Handle("GET /console/audit", h.page(h.auditLog))
	m.Handle("GET /console/events", h.page(h.events))
	m.HandleFunc("GET /console/events/feed", h.eventFeed)
	m.HandleFunc("/console/", func(w http.ResponseWriter, r *http.Request) {
		h.renderError(w, r, nil, http.StatusNotFound, "There is no console page at this address.")
	})
}

// pageFiles are the pages, each a template file of templates/ rendered
// inside layout.html.
var pageFiles = []string{"signin", "overview", "devices", "device", "confirm", "batches", "manifests",
	"stations", "products", "tokens", "audit", "events", "error"}

func parsePages() (map[string]*template.Template, error) {
	funcs := template.FuncMap{
		"when":  formatTime,
		"short": func(s string) string { return shorten(s, 16) },
		"hexid": hexString,
		"dict":  dict,
	}
	base, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFiles, "templates/layout.html")
	if err != nil {
		return nil, fmt.Errorf("console: templates: %w", err)
	}
	pages := map[string]*template.Template{}
	for _, name := range pageFiles {
		t, err := template.Must(base.Clone()).ParseFS(templateFiles, "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("console: template %s: %w", name, err)
		}
		pages[name] = t
	}
	return pages, nil
}

func loadStatic() (map[string]asset, error) {
	types := map[string]string{".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}
	out := map[string]asset{}
	err := fs.WalkDir(staticFiles, "static", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := staticFiles.ReadFile(path)
		if err != nil {
			return err
		}
		name := strings.TrimPrefix(path, "static/")
		ct, ok := types[name[strings.LastIndexByte(name, '.'):]]
		if !ok {
			return fmt.Errorf("static file %s of no known type", name)
		}
		out[name] = asset{body: body, contentType: ct}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("console: static files: %w", err)
	}
	return out, nil
}

// serveStatic serves an embedded asset; anything else is not found.
func (h *Handler) serveStatic(w http.ResponseWriter, r *http.Request) {
	a, ok := h.static[r.PathValue("file")]
	if !ok {
		h.renderError(w, r, nil, http.StatusNotFound, "There is no such file.")
		return
	}
	w.Header().Set("Content-Type", a.contentType)
	_, _ = w.Write(a.body)
}

// view is what every page's template gets.
type view struct {
	Title    string
	Current  string // the nav entry of the page
	SignedIn bool
	CSRF     string
	Nav      []navItem
	Scripts  []string
	// Can tells which scopes the session's token holds, for the forms a
	// page shows; the use cases decide all the same.
	Can  map[string]bool
	Data any
}

type navItem struct {
	Label, Href string
	Current     bool
}

var navEntries = []navItem{{"Overview", "/console/", false}, {"Devices", "/console/devices", false},
	{"Batches", "/console/batches", false}, {"Manifests", "/console/manifests", false},
	{"Stations", "/console/stations", false}, {"Products", "/console/products", false},
	{"Tokens", "/console/tokens", false}, {"Audit", "/console/audit", false}, {"Events", "/console/events", false}}

// render executes a page into a buffer, so that a template failure is a
// clean 500 and never half a page.
func (h *Handler) render(w http.ResponseWriter, r *http.Request, s *admin.Session, status int, page, title string, data any, scripts ...string) {
	v := view{Title: title, Current: title, Data: data, Scripts: scripts, Can: map[string]bool{}}
	if s != nil {
		v.SignedIn, v.CSRF = true, csrfToken(s.Secret)
		for _, sc := range admin.Scopes() {
			v.Can[sc] = s.Caller.HasScope(sc)
		}
		for _, n := range navEntries {
			n.Current = n.Label == title
			v.Nav = append(v.Nav, n)
		}
	}
	var buf bytes.Buffer
	if err := h.pages[page].ExecuteTemplate(&buf, "layout", v); err != nil {
		h.log.Error("console: render", "page", page, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// errorView is the error page's data.
type errorView struct {
	Heading, Message string
	Back             string
}

// renderError answers with the error page: the message in #error.
func (h *Handler) renderError(w http.ResponseWriter, r *http.Request, s *admin.Session, status int, msg string) {
	heading := map[int]string{
		http.StatusBadRequest: "Bad request", http.StatusForbidden: "Not allowed", http.StatusNotFound: "Not found",
		http.StatusConflict: "Refused", http.StatusRequestEntityTooLarge: "Too large", http.StatusUnprocessableEntity: "Refused",
		http.StatusInternalServerError: "Something went wrong", http.StatusUnauthorized: "Sign in",
	}[status]
	if heading == "" {
		heading = http.StatusText(status)
	}
	h.render(w, r, s, status, "error", heading, errorView{Heading: heading, Message: msg})
}

// fail answers a use case's error: its status and its message, which
// admin.Error keeps free of internal causes; an internal error is logged
// and answered without detail.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, s *admin.Session, err error) {
	e := admin.Classify(err)
	status := statusOf(e.Code)
	msg := e.Message
	if status == http.StatusInternalServerError || msg == "" {
		if status == http.StatusInternalServerError {
			h.log.Error("console: internal error", "path", r.URL.Path, "err", err)
		}
		msg = "The request failed (" + e.Code + "); nothing more can be said here. The platform's log has the cause."
	}
	h.renderError(w, r, s, status, msg)
}

// statusOf is the HTTP status of a problem code, as the API answers it.
func statusOf(code string) int {
	switch code {
	case admin.CodeMalformed, admin.CodeManifestInvalid:
		return http.StatusBadRequest
	case admin.CodeUnauthorized:
		return http.StatusUnauthorized
	case admin.CodeForbidden, admin.CodeTokenOutlivesCreator:
		return http.StatusForbidden
	case admin.CodeNotFound, admin.CodeUnknownProduct, admin.CodeUnknownStation:
		return http.StatusNotFound
	case admin.CodeConflict, admin.CodeTransitionNotAllowed, admin.CodeDuplicateDevices, admin.CodeDevicesNotLocked:
		return http.StatusConflict
	case admin.CodeBodyTooLarge:
		return http.StatusRequestEntityTooLarge
	case admin.CodeInternal:
		return http.StatusInternalServerError
	}
	return http.StatusBadRequest
}

// formatTime shows a time in UTC to the second; a zero time is "never".
func formatTime(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// shorten keeps the first n characters of a long identifier, marking the
// cut.
func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// dict makes a map of its key, value arguments, to pass several values
// to a template.
func dict(kv ...any) (map[string]any, error) {
	if len(kv)%2 != 0 {
		return nil, errors.New("dict: odd number of arguments")
	}
	m := map[string]any{}
	for i := 0; i < len(kv); i += 2 {
		k, ok := kv[i].(string)
		if !ok {
			return nil, errors.New("dict: a key is not a string")
		}
		m[k] = kv[i+1]
	}
	return m, nil
}
