package consolebrowser

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/draw"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// chromiumPath is Debian's chromium package's browser.
const chromiumPath = "/usr/bin/chromium"

// screenshotsVariable names the directory the tests save their
// screenshots in (docs/console.md shows them); unset, they save none.
const screenshotsVariable = "HALLMARK_SCREENSHOTS"

// actionWait bounds each step in the browser: a page of the console
// answers in milliseconds; the bound only turns a hang into a failure.
const actionWait = 30 * time.Second

// Laptop and phone viewports of the screenshots.
const (
	laptopWidth, laptopHeight = 1280, 800
	phoneWidth, phoneHeight   = 390, 844
)

// requireChromium fails the test, naming the package, without Chromium.
func requireChromium(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("the console's browser tests need Chromium at %s: install the Debian package chromium (apt-get install chromium)", chromiumPath)
	}
}

// startChromium starts one headless Chromium for the whole test, with a
// profile of its own, nothing that reaches the network by itself, and
// TLS errors ignored only for a certificate with the platform's key
// (pin, spkiPin): Chromium does not know the platform's private CA, and
// pinning its key trusts that server and no other, where
// --ignore-certificate-errors would accept any certificate at all.
// Chromium runs as root here, which its sandbox refuses: --no-sandbox.
func startChromium(t *testing.T, pin string) context.Context {
	t.Helper()
	requireChromium(t)
	output := &syncBuffer{}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("password-store", "basic"),
		chromedp.Flag("ignore-certificate-errors-spki-list", pin),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(laptopWidth, laptopHeight),
		chromedp.CombinedOutput(output),
	)
	browser, cancelBrowser := chromedp.NewContext(alloc)
	// Ended before the profile directory is removed (cleanups run last
	// first): Chromium writes there until it exits.
	t.Cleanup(func() { cancelBrowser(); cancelAlloc() })
	// The first Run starts the browser; no timeout on it, which would end
	// the browser with it (chromedp.Run).
	if err := chromedp.Do(browser); err != nil {
		t.Fatalf("start Chromium: %v\n%s", err, output.String())
	}
	return browser
}

// tab is one browser tab signed in (or not) as one user. Every page it
// loads records any Content-Security-Policy violation, and any dialog
// that opens is counted and dismissed, so that a script an attacker
// slipped in cannot block the test.
type tab struct {
	ctx  context.Context
	base string // https://localhost:PORT
	mu   sync.Mutex
	// dialogs are the messages of the JavaScript dialogs that opened.
	dialogs []string
}

// cspRecorder runs before any script of each page: it records what the
// page's Content-Security-Policy refused (the console has no inline
// script or style, so a report means a page broke its own policy or
// something was injected).
const cspRecorder = `window.__hallmarkCSP = [];
document.addEventListener('securitypolicyviolation', e => window.__hallmarkCSP.push(e.violatedDirective + ' ' + (e.blockedURI || 'inline')));`

// newTab opens a tab in browser; with ownCookies it is in a new browser
// context, whose cookies no other tab sees (a second user).
func newTab(t *testing.T, browser context.Context, base string, ownCookies bool) *tab {
	t.Helper()
	var opts []chromedp.ContextOption
	if ownCookies {
		opts = append(opts, chromedp.WithNewBrowserContext())
	}
	ctx, cancel := chromedp.NewContext(browser, opts...)
	t.Cleanup(cancel)
	tb := &tab{ctx: ctx, base: base}
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: cspRecorder}); err != nil {
		t.Fatalf("new tab: %v", err)
	}
	if err := chromedp.Listen(ctx, func(ev any) {
		if d, ok := ev.(*page.EventJavascriptDialogOpening); ok {
			tb.mu.Lock()
			tb.dialogs = append(tb.dialogs, string(d.Type)+": "+d.Message)
			tb.mu.Unlock()
			// Not from this goroutine, which reads the tab's messages.
			go chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
		}
	}); err != nil {
		t.Fatalf("new tab: %v", err)
	}
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(laptopWidth, laptopHeight)); err != nil {
		t.Fatalf("new tab: %v", err)
	}
	return tb
}

