package evidencecmd_test

import (
	"bytes"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/app"
	"github.com/hallmark-iot/hallmark/internal/cli/clitest"
	"github.com/hallmark-iot/hallmark/internal/httpapi"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// TestExportAndVerifyCommands runs both commands against a platform:
// export writes a pack that verify accepts; an unknown device writes no
// file; a flipped byte fails with one line naming the member.
func TestExportAndVerifyCommands(t *testing.T) {
	dir := t.TempDir()
	p, err := app.Start(t.Context(), app.Config{DataDir: filepath.Join(dir, "data"), Listen: "127.0.0.1:0", ServerName: "localhost", CASuite: sigalg.ECDSAP256})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	caFile, keyFile, pack := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "audit.pem"), filepath.Join(dir, "pack.tar")
	os.WriteFile(caFile, p.CA.RootPEM(), 0o600)
	token, _ := os.ReadFile(p.AdminTokenPath())
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(p.CA.RootPEM())
	c, err := httpapi.NewClient(p.URL(), strings.TrimSpace(string(token)), roots)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateProduct(t.Context(), httpapi.ProductRequest{ID: "meter", Name: "Meter", CertValidity: "720h", CloudEndpoint: "mqtts://b.test:8883"}); err != nil {
		t.Fatal(err)
	}
	conn := []string{"--server", p.URL(), "--ca-file", caFile, "--token-file", p.AdminTokenPath()}
	clitest.MustRun(t, nil, "audit", "key", "--out", keyFile, "--server", p.URL(), "--ca-file", caFile)

	if code, _, errOut := clitest.Run(t, nil, append([]string{"admin", "evidence", "export", "--device", strings.Repeat("ab", 32), "--out", pack}, conn...)...); code == 0 ||
		!strings.Contains(errOut, "not-found") || fileExists(pack) {
		t.Fatalf("unknown device: exit %d, %q, file left: %v", code, errOut, fileExists(pack))
	}
	clitest.MustRun(t, nil, append([]string{"admin", "evidence", "export", "--product", "meter", "--out", pack}, conn...)...)
	out := clitest.MustRun(t, nil, "evidence", "verify", pack, "--key", keyFile, "--trust", caFile)
	if !strings.HasPrefix(out, "evidence pack verified: product meter") {
		t.Fatalf("verify: %q", out)
	}
	b, _ := os.ReadFile(pack)
	b[bytes.Index(b, []byte(`"scope"`))+2] ^= 1 // inside pack.json, the first member
	os.WriteFile(pack, b, 0o600)
	code, _, errOut := clitest.Run(t, nil, "evidence", "verify", pack, "--key", keyFile)
	if code != 1 || strings.Count(strings.TrimSpace(errOut), "\n") != 0 || !strings.Contains(errOut, "member pack.json") {
		t.Fatalf("a flipped byte: exit %d, %q", code, errOut)
	}
}

func fileExists(path string) bool { _, err := os.Stat(path); return err == nil }
