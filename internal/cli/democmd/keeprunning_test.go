package democmd_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/cli"
	"github.com/hallmark-iot/hallmark/internal/httpapi"
	"github.com/hallmark-iot/hallmark/internal/pki"
)

// keepRunningHeading starts what demo --keep-running prints after its
// last step.
const keepRunningHeading = "\nThe platform keeps running until interrupted (Ctrl+C, or SIGTERM):"

// demoWait bounds the waits for the demo's output and its end: the whole
// demo takes 20 to 40 s under the race detector on two busy cores.
const demoWait = 3 * time.Minute

// runningDemo is the hallmark command line running in-process in the
// background, its standard output collected as it comes.
type runningDemo struct {
	out, errOut syncBuffer
	code        chan int
}

// startDemo runs the command line in the background. A demo the test
// left running (it failed on the way) is interrupted at the end, so that
// it removes its temporary directory.
func startDemo(t *testing.T, args ...string) *runningDemo {
	t.Helper()
	d := &runningDemo{code: make(chan int, 1)}
	ended := make(chan struct{})
	go func() {
		d.code <- cli.Main(args, bytes.NewReader(nil), &d.out, &d.errOut)
		close(ended)
	}()
	t.Cleanup(func() {
		for {
			select {
			case <-ended:
				return
			case <-time.After(100 * time.Millisecond):
			}
			if strings.Contains(d.out.String(), keepRunningHeading) {
				_ = syscall.Kill(os.Getpid(), syscall.SIGINT)
				<-ended
				return
			}
		}
	})
	return d
}

// waitFor returns standard output once it holds want; the demo's end
// before that fails the test.
func (d *runningDemo) waitFor(t *testing.T, want string) string {
	t.Helper()
	deadline := time.After(demoWait)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if out := d.out.String(); strings.Contains(out, want) {
			return out
		}
		select {
		case code := <-d.code:
			t.Fatalf("the demo ended (exit %d) before printing %q:\n%s\nstderr: %s", code, want, d.out.String(), d.errOut.String())
		case <-deadline:
			t.Fatalf("the demo has not printed %q after %v:\n%s", want, demoWait, d.out.String())
		case <-tick.C:
		}
	}
}

// checkKeptRunning checks what demo --keep-running prints after its
// steps, that the platform it names answers the admin API with the
// demo's devices and serves the console to the token it names, and that
// an interrupt ends the demo cleanly: exit 0, the platform gone, its
// temporary directory removed.
func checkKeptRunning(t *testing.T, d *runningDemo, steps string) {
	t.Helper()
	kept := regexp.MustCompile(regexp.QuoteMeta(keepRunningHeading[1:]) + `\n\n` +
		`  Web console\s+(https://localhost:\d+)/console/\n` +
		`  Sign in with\s+the API token in (/\S+/platform/admin\.token)\n` +
		`  TLS root\s+(/\S+/platform/ca/tls-root\.pem) \(the demo's own CA: a browser warns unless it trusts this file\)\n` +
		`  Admin CLI\s+hallmark admin device list --server (\S+) --ca-file (\S+) --token-file (\S+)\n$`).FindStringSubmatch(d.out.String())
	if kept == nil {
		t.Fatalf("demo --keep-running, after its steps:\n%s", d.out.String()[len(steps):])
	}
	base, tokenPath, trustPath := kept[1], kept[2], kept[3]
	if kept[4] != base || kept[5] != trustPath || kept[6] != tokenPath {
		t.Errorf("the admin CLI line names %v, want %s, %s, %s", kept[4:], base, trustPath, tokenPath)
	}
	// Said as soon as the platform serves, too.
	early := "Web console: " + base + "/console/, signed in with the API token in " + tokenPath + " (it keeps running after the demo's last step).\n"
	if !strings.Contains(steps, early) {
		t.Errorf("the demo does not say where the console is when the platform starts; want %q", early)
	}

	token, err := os.ReadFile(tokenPath)
	if err != nil {
		t.Fatal(err)
	}
	trust, err := os.ReadFile(trustPath)
	if err != nil {
		t.Fatal(err)
	}
	roots, err := pki.ParseTrustBundle(trust)
	if err != nil {
		t.Fatal(err)
	}
	checkDemoFleet(t, base, strings.TrimSpace(string(token)), roots, steps)
	checkDemoConsole(t, base, strings.TrimSpace(string(token)), roots)

	if err := syscall.Kill(os.Getpid(), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-d.code:
		if code != 0 {
			t.Errorf("demo --keep-running interrupted: exit %d, stderr %q", code, d.errOut.String())
		}
	case <-time.After(demoWait):
		t.Fatalf("demo --keep-running still running %v after SIGINT", demoWait)
	}
	if out := d.out.String(); !strings.HasSuffix(out, "\nInterrupted: the platform stops and the demo's temporary directory is removed.\n") {
		t.Errorf("demo --keep-running interrupted ends with %q", out[max(0, len(out)-200):])
	}
	demoDir := filepath.Dir(filepath.Dir(tokenPath))
	if _, err := os.Stat(demoDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the demo's directory %s after its end: %v", demoDir, err)
	}
	u, _ := url.Parse(base)
	if conn, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", u.Port())); err == nil {
		conn.Close()
		t.Errorf("the platform still accepts connections at %s after the demo ended", base)
	}
}

