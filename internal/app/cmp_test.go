package app

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/cmp"
	"github.com/hallmark-iot/hallmark/internal/httpapi"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// cmpOpenSSL runs `openssl args...` in dir and returns its combined
// output and whether it succeeded.
func cmpOpenSSL(t *testing.T, dir string, args ...string) (string, bool) {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Fatal("openssl not found: install the Debian package openssl")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "openssl", args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err == nil
}

// TestCMPGenmOpenSSL asks a running platform for its CA certificates
// over HTTPS with OpenSSL's own CMP client (genm, id-it-caCerts).
func TestCMPGenmOpenSSL(t *testing.T) {
	t.Parallel()
	p := start(t, newDataDir(t), sigalg.ECDSAP256)
	dir := cmpDir(t, p)
	out, ok := cmpOpenSSL(t, dir, append(cmpServer(p, cmp.Path), "-cmd", "genm", "-infotype", "caCerts",
		"-unprotected_requests", "-subject", "/CN=anyone")...)
	if !ok || !strings.Contains(out, "received GENP") || !strings.Contains(out, "caCerts") {
		t.Fatalf("genm caCerts: %s", out)
	}
	// A product label's URL is the same door, answering with the CA
	// that issues the product's devices.
	if _, err := adminClient(t, p).CreateProduct(context.Background(), httpapi.ProductRequest{ID: "meter", Name: "Meter",
		CertValidity: "720h", CloudEndpoint: "mqtts://broker.test:8883"}); err != nil {
		t.Fatal(err)
	}
	out, ok = cmpOpenSSL(t, dir, append(cmpServer(p, "/.well-known/cmp/p/meter"), "-cmd", "genm", "-infotype", "caCerts",
		"-unprotected_requests", "-subject", "/CN=anyone")...)
	if !ok || !strings.Contains(out, "received GENP") {
		t.Fatalf("genm caCerts at a label: %s", out)
	}
}

// cmpDir is a directory holding ca.pem, the platform's trust bundle,
// which a CMP client trusts both TLS and the CMP responses by.
func cmpDir(t *testing.T, p *Platform) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "ca.pem"), p.CA.RootPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// cmpServer is the openssl cmp arguments of p's door at path over TLS.
func cmpServer(p *Platform, path string) []string {
	return []string{"cmp", "-server", p.URL() + path, "-tls_used", "-tls_trusted", "ca.pem", "-trusted", "ca.pem"}
}

// TestCMPRefusesBadMessages sends what is not a CMP request this door
// accepts, over HTTPS.
func TestCMPRefusesBadMessages(t *testing.T) {
	t.Parallel()
	p := start(t, newDataDir(t), sigalg.ECDSAP256)
	hc := tlsClient(p, nil)
	post := func(ct string, body []byte) (*http.Response, []byte) {
		t.Helper()
		resp, err := hc.Post(p.URL()+cmp.Path, ct, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		return resp, b.Bytes()
	}
	if resp, _ := post("application/octet-stream", []byte{0x30, 0}); resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Errorf("wrong media type: %s", resp.Status)
	}
	if resp, _ := post(cmp.ContentType, make([]byte, cmp.MaxMessage+1)); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized: %s", resp.Status)
	}
	resp, body := post(cmp.ContentType, []byte{0x30, 0x03, 0x02, 0x01, 0x02})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("malformed DER: %s", resp.Status)
	}
	m, err := cmp.Parse(body)
	if err != nil || m.Type() != cmp.TypeError {
		t.Fatalf("malformed DER answered with %v, %v", m, err)
	}
}
