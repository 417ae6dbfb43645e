package consolebrowser

import (
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/hallmark-iot/hallmark/internal/httpapi"
	"github.com/hallmark-iot/hallmark/internal/identity"
)

// TestConsoleInBrowser drives the console in Chromium as an operator
// does, against one platform and one browser shared by the steps, which
// run in order: each starts where the one before left the registry.
func TestConsoleInBrowser(t *testing.T) {
	requireChromium(t)
	p := startPlatform(t, buildHallmark(t))
	f := newFleet(t, t.TempDir())
	f.register(t, p)
	viewerToken := p.createToken(t, "viewer", "devices:read")
	browser := startChromium(t, p.spkiPin(t))
	admin := newTab(t, browser, p.url, false)
	c := &consoleTest{p: p, f: f, admin: admin}

	t.Run("tls-pinned", func(t *testing.T) { tlsPinned(t, newTab(t, browser, p.url, true)) })
	if !t.Run("sign-in", c.signIn) {
		t.FailNow()
	}
	t.Run("overview", c.overview)
	t.Run("find-device", c.findDevice)
	t.Run("forged-posts", c.forgedPosts)
	t.Run("suspend", func(t *testing.T) { c.transition(t, "suspend", "onboarded", "suspended", "confirm") })
	t.Run("revoke", func(t *testing.T) { c.transition(t, "revoke", "suspended", "revoked", "") })
	t.Run("upload-manifest", c.uploadManifest)
	t.Run("hostile-strings", c.hostileStrings)
	t.Run("keyboard-and-labels", c.keyboardAndLabels)
	t.Run("read-only-token", func(t *testing.T) { c.readOnly(t, newTab(t, browser, p.url, true), viewerToken) })
	t.Run("phone", c.phone)
	t.Run("sign-out", c.signOut)
}

// consoleTest is the shared state of the steps.
type consoleTest struct {
	p     *platform
	f     *fleet
	admin *tab
}

// createToken makes an API token with scopes through the admin API.
func (p *platform) createToken(t *testing.T, name string, scopes ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tok, err := p.admin.CreateToken(ctx, httpapi.TokenRequest{Name: name, Scopes: scopes, TTL: "1h"})
	if err != nil {
		t.Fatalf("create token %s: %v", name, err)
	}
	return tok.Secret
}

// device is the registry's record of id, through the admin API.
func (p *platform) device(t *testing.T, id identity.ID) httpapi.Device {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d, err := p.admin.GetDevice(ctx, id)
	if err != nil {
		t.Fatalf("get device %s: %v", id.Short(), err)
	}
	return d
}

// tlsPinned: the browser accepts the platform's certificate because its
// key is pinned, and refuses another server's certificate; it does not
// ignore certificate errors altogether.
func tlsPinned(t *testing.T, tb *tab) {
	other := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "another server") }))
	other.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes
	other.StartTLS()
	defer other.Close()
	ctx, cancel := tb.bounded()
	defer cancel()
	resp := tb.open(t, "/readyz")
	if resp.Status != 200 {
		t.Errorf("the platform's /readyz through the pinned key: %d", resp.Status)
	}
	err := chromedp.Do(ctx, chromedp.Navigate(other.URL))
	if err == nil || !strings.Contains(err.Error(), "ERR_CERT") {
		t.Errorf("Chromium loaded a server with another key (error %v); want a certificate error", err)
	}
	resp = tb.open(t, "/readyz")
	if resp.Status != 200 {
		t.Errorf("the platform's /readyz through the pinned key: %d", resp.Status)
	}
}

// signInAs signs tb in with token through the sign-in form, typing it.
func signInAs(t *testing.T, tb *tab, token string) *network.Response {
	t.Helper()
	tb.do(t, "type the token", chromedp.Clear(chromedp.ID("token")), chromedp.SendKeys(chromedp.ID("token"), token))
	return tb.navigate(t, "sign in", chromedp.Click(chromedp.Search(`//form//button[normalize-space(.)="Sign in"]`)))
}