// bounded is the tab's context with actionWait.
func (tb *tab) bounded() (context.Context, context.CancelFunc) {
	return context.WithTimeout(tb.ctx, actionWait)
}

// do runs steps that return nothing.
func (tb *tab) do(t *testing.T, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := tb.bounded()
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v (at %s)", what, err, tb.location(t))
	}
}

// navigate runs steps that load a page (a navigation, a click on a link
// or a submit button) and returns the page's HTTP answer, after any
// redirects.
func (tb *tab) navigate(t *testing.T, what string, steps ...chromedp.Action[chromedp.Void]) *network.Response {
	t.Helper()
	ctx, cancel := tb.bounded()
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, steps...)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if resp == nil {
		t.Fatalf("%s: no HTTP answer for the page (at %s)", what, tb.location(t))
	}
	return resp
}

// open loads the console page at path (from the site's root).
func (tb *tab) open(t *testing.T, path string) *network.Response {
	t.Helper()
	return tb.navigate(t, "open "+path, chromedp.Navigate(tb.base+path))
}

// location is the tab's URL, without the scheme and host when it is on
// the platform.
func (tb *tab) location(t *testing.T) string {
	t.Helper()
	ctx, cancel := tb.bounded()
	defer cancel()
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		return fmt.Sprintf("(location: %v)", err)
	}
	return strings.TrimPrefix(loc, tb.base)
}

// eval evaluates a JavaScript expression in the page and decodes its
// value into T.
func eval[T any](t *testing.T, tb *tab, expression string) T {
	t.Helper()
	ctx, cancel := tb.bounded()
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expression, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("evaluate %.200s: %v (at %s)", expression, err, tb.location(t))
	}
	return v
}

