package revocation

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/pki"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

type recordedOCSP struct {
	method, path, escaped string
}

func newTestServer(t *testing.T, f *fixture, ocsp *[]recordedOCSP) *httptest.Server {
	t.Helper()
	routes := Routes{CRLs: []*Publisher{f.pub}}
	if ocsp != nil {
		routes.OCSP = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			*ocsp = append(*ocsp, recordedOCSP{r.Method, r.URL.Path, r.URL.EscapedPath()})
			w.Header().Set("Content-Type", "application/ocsp-response")
		})
	}
	h, err := NewMux(routes)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func do(t *testing.T, method, url string, header http.Header) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	// No redirects: a redirect would hide a mangled OCSP path.
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func TestServeCRL(t *testing.T) {
	f := newFixture(t, sigalg.ECDSAP256)
	srv := newTestServer(t, f, nil)
	url := srv.URL + pki.CRLPath + f.pub.Name() + ".crl"
	if resp, _ := do(t, "GET", url, nil); resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("before the first CRL: %s", resp.Status)
	}
	f.src.add(1, testNow.Add(-time.Minute), pki.ReasonKeyCompromise)
	crl, _ := f.refresh(t)

	resp, body := do(t, "GET", url, nil)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, crl.DER) {
		t.Fatalf("GET: %s, body is the CRL: %v", resp.Status, bytes.Equal(body, crl.DER))
	}
	want := map[string]string{
		"Content-Type":  ContentTypeCRL,
		"ETag":          crl.ETag,
		"Last-Modified": testNow.Format(http.TimeFormat),
		"Cache-Control": "public, max-age=60",
	}
	for k, v := range want {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("%s: %q, want %q", k, got, v)
		}
	}
	if _, err := pki.VerifyCRL(body, f.ca.IssuingCertificate()); err != nil {
		t.Errorf("served CRL: %v", err)
	}
	if resp, _ := do(t, "GET", url, http.Header{"If-None-Match": {crl.ETag}}); resp.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match: %s", resp.Status)
	}
	if resp, _ := do(t, "GET", url, http.Header{"If-Modified-Since": {testNow.Format(http.TimeFormat)}}); resp.StatusCode != http.StatusNotModified {
		t.Errorf("If-Modified-Since: %s", resp.Status)
	}
	resp, body = do(t, "HEAD", url, nil)
	if resp.StatusCode != http.StatusOK || len(body) != 0 || resp.ContentLength != int64(len(crl.DER)) {
		t.Errorf("HEAD: %s, %d body bytes, length %d", resp.Status, len(body), resp.ContentLength)
	}
	if resp, _ := do(t, "POST", url, nil); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %s", resp.Status)
	}
	for _, path := range []string{"/", "/crl/", "/crl/other.crl", pki.CRLPath + f.pub.Name() + ".pem", "/ocsp", "/ocsp/MEIw"} {
		if resp, _ := do(t, "GET", srv.URL+path, nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %s, want 404", path, resp.Status)
		}
	}
}

// TestServeCRLMaxAgeStopsAtNextUpdate: a cache is never told to keep the
// CRL past its nextUpdate.
func TestServeCRLMaxAgeStopsAtNextUpdate(t *testing.T) {
	f := newFixture(t, sigalg.Ed25519)
	srv := newTestServer(t, f, nil)
	crl, _ := f.refresh(t)
	url := srv.URL + pki.CRLPath + f.pub.Name() + ".crl"
	for at, want := range map[time.Time]string{
		crl.NextUpdate.Add(-10 * time.Second): "public, max-age=10",
		crl.NextUpdate.Add(time.Hour):         "public, max-age=0",
	} {
		f.clock.Set(at)
		if resp, _ := do(t, "GET", url, nil); resp.Header.Get("Cache-Control") != want {
			t.Errorf("at %v: Cache-Control %q, want %q", at, resp.Header.Get("Cache-Control"), want)
		}
	}
}

func TestServeCACertificate(t *testing.T) {
	f := newFixture(t, sigalg.MLDSA65)
	srv := newTestServer(t, f, nil)
	resp, body := do(t, "GET", srv.URL+pki.CAIssuersPath+f.pub.Name()+".crt", nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != ContentTypeCert || !bytes.Equal(body, f.ca.IssuingCertificate().Raw) {
		t.Fatalf("GET CA certificate: %s %q", resp.Status, resp.Header.Get("Content-Type"))
	}
}

// TestOCSPMount: the OCSP handler gets /ocsp and everything under it,
// any method, with the path as sent — no cleaning, no redirect.
func TestOCSPMount(t *testing.T) {
	f := newFixture(t, sigalg.Ed25519)
	var got []recordedOCSP
	srv := newTestServer(t, f, &got)
	const b64 = "/MEkwRzBFMEMw//+abc=="
	for _, c := range []struct{ method, path string }{
		{"POST", "/ocsp"}, {"GET", "/ocsp" + b64}, {"GET", "/ocsp/MEIw%2Bx%3D%3D"},
	} {
		resp, _ := do(t, c.method, srv.URL+c.path, nil)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/ocsp-response" {
			t.Errorf("%s %s: %s", c.method, c.path, resp.Status)
		}
	}
	if len(got) != 3 || got[0].method != "POST" || got[1].path != "/ocsp"+b64 || got[2].escaped != "/ocsp/MEIw%2Bx%3D%3D" {
		t.Errorf("OCSP handler saw %+v", got)
	}
	if resp, _ := do(t, "GET", srv.URL+"/ocspx", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("/ocspx: %s, want 404", resp.Status)
	}
}

func TestNewMuxRefusesDuplicates(t *testing.T) {
	f := newFixture(t, sigalg.Ed25519)
	if _, err := NewMux(Routes{CRLs: []*Publisher{f.pub, f.pub}}); err == nil || !strings.Contains(err.Error(), "duplicate") {
		t.Errorf("NewMux with one publisher twice: %v", err)
	}
}