// signIn: a page without a session redirects to the sign-in form; a
// wrong token is refused with the form again and an error; the admin
// token signs in, with a cookie scripts cannot read, only sent to this
// site over TLS.
func (c *consoleTest) signIn(t *testing.T) {
	tb := c.admin
	resp := tb.open(t, "/console/")
	if loc := tb.location(t); loc != "/console/signin" {
		t.Fatalf("GET /console/ without a session ends at %s (%d), want /console/signin", loc, resp.Status)
	}
	checkHeaders(t, "sign-in page", resp)
	tb.checkPage(t, false)
	if label := tb.text(t, `label[for="token"]`); label != "API token" {
		t.Errorf("the token input's label is %q, want \"API token\"", label)
	}

	resp = signInAs(t, tb, "hm_0000000000000000_not-a-token")
	if resp.Status != 401 || tb.count(t, "#signin-error") != 1 || tb.count(t, "#token") != 1 {
		t.Errorf("a wrong token: %d, #signin-error %d, #token %d; want 401 with the error and the form",
			resp.Status, tb.count(t, "#signin-error"), tb.count(t, "#token"))
	}

	resp = signInAs(t, tb, c.p.token)
	if loc := tb.location(t); resp.Status != 200 || loc != "/console/" {
		t.Fatalf("sign in with the admin token: %d at %s, want 200 at /console/", resp.Status, loc)
	}
	if h1 := tb.checkPage(t, true); h1 != "Fleet overview" {
		t.Errorf("after sign-in, h1 %q", h1)
	}
	cookie := c.sessionCookie(t, tb)
	if cookie == nil {
		t.Fatal("no __Host-hallmark-console cookie after sign-in")
	}
	if !cookie.HTTPOnly || !cookie.Secure || cookie.SameSite != network.CookieSameSiteStrict || cookie.Path != "/" || cookie.Session {
		t.Errorf("session cookie: HttpOnly %v, Secure %v, SameSite %q, Path %q, session-only %v; want HttpOnly, Secure, Strict, /, with Max-Age",
			cookie.HTTPOnly, cookie.Secure, cookie.SameSite, cookie.Path, cookie.Session)
	}
	if lifetime := time.Until(time.Unix(int64(cookie.Expires), 0)); lifetime <= 0 || lifetime > 8*time.Hour+time.Minute {
		t.Errorf("session cookie expires in %v, want within the default 8 h", lifetime)
	}
	if visible := eval[string](t, tb, `document.cookie`); strings.Contains(visible, "hallmark-console") {
		t.Errorf("a script reads the session cookie: %q", visible)
	}
}