// js quotes s as a JavaScript string literal.
func js(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// text is the trimmed text content of the first element matching the CSS
// selector, or fails the test naming the page when there is none.
func (tb *tab) text(t *testing.T, selector string) string {
	t.Helper()
	v := eval[*string](t, tb, `(() => { const e = document.querySelector(`+js(selector)+`); return e ? e.textContent.trim() : null; })()`)
	if v == nil {
		t.Fatalf("no %s on %s", selector, tb.location(t))
	}
	return *v
}

// count is the number of elements matching the CSS selector.
func (tb *tab) count(t *testing.T, selector string) int {
	t.Helper()
	return eval[int](t, tb, `document.querySelectorAll(`+js(selector)+`).length`)
}

// dialogsOpened are the dialogs that opened so far.
func (tb *tab) dialogsOpened() []string {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return append([]string(nil), tb.dialogs...)
}

// checkPage checks what every console page promises (the page contract):
// one <main id="main">, one <h1> (returned), a skip link to it, the nav
// and the sign-out form when signed in, an accessible label on every
// input, nothing refused by the page's own Content-Security-Policy and
// no dialog.
func (tb *tab) checkPage(t *testing.T, signedIn bool) string {
	t.Helper()
	where := tb.location(t)
	if n := tb.count(t, "main#main"); n != 1 {
		t.Errorf("%s: %d <main id=main>, want 1", where, n)
	}
	if n := tb.count(t, "h1"); n != 1 {
		t.Errorf("%s: %d <h1>, want 1", where, n)
	}
	if n := tb.count(t, `a[href="#main"]`); n < 1 {
		t.Errorf("%s: no skip link to #main", where)
	}
	if signedIn {
		links := eval[[]string](t, tb, `[...document.querySelectorAll('nav a')].map(a => a.textContent.trim())`)
		for _, want := range []string{"Overview", "Devices", "Batches", "Manifests", "Stations", "Products", "Tokens", "Audit", "Events"} {
			if !slices.Contains(links, want) {
				t.Errorf("%s: the nav lacks %q (it has %q)", where, want, links)
			}
		}
		signOut := eval[bool](t, tb, `[...document.querySelectorAll('form[action="/console/signout"]')].some(f =>
			f.method.toLowerCase() === 'post' && [...f.querySelectorAll('button')].some(b => b.textContent.trim() === 'Sign out'))`)
		if !signOut {
			t.Errorf("%s: no sign-out form (POST /console/signout, button \"Sign out\")", where)
		}
	}
	if unlabelled := eval[[]string](t, tb, unlabelledInputs); len(unlabelled) > 0 {
		t.Errorf("%s: inputs without an accessible label: %q", where, unlabelled)
	}
	if refused := eval[[]string](t, tb, `window.__hallmarkCSP || []`); len(refused) > 0 {
		t.Errorf("%s: the page's Content-Security-Policy refused %q", where, refused)
	}
	if d := tb.dialogsOpened(); len(d) > 0 {
		t.Errorf("%s: dialogs opened: %q", where, d)
	}
	return tb.text(t, "h1")
}

// unlabelledInputs lists the form controls a screen reader could not
// name: no <label> with text (for= or around it), no aria-label, no
// aria-labelledby pointing at text. Hidden inputs and buttons are not
// controls one labels; a button needs text or aria-label.
const unlabelledInputs = `(() => {
	const named = el => (el.labels && [...el.labels].some(l => l.textContent.trim() !== '')) ||
		(el.getAttribute('aria-label') || '').trim() !== '' ||
		(el.getAttribute('aria-labelledby') || '').split(/\s+/).some(id => id && document.getElementById(id) && document.getElementById(id).textContent.trim() !== '');
	const bad = [];
	for (const el of document.querySelectorAll('input, select, textarea')) {
		if (['hidden', 'submit', 'button', 'reset', 'image'].includes(el.type)) continue;
		if (!named(el)) bad.push(el.outerHTML);
	}
	for (const el of document.querySelectorAll('button, input[type=submit]')) {
		if ((el.textContent || el.value || '').trim() === '' && (el.getAttribute('aria-label') || '').trim() === '') bad.push(el.outerHTML);
	}
	return bad;
})()`

// checkHeaders checks the console's security headers on a page's answer.
func checkHeaders(t *testing.T, where string, resp *network.Response) {
	t.Helper()
	want := map[string]string{
		"content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
		"x-frame-options":         "DENY",
		"x-content-type-options":  "nosniff",
		"referrer-policy":         "no-referrer",
		"cache-control":           "no-store",
	}
	got := map[string]string{}
	for k, v := range resp.Headers {
		got[strings.ToLower(k)] = fmt.Sprint(v)
	}
	for name, value := range want {
		if got[name] != value {
			t.Errorf("%s: %s: %q, want %q", where, name, got[name], value)
		}
	}
}

// screenshot saves the viewport as DIR/name.png when the screenshots
// variable names a directory.
func (tb *tab) screenshot(t *testing.T, name string) {
	t.Helper()
	dir := os.Getenv(screenshotsVariable)
	if dir == "" {
		return
	}
	ctx, cancel := tb.bounded()
	defer cancel()
	shot, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	small, err := posterize(shot)
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), small, 0o644); err != nil {
		t.Fatal(err)
	}
}

// posterize rounds each colour channel of a PNG to 16 levels and encodes
// it again: the thousand shades of the text's anti-aliasing become a few
// dozen, which halves the file with no difference one sees in a
// screenshot of a page (the docs' images stay small in the repository).
func posterize(data []byte) ([]byte, error) {
	src, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	img := image.NewRGBA(src.Bounds())
	draw.Draw(img, img.Bounds(), src, src.Bounds().Min, draw.Src)
	for i, v := range img.Pix {
		if i%4 != 3 { // colour, not alpha
			img.Pix[i] = uint8((int(v) + 8) / 17 * 17)
		}
	}
	var out bytes.Buffer
	err = (&png.Encoder{CompressionLevel: png.BestCompression}).Encode(&out, img)
	return out.Bytes(), err
}