// checkDemoFleet lists the registry through the admin API with the
// demo's token: every device of the demo's onboarding table is there.
func checkDemoFleet(t *testing.T, base, token string, roots *x509.CertPool, steps string) {
	t.Helper()
	admin, err := httpapi.NewClient(base, token, roots)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	list, err := admin.ListDevices(ctx, httpapi.DeviceQuery{Limit: 100})
	if err != nil {
		t.Fatalf("the kept platform's admin API: %v", err)
	}
	// DEVICE CLASS ALGORITHM IDENTITY STATE CERTIFICATE TIME
	rows := regexp.MustCompile(`(?m)^\d+\s+\S+\s+\S+\s+([0-9a-f]{12})\s+\S+\s+verified\s`).FindAllStringSubmatch(steps, -1)
	if len(rows) < 4 {
		t.Fatalf("only %d rows in the demo's onboarding table", len(rows))
	}
	for _, row := range rows {
		found := false
		for _, dev := range list.Devices {
			found = found || strings.HasPrefix(dev.Identity.String(), row[1])
		}
		if !found {
			t.Errorf("device %s of the onboarding table is not in the kept platform's registry (%d devices)", row[1], len(list.Devices))
		}
	}
}

// checkDemoConsole signs in to the kept platform's console as a browser
// would (docs/console.md): a page without a session redirects to the
// sign-in form; the demo's token gives a session cookie; with it, the
// overview answers.
func checkDemoConsole(t *testing.T, base, token string, roots *x509.CertPool) {
	t.Helper()
	client := &http.Client{
		Transport:     &http.Transport{TLSClientConfig: pki.ClientTLSConfig(roots, nil)},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       time.Minute,
	}
	defer client.CloseIdleConnections()
	resp, body := consoleDo(t, client, "GET", base+"/console/", nil, "")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/signin" {
		t.Errorf("GET /console/ without a session: %s, Location %q, want 303 to /console/signin:\n%.2000s", resp.Status, resp.Header.Get("Location"), body)
		return
	}
	resp, body = consoleDo(t, client, "POST", base+"/console/signin", strings.NewReader(url.Values{"token": {token}}.Encode()), base)
	var session *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "__Host-hallmark-console" {
			session = c
		}
	}
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/" || session == nil {
		t.Errorf("sign in with the demo's token: %s, Location %q, cookies %v:\n%.2000s", resp.Status, resp.Header.Get("Location"), resp.Cookies(), body)
		return
	}
	req, err := http.NewRequest("GET", base+"/console/", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.AddCookie(&http.Cookie{Name: session.Name, Value: session.Value})
	if resp, err = client.Do(req); err != nil {
		t.Errorf("the console's overview: %v", err)
		return
	}
	page, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), "Fleet overview") {
		t.Errorf("the console's overview with the demo's session: %s:\n%.2000s", resp.Status, page)
	}
}

// consoleDo sends one request, a form when body is given, with origin as
// its Origin header when not empty, and returns the answer and its body.
func consoleDo(t *testing.T, client *http.Client, method, target string, body io.Reader, origin string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, target, body)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp, string(data)
}

// syncBuffer is a buffer that the demo writes while the test reads.
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
