package app

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/admin"
	"github.com/hallmark-iot/hallmark/internal/console"
	"github.com/hallmark-iot/hallmark/internal/httpapi"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/manifest"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// browser is a console user over real HTTPS: it keeps the session cookie
// as a browser would and follows no redirect, so that tests see them.
type browser struct {
	t      *testing.T
	base   string
	http   *http.Client
	cookie *http.Cookie
}

func newBrowser(t *testing.T, p *Platform) *browser {
	c := tlsClient(p, nil)
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c.Timeout = 30 * time.Second
	return &browser{t: t, base: p.URL(), http: c}
}

// page is one answer: status, headers and body.
type page struct {
	status int
	header http.Header
	body   string
}

func (b *browser) do(req *http.Request) page {
	b.t.Helper()
	if b.cookie != nil {
		req.AddCookie(&http.Cookie{Name: b.cookie.Name, Value: b.cookie.Value})
	}
	resp, err := b.http.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	for _, c := range resp.Cookies() {
		if c.Name == console.CookieName {
			if c.MaxAge < 0 {
				b.cookie = nil
			} else {
				b.cookie = c
			}
		}
	}
	return page{status: resp.StatusCode, header: resp.Header, body: string(body)}
}

func (b *browser) get(path string) page {
	b.t.Helper()
	req, err := http.NewRequest("GET", b.base+path, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	return b.do(req)
}

// post sends a form from the console's own origin, as a browser does.
func (b *browser) post(path string, form url.Values) page {
	b.t.Helper()
	return b.postFrom(b.base, path, form)
}

// postFrom sends a form whose Origin header is origin ("" for none).
func (b *browser) postFrom(origin, path string, form url.Values) page {
	b.t.Helper()
	req, err := http.NewRequest("POST", b.base+path, strings.NewReader(form.Encode()))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	return b.do(req)
}

func (b *browser) signIn(token string) page {
	b.t.Helper()
	return b.post("/console/signin", url.Values{"token": {token}})
}

// csrfField is the csrf value of the page's forms.
var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (b *browser) csrf() string {
	b.t.Helper()
	m := csrfField.FindStringSubmatch(b.get("/console/").body)
	if m == nil {
		b.t.Fatal("no csrf field on the overview")
	}
	return m[1]
}

// text is the unescaped text of the element with id, or "" when absent
// (up to the first closing tag of its name: the console nests no element
// in one of the same name).
func (pg page) text(id string) string {
	m := regexp.MustCompile(`<([a-z0-9]+) [^>]*id="` + regexp.QuoteMeta(id) + `"[^>]*>`).FindStringSubmatchIndex(pg.body)
	if m == nil {
		return ""
	}
	rest := pg.body[m[1]:]
	end := strings.Index(rest, "</"+pg.body[m[2]:m[3]]+">")
	if end < 0 {
		return ""
	}
	inner := regexp.MustCompile(`<[^>]*>`).ReplaceAllString(rest[:end], "")
	return strings.TrimSpace(html.UnescapeString(inner))
}

func (pg page) has(id string) bool { return strings.Contains(pg.body, `id="`+id+`"`) }

// consoleFixture is a platform with a registered, partly onboarded fleet
// and a browser signed in with the bootstrap admin token.
type consoleFixture struct {
	p     *Platform
	clock *testClock
	f     *fleet
	admin *httpapi.Client
	root  string // the admin token
}

func newConsoleFixture(t *testing.T) *consoleFixture {
	t.Helper()
	clock := &testClock{}
	p, err := Start(context.Background(), Config{DataDir: newDataDir(t), Listen: "127.0.0.1:0", ServerName: "localhost",
		CASuite: sigalg.ECDSAP256, Now: clock.now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	f := newFleet(t, sigalg.ECDSAP256, sigalg.Ed25519, sigalg.ECDSAP256)
	c := adminClient(t, p)
	f.register(t, c)
	if _, _, err := onboard(t, p, f.devices[0], f.ids[0]); err != nil {
		t.Fatal(err)
	}
	if _, _, err := onboard(t, p, f.devices[1], f.ids[1]); err != nil {
		t.Fatal(err)
	}
	return &consoleFixture{p: p, clock: clock, f: f, admin: c, root: readToken(t, p)}
}

func readToken(t *testing.T, p *Platform) string {
	t.Helper()
	raw, err := os.ReadFile(p.AdminTokenPath())
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(raw))
}

// token mints a token with scopes through the API.
func (fx *consoleFixture) token(t *testing.T, ttl string, scopes ...string) httpapi.NewTokenResponse {
	t.Helper()
	tok, err := fx.admin.CreateToken(context.Background(), httpapi.TokenRequest{Name: "console test", Scopes: scopes, TTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// signedIn is a browser signed in with token.
func (fx *consoleFixture) signedIn(t *testing.T, token string) *browser {
	t.Helper()
	b := newBrowser(t, fx.p)
	if pg := b.signIn(token); pg.status != http.StatusSeeOther || b.cookie == nil {
		t.Fatalf("sign in: %d, cookie %v: %.300s", pg.status, b.cookie, pg.body)
	}
	return b
}

// audit lists the audit events of action, through the API.
func (fx *consoleFixture) audit(t *testing.T, action string) []httpapi.AuditEvent {
	t.Helper()
	list, err := fx.admin.ListAudit(context.Background(), httpapi.AuditQuery{Action: action, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return list.Events
}

func (fx *consoleFixture) state(t *testing.T, id identity.ID) string {
	t.Helper()
	d, err := fx.admin.GetDevice(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return d.State
}

// sessionHash is what the store keeps of a browser's session cookie.
func (b *browser) sessionHash() [32]byte {
	b.t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(b.cookie.Value)
	if err != nil || len(raw) != admin.SessionSecretSize {
		b.t.Fatalf("session cookie %q is not 32 bytes of base64url", b.cookie.Value)
	}
	return sha256.Sum256(raw)
}

// lastAudit is the newest audit event of action.
func (fx *consoleFixture) lastAudit(t *testing.T, action string) httpapi.AuditEvent {
	t.Helper()
	list := fx.audit(t, action)
	if len(list) == 0 {
		t.Fatalf("no audit event %s", action)
	}
	return list[len(list)-1]
}

// securityHeaders are the headers of every console answer.
var securityHeaders = map[string]string{
	"Content-Security-Policy": console.ContentSecurityPolicy,
	"X-Frame-Options":         "DENY",
	"X-Content-Type-Options":  "nosniff",
	"Referrer-Policy":         "no-referrer",
	"Cache-Control":           "no-store",
}

func checkSecurityHeaders(t *testing.T, where string, pg page) {
	t.Helper()
	for name, want := range securityHeaders {
		if got := pg.header.Get(name); got != want {
			t.Errorf("%s: %s %q, want %q", where, name, got, want)
		}
	}
}

// pagesOf are the console's GET pages for a fleet.
func pagesOf(fx *consoleFixture) []string {
	return []string{"/console/", "/console/devices", "/console/devices/" + fx.f.ids[0].String(), "/console/batches",
		"/console/manifests", "/console/stations", "/console/products", "/console/tokens", "/console/audit", "/console/events"}
}

// TestConsoleSignIn: no session redirects to the form; a bad token is
// refused and audited; a good one gets a session cookie that scripts
// cannot read, sent only over TLS to this site, lasting 8 h or its
// token's life if shorter; a session ends when its token is revoked or
// expires, and the store forgets it.
func TestConsoleSignIn(t *testing.T) {
	t.Parallel()
	fx := newConsoleFixture(t)
	anon := newBrowser(t, fx.p)
	for _, path := range pagesOf(fx) {
		if pg := anon.get(path); pg.status != http.StatusSeeOther || pg.header.Get("Location") != "/console/signin" {
			t.Errorf("GET %s without a session: %d to %q, want 303 to /console/signin", path, pg.status, pg.header.Get("Location"))
		}
	}
	form := anon.get("/console/signin")
	if form.status != 200 || !strings.Contains(form.body, `<label for="token">API token</label>`) || !strings.Contains(form.body, `id="token"`) {
		t.Fatalf("sign-in form: %d %.300s", form.status, form.body)
	}

	for _, bad := range []string{"", "not a token", strings.Repeat("x", 5000), "hm_000000000000_" + strings.Repeat("A", 43)} {
		pg := anon.signIn(bad)
		if pg.status != http.StatusUnauthorized || pg.text("signin-error") == "" || !pg.has("token") || anon.cookie != nil {
			t.Errorf("sign in with %.20q: %d, error %q, cookie %v; want 401 with the form and no cookie", bad, pg.status, pg.text("signin-error"), anon.cookie)
		}
	}
	if e := fx.lastAudit(t, admin.ActionConsoleSignIn); e.Outcome != "denied" || e.Actor != "token:000000000000" || e.Detail != admin.ReasonUnknownToken {
		t.Errorf("refused sign-in audited as %+v", e)
	}

	b := newBrowser(t, fx.p)
	pg := b.signIn(fx.root)
	if pg.status != http.StatusSeeOther || pg.header.Get("Location") != "/console/" || b.cookie == nil {
		t.Fatalf("sign in: %d to %q, cookie %v", pg.status, pg.header.Get("Location"), b.cookie)
	}
	c := b.cookie
	if c.Name != "__Host-hallmark-console" || !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteStrictMode || c.Path != "/" ||
		c.MaxAge > 28800 || c.MaxAge < 28700 || c.Domain != "" {
		t.Errorf("session cookie %+v: want __Host-, HttpOnly, Secure, SameSite=Strict, Path=/, Max-Age 28800, no Domain", c)
	}
	if strings.Contains(pg.header.Get("Set-Cookie"), fx.root) {
		t.Error("the cookie carries the API token")
	}
	if e := fx.lastAudit(t, admin.ActionConsoleSignIn); e.Outcome != "ok" || !strings.HasPrefix(e.Actor, "token:") {
		t.Errorf("sign-in audited as %+v", e)
	}
	if ov := b.get("/console/"); ov.status != 200 || !strings.Contains(ov.body, "<h1>Fleet overview</h1>") {
		t.Fatalf("overview after sign-in: %d", ov.status)
	}

	// A short-lived token: the session ends with it.
	short := fx.token(t, "1h", "devices:read")
	sb := fx.signedIn(t, short.Secret)
	if sb.cookie.MaxAge > 3600 || sb.cookie.MaxAge < 3500 {
		t.Errorf("session of a token expiring in 1 h: Max-Age %d", sb.cookie.MaxAge)
	}
	hash := sb.sessionHash()
	fx.clock.advance(61 * time.Minute)
	if pg := sb.get("/console/devices"); pg.status != http.StatusSeeOther {
		t.Errorf("a session past its token's expiry: %d", pg.status)
	}
	if _, err := fx.p.Store.GetConsoleSession(context.Background(), hash); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the expired token's session is still kept: %v", err)
	}
	if pg := newBrowser(t, fx.p).signIn(short.Secret); pg.status != http.StatusUnauthorized {
		t.Errorf("sign in with an expired token: %d", pg.status)
	}
	if e := fx.lastAudit(t, admin.ActionConsoleSignIn); e.Outcome != "denied" || e.Detail != admin.ReasonTokenExpired {
		t.Errorf("sign-in with an expired token audited as %+v", e)
	}

	// A revoked token: its live session ends at the next request.
	victim := fx.token(t, "24h", "devices:read")
	vb := fx.signedIn(t, victim.Secret)
	hash = vb.sessionHash()
	if _, err := fx.admin.RevokeToken(context.Background(), victim.Token.ID); err != nil {
		t.Fatal(err)
	}
	if pg := vb.get("/console/devices"); pg.status != http.StatusSeeOther || pg.header.Get("Location") != "/console/signin" {
		t.Errorf("a session whose token was revoked: %d to %q", pg.status, pg.header.Get("Location"))
	}
	if _, err := fx.p.Store.GetConsoleSession(context.Background(), hash); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the revoked token's session is still kept: %v", err)
	}
	if pg := newBrowser(t, fx.p).signIn(victim.Secret); pg.status != http.StatusUnauthorized {
		t.Errorf("sign in with a revoked token: %d", pg.status)
	}
	if e := fx.lastAudit(t, admin.ActionConsoleSignIn); e.Detail != admin.ReasonTokenRevoked {
		t.Errorf("sign-in with a revoked token audited as %+v", e)
	}
	// A cookie that is no session at all.
	forged := newBrowser(t, fx.p)
	forged.cookie = &http.Cookie{Name: console.CookieName, Value: base64.RawURLEncoding.EncodeToString(make([]byte, 32))}
	if pg := forged.get("/console/"); pg.status != http.StatusSeeOther {
		t.Errorf("a made-up session cookie: %d", pg.status)
	}
}

// TestConsoleSignOut: signing out deletes the session from the store, so
// the old cookie, kept, opens nothing.
func TestConsoleSignOut(t *testing.T) {
	t.Parallel()
	fx := newConsoleFixture(t)
	b := fx.signedIn(t, fx.root)
	old, hash, csrf := *b.cookie, b.sessionHash(), b.csrf()
	if pg := b.post("/console/signout", url.Values{"csrf": {"wrong"}}); pg.status != http.StatusForbidden {
		t.Errorf("sign-out with a wrong csrf value: %d", pg.status)
	}
	pg := b.post("/console/signout", url.Values{"csrf": {csrf}})
	if pg.status != http.StatusSeeOther || pg.header.Get("Location") != "/console/signin" || b.cookie != nil {
		t.Fatalf("sign out: %d to %q, cookie left %v", pg.status, pg.header.Get("Location"), b.cookie)
	}
	if _, err := fx.p.Store.GetConsoleSession(context.Background(), hash); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the session is still in the store after sign-out: %v", err)
	}
	if e := fx.lastAudit(t, admin.ActionConsoleSignOut); e.Outcome != "ok" {
		t.Errorf("sign-out audited as %+v", e)
	}
	b.cookie = &old
	if pg := b.get("/console/devices"); pg.status != http.StatusSeeOther {
		t.Errorf("the signed-out cookie opens a page: %d", pg.status)
	}
}

// TestConsoleCSRF: a transition posted without the session's csrf value,
// with a wrong one, from another origin, or from another site as the
// browser says, is refused and changes nothing; the same post done right
// acts.
func TestConsoleCSRF(t *testing.T) {
	t.Parallel()
	fx := newConsoleFixture(t)
	b := fx.signedIn(t, fx.root)
	id := fx.f.ids[0].String()
	target := "/console/devices/" + id + "/suspend"
	csrf := b.csrf()
	good := url.Values{"csrf": {csrf}, "confirm": {id}, "reason": {"test"}}
	for _, tc := range []struct {
		name   string
		origin string
		form   url.Values
		header map[string]string
	}{
		{"no csrf", b.base, url.Values{"confirm": {id}, "reason": {"x"}}, nil},
		{"wrong csrf", b.base, url.Values{"csrf": {"A" + csrf[1:]}, "confirm": {id}, "reason": {"x"}}, nil},
		{"csrf twice", b.base, url.Values{"csrf": {csrf, csrf}, "confirm": {id}, "reason": {"x"}}, nil},
		{"foreign origin", "https://evil.example", good, nil},
		{"null origin", "null", good, nil},
		{"cross-site fetch", "", good, map[string]string{"Sec-Fetch-Site": "cross-site"}},
	} {
		req, _ := http.NewRequest("POST", b.base+target, strings.NewReader(tc.form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if tc.origin != "" {
			req.Header.Set("Origin", tc.origin)
		}
		for k, v := range tc.header {
			req.Header.Set(k, v)
		}
		pg := b.do(req)
		if pg.status != http.StatusForbidden && !(tc.name == "csrf twice" && pg.status == http.StatusBadRequest) {
			t.Errorf("%s: %d, want 403", tc.name, pg.status)
		}
		if pg.text("error") == "" {
			t.Errorf("%s: no #error on the refusal", tc.name)
		}
		checkSecurityHeaders(t, tc.name, pg)
	}
	if got := fx.state(t, fx.f.ids[0]); got != "onboarded" {
		t.Fatalf("after the forged posts the device is %s", got)
	}
	if pg := b.post(target, good); pg.status != http.StatusSeeOther {
		t.Fatalf("the genuine post: %d %.300s", pg.status, pg.body)
	}
	if got := fx.state(t, fx.f.ids[0]); got != "suspended" {
		t.Errorf("after the genuine post the device is %s", got)
	}
	// A sign-in from another site is refused too (login CSRF).
	if pg := newBrowser(t, fx.p).postFrom("https://evil.example", "/console/signin", url.Values{"token": {fx.root}}); pg.status != http.StatusForbidden {
		t.Errorf("a cross-site sign-in: %d", pg.status)
	}
}

// TestConsoleReadOnly: a devices:read token sees no action form, and its
// post, with its own session's csrf value, is refused 403, audited as
// denied, and changes nothing. Pages that need other scopes refuse it.
func TestConsoleReadOnly(t *testing.T) {
	t.Parallel()
	fx := newConsoleFixture(t)
	viewer := fx.token(t, "1h", "devices:read")
	b := fx.signedIn(t, viewer.Secret)
	id := fx.f.ids[0].String()
	pg := b.get("/console/devices/" + id)
	if pg.status != 200 || strings.Contains(pg.body, `id="action-`) {
		t.Fatalf("device page for devices:read: %d, action forms: %v", pg.status, strings.Contains(pg.body, `id="action-`))
	}
	if pg.text("device-state") != "onboarded" || pg.text("device-identity") != id {
		t.Errorf("device page: state %q identity %q", pg.text("device-state"), pg.text("device-identity"))
	}
	csrf := csrfField.FindStringSubmatch(pg.body)
	if csrf == nil {
		t.Fatal("no csrf field on the read-only device page")
	}
	for _, action := range []string{"suspend", "revoke", "decommission"} {
		for _, form := range []url.Values{{"csrf": {csrf[1]}, "confirm": {id}, "reason": {"attacker"}}, {"csrf": {csrf[1]}}} {
			pg := b.post("/console/devices/"+id+"/"+action, form)
			if pg.status != http.StatusForbidden || !strings.Contains(pg.text("error"), "scope") {
				t.Errorf("%s by devices:read: %d %q, want 403 naming the scope", action, pg.status, pg.text("error"))
			}
		}
	}
	if got := fx.state(t, fx.f.ids[0]); got != "onboarded" {
		t.Errorf("after the read-only posts the device is %s", got)
	}
	e := fx.lastAudit(t, admin.ActionDeviceDecommission)
	if e.Outcome != "denied" || e.Actor != "token:"+viewer.Token.ID || e.Subject != "device:"+id || !strings.Contains(e.Detail, "devices:revoke") {
		t.Errorf("refused decommission audited as %+v", e)
	}
	for path, form := range map[string]string{"/console/stations": "station-create", "/console/products": "product-create",
		"/console/tokens": "token-create", "/console/manifests": "manifest-upload", "/console/audit": "audit"} {
		if pg := b.get(path); pg.status != http.StatusForbidden || pg.has(form) || pg.text("error") == "" {
			t.Errorf("%s for devices:read: %d, form shown %v", path, pg.status, pg.has(form))
		}
	}
	if pg := b.post("/console/tokens", url.Values{"csrf": {csrf[1]}, "name": {"escalate"}, "scope": {"admin"}}); pg.status != http.StatusForbidden {
		t.Errorf("token creation by devices:read: %d", pg.status)
	}
	// What it may read, it reads.
	for _, path := range []string{"/console/", "/console/devices", "/console/batches", "/console/events"} {
		if pg := b.get(path); pg.status != 200 {
			t.Errorf("%s for devices:read: %d", path, pg.status)
		}
	}
}

// TestConsoleConfirmation: a transition's button leads to a page naming
// the action and the device, and changes nothing; its confirmation acts
// and returns to the device page; a confirmation naming another device
// acts on none.
func TestConsoleConfirmation(t *testing.T) {
	t.Parallel()
	fx := newConsoleFixture(t)
	b := fx.signedIn(t, fx.root)
	id := fx.f.ids[0].String()
	dev := b.get("/console/devices/" + id)
	for _, form := range []string{"action-suspend", "action-revoke", "action-decommission"} {
		if !dev.has(form) {
			t.Errorf("the admin's device page has no %s", form)
		}
	}
	if dev.has("action-resume") {
		t.Error("an onboarded device offers resume")
	}
	csrf := b.csrf()
	for _, step := range []struct{ action, from, to string }{{"suspend", "onboarded", "suspended"}, {"revoke", "suspended", "revoked"}} {
		reason := step.action + " <script>alert(1)</script>"
		pg := b.post("/console/devices/"+id+"/"+step.action, url.Values{"csrf": {csrf}, "reason": {reason}})
		if pg.status != 200 || !strings.Contains(pg.body, "<h1>Confirm</h1>") || pg.text("confirm-identity") != id ||
			!strings.Contains(pg.body, `id="confirm-action"`) || !strings.Contains(pg.body, step.action) {
			t.Fatalf("%s: the confirmation page: %d %.400s", step.action, pg.status, pg.body)
		}
		if got := fx.state(t, fx.f.ids[0]); got != step.from {
			t.Fatalf("%s: before the confirmation the device is %s", step.action, got)
		}
		if wrong := b.post("/console/devices/"+id+"/"+step.action, url.Values{"csrf": {csrf}, "confirm": {fx.f.ids[1].String()}}); wrong.status != http.StatusBadRequest {
			t.Errorf("%s: a confirmation naming another device: %d", step.action, wrong.status)
		}
		if got := fx.state(t, fx.f.ids[0]); got != step.from {
			t.Fatalf("%s: after a mismatched confirmation the device is %s", step.action, got)
		}
		done := b.post("/console/devices/"+id+"/"+step.action, url.Values{"csrf": {csrf}, "reason": {reason}, "confirm": {id}})
		if done.status != http.StatusSeeOther || done.header.Get("Location") != "/console/devices/"+id {
			t.Fatalf("%s confirmed: %d to %q %.300s", step.action, done.status, done.header.Get("Location"), done.body)
		}
		after := b.get("/console/devices/" + id)
		if after.text("device-state") != step.to || fx.state(t, fx.f.ids[0]) != step.to {
			t.Errorf("%s: the page says %q, the registry %q; want %s", step.action, after.text("device-state"), fx.state(t, fx.f.ids[0]), step.to)
		}
		// The reason is in the device's audit trail as text.
		if strings.Contains(after.body, "<script>alert(1)</script>") || !strings.Contains(after.body, "&lt;script&gt;alert(1)&lt;/script&gt;") {
			t.Errorf("%s: the reason is not shown escaped in the audit trail", step.action)
		}
	}
	// A revoked device offers nothing but decommission.
	if pg := b.get("/console/devices/" + id); pg.has("action-suspend") || pg.has("action-revoke") {
		t.Error("a revoked device offers suspend or revoke")
	}
	// An action without its state (resume of a revoked device) is refused.
	if pg := b.post("/console/devices/"+id+"/resume", url.Values{"csrf": {csrf}, "confirm": {id}}); pg.status != http.StatusConflict || pg.text("error") == "" {
		t.Errorf("resume a revoked device: %d %q", pg.status, pg.text("error"))
	}
	if pg := b.post("/console/devices/"+id+"/explode", url.Values{"csrf": {csrf}, "confirm": {id}}); pg.status != http.StatusNotFound {
		t.Errorf("an unknown action: %d", pg.status)
	}
}

// TestConsoleHeadersAndEscaping: every page, asset and refusal carries
// the security headers; names with markup are shown as text everywhere.
func TestConsoleHeadersAndEscaping(t *testing.T) {
	t.Parallel()
	fx := newConsoleFixture(t)
	const hostile = `<script>alert(1)</script>`
	ctx := context.Background()
	other := newFleetBatch(t, "batch-2", sigalg.Ed25519)
	if _, err := fx.admin.CreateStation(ctx, httpapi.StationRequest{Name: "Line " + hostile, PublicKey: string(other.stationPEM)}); err != nil {
		t.Fatal(err)
	}
	if _, err := fx.admin.CreateProduct(ctx, httpapi.ProductRequest{ID: "evil", Name: "Evil " + hostile, CertValidity: "720h", CloudEndpoint: "mqtts://b.test:8883"}); err != nil {
		t.Fatal(err)
	}
	b := fx.signedIn(t, fx.root)
	for _, path := range append(pagesOf(fx), "/console/static/console.css", "/console/static/upload.js", "/console/static/events.js",
		"/console/nowhere", "/console/static/nothing.js", "/console/devices?state=bogus", "/console/signin") {
		pg := b.get(path)
		checkSecurityHeaders(t, path, pg)
		if strings.Contains(pg.body, hostile) {
			t.Errorf("%s: the hostile name is in the page as markup", path)
		}
		if strings.Contains(pg.body, "<script>") || strings.Contains(pg.body, " style=") || strings.Contains(pg.body, " onclick=") {
			t.Errorf("%s: inline script or style, which the CSP refuses", path)
		}
	}
	for path, want := range map[string]string{"/console/stations": "Line &lt;script&gt;alert(1)&lt;/script&gt;",
		"/console/products": "Evil &lt;script&gt;alert(1)&lt;/script&gt;", "/console/manifests": "Evil &lt;script&gt;"} {
		if pg := b.get(path); !strings.Contains(pg.body, want) {
			t.Errorf("%s does not show the name as text", path)
		}
	}
	if pg := b.get("/console/static/console.css"); pg.status != 200 || !strings.HasPrefix(pg.header.Get("Content-Type"), "text/css") {
		t.Errorf("console.css: %d %s", pg.status, pg.header.Get("Content-Type"))
	}
	// The console is not in the API's OpenAPI document.
	if doc := b.get("/openapi.json"); strings.Contains(doc.body, "/console") {
		t.Error("the OpenAPI document lists the console")
	}
}

// TestConsoleDevicesPage: the filter finds by identity prefix and
// paginates; bad filter values are a 400 naming the problem.
func TestConsoleDevicesPage(t *testing.T) {
	t.Parallel()
	fx := newConsoleFixture(t)
	b := fx.signedIn(t, fx.root)
	all := b.get("/console/devices")
	for _, id := range fx.f.ids {
		if !strings.Contains(all.body, `href="/console/devices/`+id.String()+`"`) {
			t.Errorf("the devices page lacks %s", id.Short())
		}
	}
	id := fx.f.ids[1].String()
	one := b.get("/console/devices?q=" + strings.ToUpper(id[:9]))
	if n := strings.Count(one.body, `href="/console/devices/`+id+`"`); n != 1 || strings.Count(one.body, `<a class="mono" href="/console/devices/`) != 1 {
		t.Errorf("filter by prefix: %d links to the device, %d in all", n, strings.Count(one.body, `<a class="mono" href="/console/devices/`))
	}
	if pg := b.get("/console/devices?state=onboarded"); strings.Count(pg.body, `<a class="mono" href="/console/devices/`) != 2 {
		t.Errorf("filter by state onboarded: %d devices", strings.Count(pg.body, `<a class="mono" href="/console/devices/`))
	}
	for _, q := range []string{"q=xyz", "state=bogus", "suite=rsa", "class=quantum", "cloud=active", "after=12", "sate=revoked", "state=revoked&state=onboarded"} {
		if pg := b.get("/console/devices?" + q); pg.status != http.StatusBadRequest || pg.text("error") == "" {
			t.Errorf("devices?%s: %d %q, want 400 with #error", q, pg.status, pg.text("error"))
		}
	}
	if pg := b.get("/console/devices/not-an-identity"); pg.status != http.StatusNotFound {
		t.Errorf("a malformed identity: %d", pg.status)
	}
	batches := b.get("/console/batches")
	if !batches.has("batches") || !strings.Contains(batches.body, `href="/console/devices?batch=batch-1"`) {
		t.Errorf("batches page: %.300s", batches.body)
	}
}

// TestConsoleManifestUpload: an upload imports a batch and says so; a
// manifest of devices other batches registered is refused, listing them;
// a tampered one is refused naming the line; without the csrf value
// nothing is imported.
func TestConsoleManifestUpload(t *testing.T) {
	t.Parallel()
	fx := newConsoleFixture(t)
	ctx := context.Background()
	b := fx.signedIn(t, fx.root)
	csrf := b.csrf()
	next := newFleetBatch(t, "batch-2", sigalg.Ed25519, sigalg.ECDSAP256)
	if _, err := fx.admin.CreateStation(ctx, httpapi.StationRequest{Name: "line 2", PublicKey: string(next.stationPEM)}); err != nil {
		t.Fatal(err)
	}
	upload := func(fields [][2]string, file []byte) page {
		t.Helper()
		var body bytes.Buffer
		w := multipart.NewWriter(&body)
		for _, f := range fields {
			w.WriteField(f[0], f[1])
		}
		if file != nil {
			fw, _ := w.CreateFormFile("manifest", "batch.manifest")
			fw.Write(file)
		}
		w.Close()
		req, _ := http.NewRequest("POST", b.base+"/console/manifests", &body)
		req.Header.Set("Content-Type", w.FormDataContentType())
		req.Header.Set("Origin", b.base)
		return b.do(req)
	}
	if pg := upload([][2]string{{"product", "meter"}}, next.manifest); pg.status != http.StatusForbidden {
		t.Errorf("an upload without csrf: %d", pg.status)
	}
	if _, err := fx.admin.GetDevice(ctx, next.ids[0]); err == nil {
		t.Fatal("the upload without csrf imported")
	}
	pg := upload([][2]string{{"csrf", csrf}, {"product", "meter"}}, next.manifest)
	if pg.status != 200 || !pg.has("import-result") || !strings.Contains(pg.text("import-result"), "batch-2") || !strings.Contains(pg.text("import-result"), "2 devices imported") {
		t.Fatalf("upload: %d %q %.300s", pg.status, pg.text("import-result"), pg.body)
	}
	if got := fx.state(t, next.ids[1]); got != "registered" {
		t.Errorf("uploaded device is %s", got)
	}
	// The first fleet's devices again, under another batch name and the
	// same station: refused, each device named.
	dup := fx.duplicateManifest(t, "batch-3")
	pg = upload([][2]string{{"csrf", csrf}, {"product", "meter"}}, dup)
	if pg.status != http.StatusConflict || !pg.has("import-errors") {
		t.Fatalf("duplicate upload: %d %.300s", pg.status, pg.body)
	}
	for _, id := range fx.f.ids {
		if !strings.Contains(pg.body, "Device "+id.String()+" is registered by another batch") {
			t.Errorf("the refusal does not name %s", id.Short())
		}
	}
	// A tampered manifest: its line named, nothing imported.
	lines := bytes.Split(next.manifest, []byte("\n"))
	lines[1] = []byte(`{"identity":"zz"}`)
	pg = upload([][2]string{{"csrf", csrf}, {"product", "meter"}}, bytes.Join(lines, []byte("\n")))
	if pg.status != http.StatusBadRequest || !strings.Contains(pg.text("import-errors"), "line 2") {
		t.Errorf("tampered upload: %d %q", pg.status, pg.text("import-errors"))
	}
	// The file before the fields, no file, an unknown product.
	for name, tc := range map[string]struct {
		fields [][2]string
		file   []byte
		status int
	}{
		"no file":         {[][2]string{{"csrf", csrf}, {"product", "meter"}}, nil, http.StatusBadRequest},
		"unknown product": {[][2]string{{"csrf", csrf}, {"product", "nope"}}, next.manifest, http.StatusNotFound},
	} {
		if pg := upload(tc.fields, tc.file); pg.status != tc.status || !pg.has("import-errors") {
			t.Errorf("%s: %d, want %d with #import-errors", name, pg.status, tc.status)
		}
	}
	if e := fx.lastAudit(t, admin.ActionManifestImport); e.Outcome != "error" {
		t.Errorf("the refused import audited as %+v", e)
	}
}

// TestConsoleEventFeed: the live view's feed pages the event log as
// JSON after a seq, to this console's pages only.
func TestConsoleEventFeed(t *testing.T) {
	t.Parallel()
	fx := newConsoleFixture(t)
	b := fx.signedIn(t, fx.root)
	events := b.get("/console/events")
	if events.status != 200 || strings.Count(events.body, `<tr data-seq="`) != 2 || !events.has("live-status") {
		t.Fatalf("events page: %d %.400s", events.status, events.body)
	}
	feed := func(query string, header map[string]string) (int, console.Feed) {
		t.Helper()
		req, _ := http.NewRequest("GET", b.base+"/console/events/feed"+query, nil)
		for k, v := range header {
			req.Header.Set(k, v)
		}
		pg := b.do(req)
		var f console.Feed
		if pg.status == 200 {
			if pg.header.Get("Content-Type") != "application/json" {
				t.Errorf("feed content type %q", pg.header.Get("Content-Type"))
			}
			if err := json.Unmarshal([]byte(pg.body), &f); err != nil {
				t.Fatalf("feed: %v: %s", err, pg.body)
			}
		}
		checkSecurityHeaders(t, "feed", pg)
		return pg.status, f
	}
	status, first := feed("?after=0", map[string]string{"Sec-Fetch-Site": "same-origin"})
	if status != 200 || len(first.Events) != 2 || first.Events[0].Kind != "device.onboarded" || first.Next != first.Events[1].Seq ||
		first.Events[0].Seq >= first.Events[1].Seq {
		t.Fatalf("feed after 0: %d %+v", status, first)
	}
	status, rest := feed(fmt.Sprintf("?after=%d", first.Events[0].Seq), nil)
	if status != 200 || len(rest.Events) != 1 || rest.Events[0].Seq != first.Events[1].Seq {
		t.Errorf("feed after the first event: %+v", rest)
	}
	status, none := feed(fmt.Sprintf("?after=%d", first.Next), nil)
	if status != 200 || len(none.Events) != 0 || none.Next != first.Next {
		t.Errorf("feed at the end: %+v, want no events and next %d", none, first.Next)
	}
	// A transition appears in the feed after the cursor.
	if _, err := fx.admin.TransitionDevice(context.Background(), fx.f.ids[0], "suspend", "feed test"); err != nil {
		t.Fatal(err)
	}
	if _, more := feed(fmt.Sprintf("?after=%d", first.Next), nil); len(more.Events) != 1 || more.Events[0].Kind != "device.suspended" ||
		more.Events[0].Identity != fx.f.ids[0].String() || more.Events[0].Detail != "feed test" {
		t.Errorf("feed after a suspension: %+v", more)
	}
	for name, tc := range map[string]struct {
		query  string
		header map[string]string
		want   int
	}{
		"cross-site":     {"?after=0", map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
		"foreign origin": {"?after=0", map[string]string{"Origin": "https://evil.example"}, http.StatusForbidden},
		"bad after":      {"?after=-1", nil, http.StatusBadRequest},
		"unknown param":  {"?limit=5", nil, http.StatusBadRequest},
	} {
		if status, _ := feed(tc.query, tc.header); status != tc.want {
			t.Errorf("feed %s: %d, want %d", name, status, tc.want)
		}
	}
	b.cookie = nil
	if status, _ := feed("?after=0", nil); status != http.StatusUnauthorized {
		t.Errorf("feed without a session: %d", status)
	}
}

// TestConsoleOverviewCache: the overview's summary is reused for its
// TTL; the first view after it still gets the summary at once (no view
// waits for the aggregates) and starts a refresh that the views after it
// show.
func TestConsoleOverviewCache(t *testing.T) {
	t.Parallel()
	fx := newConsoleFixture(t)
	b := fx.signedIn(t, fx.root)
	onboarded := func() string {
		t.Helper()
		pg := b.get("/console/")
		m := regexp.MustCompile(`state=onboarded">onboarded</a></th><td class="num">(\d+)<`).FindStringSubmatch(pg.body)
		if pg.status != 200 || m == nil || !strings.Contains(pg.text("summary-at"), "as of") {
			t.Fatalf("overview: %d %.300s", pg.status, pg.body)
		}
		return m[1]
	}
	if got := onboarded(); got != "2" {
		t.Fatalf("overview: %s onboarded, want 2", got)
	}
	if _, _, err := onboard(t, fx.p, fx.f.devices[2], fx.f.ids[2]); err != nil {
		t.Fatal(err)
	}
	if got := onboarded(); got != "2" {
		t.Errorf("within the TTL the overview changed to %s", got)
	}
	fx.clock.advance(admin.DefaultSummaryTTL + time.Second)
	if got := onboarded(); got != "2" {
		t.Errorf("the first view after the TTL waited for the refresh: %s onboarded", got)
	}
	deadline := time.Now().Add(20 * time.Second)
	for onboarded() != "3" {
		if time.Now().After(deadline) {
			t.Fatal("20 s after the TTL the overview still says 2 onboarded, want 3")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// duplicateManifest is a manifest of the fixture's devices, enrolled
// again, under another batch name and signed by a new station it
// registers: the duplicate devices of an import.
func (fx *consoleFixture) duplicateManifest(t *testing.T, batch string) []byte {
	t.Helper()
	ed, _ := sigalg.Lookup("ed25519")
	key, _ := ed.GenerateKey(rand.Reader)
	pemKey, _ := sigalg.EncodePublicKeyPEM(key.Public())
	if _, err := fx.admin.CreateStation(context.Background(), httpapi.StationRequest{Name: "line 3", PublicKey: string(pemKey)}); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w, err := manifest.NewWriter(&buf, manifest.Header{Batch: batch}, key)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range fx.f.devices {
		nonce := make([]byte, 32)
		rand.Read(nonce)
		enr, err := d.Enrol(nonce)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Add(context.Background(), manifest.Record{Identity: enr.Identity, Algorithm: d.Algorithm(), SPKI: enr.PublicKey,
			RootOfTrust: manifest.Keygen, Injection: manifest.NotInjected, Time: time.Now(), Nonce: nonce, Proof: enr.Proof}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestConsolePagesRender(t *testing.T) {
	t.Parallel()
	fx := newConsoleFixture(t)
	b := fx.signedIn(t, fx.root)
	for _, path := range pagesOf(fx) {
		pg := b.get(path)
		if pg.status != 200 || !strings.Contains(pg.body, `<main id="main"`) || strings.Count(pg.body, "<h1>") != 1 ||
			!strings.Contains(pg.body, `href="#main"`) || !strings.Contains(pg.body, `action="/console/signout"`) {
			t.Errorf("%s: %d, or no main, one h1, skip link and sign-out form", path, pg.status)
		}
	}
}

// TestConsoleNewestFirst: the events and audit pages open on what
// happened last, and page back to older entries; only the newest events
// page is live.
func TestConsoleNewestFirst(t *testing.T) {
	t.Parallel()
	fx := newConsoleFixture(t)
	b := fx.signedIn(t, fx.root)
	if _, err := fx.admin.TransitionDevice(context.Background(), fx.f.ids[0], "suspend", "newest first"); err != nil {
		t.Fatal(err)
	}
	seqs := func(body, attr string) []int64 {
		var out []int64
		for _, m := range regexp.MustCompile(attr).FindAllStringSubmatch(body, -1) {
			n, err := strconv.ParseInt(m[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, n)
		}
		return out
	}
	events := b.get("/console/events")
	got := seqs(events.body, `<tr data-seq="(\d+)">`)
	if events.status != 200 || len(got) != 3 || !slices.IsSorted(got) || !strings.Contains(events.body, "device.suspended</td>") {
		t.Fatalf("events page: %d, seqs %v, want three ascending with the suspension", events.status, got)
	}
	if live := seqs(events.body, `data-after="(\d+)" data-live="yes"`); len(live) != 1 || live[0] != got[2] {
		t.Errorf("live view after %v, want after the newest event %d", live, got[2])
	}
	older := b.get(fmt.Sprintf("/console/events?before=%d", got[2]))
	if o := seqs(older.body, `<tr data-seq="(\d+)">`); older.status != 200 || !slices.Equal(o, got[:2]) || !strings.Contains(older.body, `data-live="no"`) {
		t.Errorf("events before %d: %d, seqs %v, want %v and not live", got[2], older.status, o, got[:2])
	}
	audit := b.get("/console/audit")
	a := seqs(audit.body, `<tr><td class="num">(\d+)</td>`)
	if audit.status != 200 || len(a) < 3 || !slices.IsSortedFunc(a, func(x, y int64) int { return cmp.Compare(y, x) }) {
		t.Fatalf("audit page: %d, seqs %v, want newest first", audit.status, a)
	}
	page := b.get(fmt.Sprintf("/console/audit?before=%d", a[1]))
	if p := seqs(page.body, `<tr><td class="num">(\d+)</td>`); page.status != 200 || len(p) == 0 || p[0] != a[2] {
		t.Errorf("audit before %d: %d, seqs %v, want from %d down", a[1], page.status, p, a[2])
	}
}

// TestConsoleSignInLockout: an attacker guessing tokens at the sign-in
// form is locked out after as many failures as the API allows, shares
// the API's lock-out (switching doors buys no guesses), and is answered
// 429 with Retry-After before any token is looked up, even a good one.
func TestConsoleSignInLockout(t *testing.T) {
	t.Parallel()
	fx := newConsoleFixture(t)
	b := newBrowser(t, fx.p)
	secret, _ := admin.NewToken("guess", []string{admin.ScopeAdmin}, time.Hour)
	for i := range httpapi.DefaultAuthFailures {
		if pg := b.signIn(secret); pg.status != http.StatusUnauthorized {
			t.Fatalf("guess %d: %d, want 401", i+1, pg.status)
		}
	}
	locked := b.signIn(fx.root)
	if locked.status != http.StatusTooManyRequests || locked.header.Get("Retry-After") == "" || !locked.has("signin-error") || b.cookie != nil {
		t.Fatalf("a good token from a locked-out address: %d, Retry-After %q, cookie %v", locked.status, locked.header.Get("Retry-After"), b.cookie)
	}
	// The same address is locked out of the API too.
	if _, err := fx.admin.ListTokens(context.Background()); err == nil || !strings.Contains(err.Error(), "rate-limited") {
		t.Errorf("the API from the locked-out address: %v, want rate-limited", err)
	}
	fx.clock.advance(httpapi.DefaultAuthLockout + time.Second)
	if pg := b.signIn(fx.root); pg.status != http.StatusSeeOther || b.cookie == nil {
		t.Errorf("after the lock-out: %d, want 303 and a session", pg.status)
	}
}
