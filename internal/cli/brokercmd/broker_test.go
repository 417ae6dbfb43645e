package brokercmd_test

import (
	"context"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/cli/clitest"
	"github.com/hallmark-iot/hallmark/internal/keys/softkms"
	"github.com/hallmark-iot/hallmark/internal/pki"
)

func TestCRLSyncOnce(t *testing.T) {
	km, err := softkms.Open(t.Context(), filepath.Join(t.TempDir(), "keys"), []byte("test passphrase"), softkms.InsecureKDFIterations(1000))
	if err != nil {
		t.Fatal(err)
	}
	defer km.Close()
	ca, err := pki.Open(t.Context(), km, t.TempDir(), pki.Config{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Add(-time.Second)
	der, err := ca.CreateCRL(context.Background(), pki.CRLRequest{Number: big.NewInt(3), ThisUpdate: now, NextUpdate: now.Add(time.Hour),
		Entries: []pki.CRLEntry{{Serial: [pki.SerialSize]byte{7}, RevokedAt: now, Reason: pki.ReasonKeyCompromise}}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(der) }))
	defer srv.Close()
	dir := t.TempDir()
	caFile, crlFile := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "crl.pem")
	if err := os.WriteFile(caFile, ca.DeviceTrustPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"broker", "crl-sync", "--once", "--crl-url", srv.URL + "/crl/x.crl", "--ca-file", caFile, "--crl-file", crlFile}
	code, out, errOut := clitest.Run(t, nil, args...)
	if code != 0 || !strings.Contains(out, "CRL installed: number 3, 1 entries") {
		t.Fatalf("crl-sync --once: exit %d, %q, %q", code, out, errOut)
	}
	data, _ := os.ReadFile(crlFile)
	if block, _ := pem.Decode(data); block == nil || block.Type != "X509 CRL" || string(block.Bytes) != string(der) {
		t.Fatal("the CRL file does not hold the served CRL as PEM")
	}
	if code, out, _ = clitest.Run(t, nil, args...); code != 0 || !strings.Contains(out, "CRL unchanged: number 3") {
		t.Fatalf("second run: exit %d, %q", code, out)
	}

	for name, bad := range map[string][]string{
		"no CRL file":    {"broker", "crl-sync", "--once", "--crl-url", srv.URL, "--ca-file", caFile},
		"not a CA file":  {"broker", "crl-sync", "--once", "--crl-url", srv.URL, "--ca-file", crlFile, "--crl-file", crlFile},
		"short interval": {"broker", "crl-sync", "--crl-url", srv.URL, "--ca-file", caFile, "--crl-file", crlFile, "--interval", "1ms"},
		"https-less ftp": {"broker", "crl-sync", "--once", "--crl-url", "ftp://x/y.crl", "--ca-file", caFile, "--crl-file", crlFile},
	} {
		if code, _, errOut := clitest.Run(t, nil, bad...); code != 2 || errOut == "" {
			t.Errorf("%s: exit %d, %q; want a usage error", name, code, errOut)
		}
	}
	// A CRL from the wrong place: nothing written, exit 1.
	other := filepath.Join(dir, "other.pem")
	notCRL := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("<html>")) }))
	defer notCRL.Close()
	code, _, errOut = clitest.Run(t, nil, "broker", "crl-sync", "--once", "--crl-url", notCRL.URL, "--ca-file", caFile, "--crl-file", other)
	if _, statErr := os.Stat(other); code != 1 || !strings.Contains(errOut, "malformed CRL") || statErr == nil {
		t.Fatalf("served garbage: exit %d, %q, file written: %v", code, errOut, statErr == nil)
	}
}