// sessionCookie is the console's session cookie in tb's browser context.
func (c *consoleTest) sessionCookie(t *testing.T, tb *tab) *network.Cookie {
	t.Helper()
	ctx, cancel := tb.bounded()
	defer cancel()
	res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{tb.base + "/console/"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, ck := range res.Cookies {
		if ck.Name == "__Host-hallmark-console" {
			return ck
		}
	}
	return nil
}

// overview: the devices-by-state table gives the registry's numbers, the
// onboardings chart is a server-drawn SVG with a title, and the page says
// when it was computed.
func (c *consoleTest) overview(t *testing.T) {
	tb := c.admin
	resp := tb.open(t, "/console/")
	checkHeaders(t, "overview", resp)
	if h1 := tb.checkPage(t, true); h1 != "Fleet overview" {
		t.Errorf("overview h1 %q", h1)
	}
	want := map[string]int{"registered": firstDevices - onboardedDevices, "onboarded": onboardedDevices}
	rows := eval[[][]string](t, tb, `[...document.querySelectorAll('#devices-by-state tr')].map(tr => [...tr.cells].map(td => td.textContent.trim()))`)
	for state, n := range want {
		found := false
		for _, cells := range rows {
			found = found || slices.Contains(cells, state) && slices.Contains(cells, strconv.Itoa(n))
		}
		if !found {
			t.Errorf("#devices-by-state has no row %q with %d: %q", state, n, rows)
		}
	}
	for _, id := range []string{"devices-by-product", "devices-by-class", "devices-by-suite", "onboardings", "failures", "cloud", "expiring", "silent", "campaigns"} {
		if n := tb.count(t, "section#"+id); n != 1 {
			t.Errorf("overview: %d <section id=%s>, want 1", n, id)
		}
	}
	if n := tb.count(t, "#onboardings svg > title"); n < 1 {
		t.Errorf("overview: no SVG chart with a <title> in #onboardings")
	}
	if at := tb.text(t, "#summary-at"); !strings.Contains(at, "as of") {
		t.Errorf("#summary-at: %q", at)
	}
	tb.screenshot(t, "overview")
}

// findDevice: the devices page finds the first device by a prefix of its
// identity; its link opens the device page, which shows its state, its
// certificate and its last status report.
func (c *consoleTest) findDevice(t *testing.T) {
	tb := c.admin
	tb.open(t, "/console/devices")
	if h1 := tb.checkPage(t, true); h1 != "Devices" {
		t.Errorf("devices h1 %q", h1)
	}
	if n := tb.count(t, "table#devices tbody tr"); n != firstDevices {
		t.Errorf("table#devices has %d rows, want %d", n, firstDevices)
	}
	tb.screenshot(t, "devices")

	id := c.f.ids[0]
	prefix := id.String()[:10]
	tb.do(t, "type the prefix", chromedp.SendKeys(chromedp.CSS(`#device-filter input[name="q"]`), prefix))
	tb.navigate(t, "filter", chromedp.Submit(chromedp.CSS(`#device-filter input[name="q"]`)))
	if loc := tb.location(t); !strings.Contains(loc, "q="+prefix) {
		t.Errorf("the filter went to %s", loc)
	}
	hrefs := eval[[]string](t, tb, `[...document.querySelectorAll('table#devices tbody tr a')].map(a => a.getAttribute('href'))`)
	want := "/console/devices/" + id.String()
	if len(hrefs) != 1 || hrefs[0] != want {
		t.Fatalf("devices with prefix %s: links %q, want only %s", prefix, hrefs, want)
	}
	tb.navigate(t, "open the device", chromedp.Click(chromedp.CSS(`table#devices tbody tr a[href="`+want+`"]`)))
	c.checkDevicePage(t, tb, id, "onboarded")
	if n := tb.count(t, "#certificates tbody tr"); n != 1 {
		t.Errorf("#certificates has %d rows, want the 1 certificate of the onboarding", n)
	}
	if status := tb.text(t, "#last-status"); !strings.Contains(status, statusFirmware) || !strings.Contains(status, "ok") {
		t.Errorf("#last-status %q lacks the report's firmware %s and boot result ok", status, statusFirmware)
	}
	tb.screenshot(t, "device")
}

// checkDevicePage checks that tb shows id's device page with state.
func (c *consoleTest) checkDevicePage(t *testing.T, tb *tab, id identity.ID, state string) {
	t.Helper()
	if loc := tb.location(t); loc != "/console/devices/"+id.String() {
		t.Fatalf("at %s, want the device page of %s", loc, id.Short())
	}
	if h1 := tb.checkPage(t, true); !strings.HasPrefix(h1, "Device") {
		t.Errorf("device page h1 %q", h1)
	}
	if got := tb.text(t, "#device-identity"); got != id.String() {
		t.Errorf("#device-identity %q, want %s", got, id)
	}
	if got := tb.text(t, "#device-state"); got != state {
		t.Errorf("#device-state %q, want %q", got, state)
	}
}

// transition suspends or revokes the first device from its page: the
// action's button leads to a confirmation naming the device, whose
// button acts and returns to the device page in the new state, which
// the registry holds too. The reason carries markup, which the device's
// audit trail must show as text (hostileStrings).
func (c *consoleTest) transition(t *testing.T, action, from, to, shot string) {
	tb := c.admin
	id := c.f.ids[0]
	tb.open(t, "/console/devices/"+id.String())
	form := "#action-" + action
	if tb.count(t, form) != 1 {
		t.Fatalf("no form %s on the device page", form)
	}
	if tb.count(t, form+` [name="reason"]`) == 1 {
		tb.do(t, "type the reason", chromedp.SendKeys(chromedp.CSS(form+` [name="reason"]`), action+" in the browser test "+hostile))
	}
	tb.navigate(t, action, chromedp.Click(chromedp.CSS(form+` button`)))
	if h1 := tb.checkPage(t, true); h1 != "Confirm" {
		t.Fatalf("%s: h1 %q, want the confirmation", action, h1)
	}
	if got := tb.text(t, "#confirm-identity"); got != id.String() {
		t.Errorf("the confirmation names %q, want %s", got, id)
	}
	if page := tb.text(t, "main"); !strings.Contains(strings.ToLower(page), action) {
		t.Errorf("the confirmation does not name the action %s: %q", action, page)
	}
	if got := c.p.device(t, id).State; got != from {
		t.Errorf("the device is %s before the confirmation, want still %s", got, from)
	}
	if shot != "" {
		tb.screenshot(t, shot)
	}
	tb.navigate(t, "confirm "+action, chromedp.Click(chromedp.ID("confirm-action")))
	c.checkDevicePage(t, tb, id, to)
	if got := c.p.device(t, id).State; got != to {
		t.Errorf("the registry says %s after the console's %s", got, action)
	}
}

// forgedPosts: a signed-in operator's browser posts a suspension that
// the operator did not make, twice. First from a page of another site
// (https://127.0.0.1:PORT, the same server under another name, so
// another origin and another site) with a form carrying the session's
// real csrf value: the browser does not send the SameSite=Strict cookie
// and sends the attacker's Origin. Then from the console's own origin
// with a csrf value that is not the session's. Neither suspends.
func (c *consoleTest) forgedPosts(t *testing.T) {
	tb := c.admin
	id := c.f.ids[1]
	target := "/console/devices/" + id.String()
	tb.open(t, target)
	csrf := eval[string](t, tb, `(document.querySelector('input[name="csrf"]') || {value: ''}).value`)
	if csrf == "" {
		t.Fatal("no csrf value on the device page")
	}
	status := eval[int](t, tb, `fetch(`+js(target+"/suspend")+`, {method: 'POST', redirect: 'manual', body: new URLSearchParams({csrf: 'forged', confirm: `+js(id.String())+`, reason: 'forged'})}).then(r => r.status)`)
	if status != 403 {
		t.Errorf("a suspension with a forged csrf value: %d, want 403", status)
	}

	u, err := url.Parse(tb.base)
	if err != nil {
		t.Fatal(err)
	}
	other := "https://127.0.0.1:" + u.Port()
	tb.navigate(t, "open the other site", chromedp.Navigate(other+"/readyz"))
	resp := tb.navigate(t, "post from the other site", chromedp.Evaluate[chromedp.Void](postForm(tb.base+target+"/suspend",
		map[string]string{"csrf": csrf, "confirm": id.String(), "reason": "cross-site"})))
	if resp.Status == 200 && strings.HasPrefix(tb.location(t), target) {
		t.Errorf("a cross-site post reached the device page (%d at %s)", resp.Status, tb.location(t))
	}
	if got := c.p.device(t, id).State; got != "onboarded" {
		t.Errorf("after the forged posts the device is %s", got)
	}
}

// postForm is a script that makes a form posting fields to action and
// submits it, as an attacker's page would.
func postForm(action string, fields map[string]string) string {
	var b strings.Builder
	b.WriteString(`(() => { const f = document.createElement('form'); f.method = 'POST'; f.action = ` + js(action) + `;`)
	for k, v := range fields {
		b.WriteString(`{ const i = document.createElement('input'); i.type = 'hidden'; i.name = ` + js(k) + `; i.value = ` + js(v) + `; f.appendChild(i); }`)
	}
	b.WriteString(`document.body.appendChild(f); f.submit(); })()`)
	return b.String()
}

// uploadManifest: the upload form takes the second batch's signed
// manifest from a file input and says what it imported.
func (c *consoleTest) uploadManifest(t *testing.T) {
	tb := c.admin
	tb.open(t, "/console/manifests")
	if h1 := tb.checkPage(t, true); h1 != "Upload a manifest" {
		t.Errorf("manifests h1 %q", h1)
	}
	tb.do(t, "choose the product and the file",
		chromedp.SetValue(chromedp.CSS(`#manifest-upload select[name="product"]`), productID),
		chromedp.SetUploadFiles(chromedp.ID("manifest-file"), []string{c.f.uploadFile}))
	tb.do(t, "upload",
		chromedp.Click(chromedp.CSS(`#manifest-upload button`)),
		chromedp.WaitReady(chromedp.CSS(`#import-result, #import-errors`)))
	if n := tb.count(t, "#import-errors"); n != 0 {
		t.Fatalf("the upload was refused: %q", tb.text(t, "#import-errors"))
	}
	result := tb.text(t, "#import-result")
	if !strings.Contains(result, uploadBatch) || !strings.Contains(result, strconv.Itoa(uploadDevices)) {
		t.Errorf("#import-result %q does not name batch %s and its %d devices", result, uploadBatch, uploadDevices)
	}
	tb.checkPage(t, true)
	tb.screenshot(t, "manifest-result")
	for _, id := range c.f.uploadIDs {
		if got := c.p.device(t, id).State; got != "registered" {
			t.Errorf("uploaded device %s is %s, want registered", id.Short(), got)
		}
	}
}

// hostileStrings: the station's and the product's names and the reason
// given for the transitions carry markup; every page that shows them
// shows the text, and no element was made of it, nor did a dialog open.
func (c *consoleTest) hostileStrings(t *testing.T) {
	tb := c.admin
	for _, pg := range []struct{ path, selector, want string }{
		{"/console/devices/" + c.f.ids[0].String(), "#device-audit", hostile},
		{"/console/stations", "table#stations", stationName},
		{"/console/products", "table#products", productName},
		{"/console/audit", "table#audit", hostile},
	} {
		tb.open(t, pg.path)
		tb.checkPage(t, true)
		if got := tb.text(t, pg.selector); !strings.Contains(got, pg.want) {
			t.Errorf("%s: %s does not show %q as text: %q", pg.path, pg.selector, pg.want, got)
		}
		if n := tb.count(t, `img[src="x"], [onerror]`); n != 0 {
			t.Errorf("%s: %d elements made of the hostile markup", pg.path, n)
		}
	}
	if d := tb.dialogsOpened(); len(d) > 0 {
		t.Errorf("dialogs opened: %q", d)
	}
}

// keyboardAndLabels: on each page, the first Tab reaches the skip link,
// which leads the next Tab into the main content; every control has an
// accessible label (checkPage).
func (c *consoleTest) keyboardAndLabels(t *testing.T) {
	tb := c.admin
	for _, path := range []string{"/console/", "/console/devices", "/console/devices/" + c.f.ids[1].String(), "/console/batches",
		"/console/manifests", "/console/stations", "/console/products", "/console/tokens", "/console/audit", "/console/events"} {
		tb.open(t, path)
		tb.checkPage(t, true)
		tb.do(t, "Tab", chromedp.KeyEvent(kb.Tab))
		if skip := eval[bool](t, tb, `document.activeElement.matches('a[href="#main"]')`); !skip {
			t.Errorf("%s: the first Tab focuses %s, not the skip link", path, eval[string](t, tb, `document.activeElement.outerHTML.slice(0, 200)`))
			continue
		}
		tb.do(t, "Enter, Tab", chromedp.KeyEvent(kb.Enter), chromedp.KeyEvent(kb.Tab))
		if inMain := eval[bool](t, tb, `document.getElementById('main').contains(document.activeElement)`); !inMain {
			t.Errorf("%s: after the skip link, Tab focuses %s, outside <main>", path, eval[string](t, tb, `document.activeElement.outerHTML.slice(0, 200)`))
		}
	}
}

// readOnly: a token with devices:read only sees a device page without
// action forms. Posting anyway, with the page's own csrf value, as an
// attacker holding that token would (a fetch from the page, and a form
// it makes), is refused with 403 and changes nothing.
func (c *consoleTest) readOnly(t *testing.T, tb *tab, token string) {
	tb.open(t, "/console/signin")
	signInAs(t, tb, token)
	if loc := tb.location(t); loc != "/console/" {
		t.Fatalf("sign in with a devices:read token: at %s", loc)
	}
	id := c.f.ids[2]
	tb.open(t, "/console/devices/"+id.String())
	c.checkDevicePage(t, tb, id, "onboarded")
	if n := tb.count(t, `form[id^="action-"]`); n != 0 {
		t.Errorf("a devices:read token sees %d action forms", n)
	}
	tb.screenshot(t, "device-read-only")
	csrf := eval[string](t, tb, `(document.querySelector('input[name="csrf"]') || {value: ''}).value`)
	if csrf == "" {
		t.Fatal("no csrf value on the read-only device page (the sign-out form carries one)")
	}
	target := "/console/devices/" + id.String()
	status := eval[int](t, tb, `fetch(`+js(target+"/suspend")+`, {method: 'POST', redirect: 'manual', body: new URLSearchParams({csrf: `+js(csrf)+`, confirm: `+js(id.String())+`, reason: 'read-only attacker'})}).then(r => r.status)`)
	if status != 403 {
		t.Errorf("a devices:read session's suspend by fetch: %d, want 403", status)
	}
	resp := tb.navigate(t, "post a made-up revoke form", chromedp.Evaluate[chromedp.Void](postForm(target+"/revoke",
		map[string]string{"csrf": csrf, "confirm": id.String(), "reason": "read-only attacker"})))
	if resp.Status != 403 || tb.count(t, "#error") != 1 {
		t.Errorf("a devices:read session's revoke by form: %d, #error %d; want 403 with the error", resp.Status, tb.count(t, "#error"))
	}
	if got := c.p.device(t, id).State; got != "onboarded" {
		t.Errorf("after the read-only session's posts the device is %s", got)
	}
	for _, pg := range []struct{ path, form string }{
		{"/console/stations", "#station-create"}, {"/console/products", "#product-create"}, {"/console/tokens", "#token-create"},
	} {
		tb.open(t, pg.path)
		if n := tb.count(t, pg.form); n != 0 {
			t.Errorf("%s: a devices:read token sees %s", pg.path, pg.form)
		}
	}
}

// phone: the overview and a device page on a phone-size screen.
func (c *consoleTest) phone(t *testing.T) {
	tb := c.admin
	tb.do(t, "phone viewport", chromedp.EmulateViewport(phoneWidth, phoneHeight, chromedp.EmulateMobile))
	defer tb.do(t, "laptop viewport", chromedp.EmulateViewport(laptopWidth, laptopHeight))
	tb.open(t, "/console/devices/"+c.f.ids[1].String())
	c.checkDevicePage(t, tb, c.f.ids[1], "onboarded")
	tb.screenshot(t, "device-phone")
}

// signOut: the sign-out button ends the session: the sign-in form again,
// a page redirects there, and the old cookie, put back, opens nothing
// (the session is gone from the store, not only from the browser).
func (c *consoleTest) signOut(t *testing.T) {
	tb := c.admin
	tb.open(t, "/console/")
	old := c.sessionCookie(t, tb)
	if old == nil {
		t.Fatal("no session cookie before sign-out")
	}
	tb.navigate(t, "sign out", chromedp.Click(chromedp.Search(`//form[@action="/console/signout"]//button`)))
	if loc := tb.location(t); loc != "/console/signin" {
		t.Errorf("after sign-out at %s, want /console/signin", loc)
	}
	if c.sessionCookie(t, tb) != nil {
		t.Errorf("the session cookie is still in the browser after sign-out")
	}
	tb.open(t, "/console/devices")
	if loc := tb.location(t); loc != "/console/signin" {
		t.Errorf("a page after sign-out: at %s, want /console/signin", loc)
	}
	ctx, cancel := tb.bounded()
	defer cancel()
	u, _ := url.Parse(tb.base)
	if _, err := chromedp.Call(ctx, network.SetCookie, network.SetCookieParams{Name: old.Name, Value: old.Value, URL: tb.base + "/",
		Path: "/", Secure: ptr(true), HTTPOnly: ptr(true), SameSite: network.CookieSameSiteStrict}); err != nil {
		t.Fatalf("put the old cookie back for %s: %v", u.Host, err)
	}
	tb.open(t, "/console/devices")
	if loc := tb.location(t); loc != "/console/signin" {
		t.Errorf("the signed-out session's cookie opens %s", loc)
	}
}

func ptr[T any](v T) *T { return &v }
