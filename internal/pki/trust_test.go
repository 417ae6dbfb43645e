package pki

import (
	"crypto/tls"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestTLSRootFileServesEverySuite: a client that loads tls-root.pem of
// the CA directory with LoadTrustBundle and ClientTLSConfig completes a
// handshake with the platform's server certificate, whatever the suite.
func TestTLSRootFileServesEverySuite(t *testing.T) {
	for _, suite := range caSuites {
		t.Run(string(suite), func(t *testing.T) {
			tc := newTestCA(t, suite)
			roots, err := LoadTrustBundle(filepath.Join(tc.dir, FileTLSRoot))
			if err != nil {
				t.Fatalf("LoadTrustBundle(%s): %v", FileTLSRoot, err)
			}
			server := serverConfig(t, tc)
			client := ClientTLSConfig(roots, nil)
			client.ServerName = "platform.example"
			client.Time = func() time.Time { return testNow.Add(time.Hour) }
			if _, serverErr, clientErr := handshake(t, server, client); clientErr != nil || serverErr != nil {
				t.Fatalf("handshake: client %v, server %v", clientErr, serverErr)
			}
		})
	}
}

func serverConfig(t *testing.T, tc *testCA) *tls.Config {
	t.Helper()
	cert, err := tc.IssueServer(t.Context(), []string{"platform.example"}, []net.IP{net.IPv4(127, 0, 0, 1)}, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert},
		Time: func() time.Time { return testNow.Add(time.Hour) }}
}

// TestMLDSARootIsNotATLSTrustBundle is the newcomer's trap: root.pem of
// an ML-DSA CA would fail every handshake with "unknown authority", so the
// loader refuses it and names the file to use instead. RootPEM, which
// carries the TLS root after the ML-DSA root, still loads.
func TestMLDSARootIsNotATLSTrustBundle(t *testing.T) {
	tc := newTestCA(t, caSuites[len(caSuites)-1])
	_, err := LoadTrustBundle(filepath.Join(tc.dir, FileRoot))
	if !errors.Is(err, ErrNotTLSRoot) {
		t.Fatalf("LoadTrustBundle(root.pem of an ML-DSA CA) = %v, want ErrNotTLSRoot", err)
	}
	for _, want := range []string{TLSTrustFile, "ML-DSA", string(tc.Suite()), FileRoot} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	roots, err := ParseTrustBundle(tc.RootPEM())
	if err != nil {
		t.Fatalf("ParseTrustBundle(RootPEM): %v", err)
	}
	client := ClientTLSConfig(roots, nil)
	client.ServerName = "platform.example"
	client.Time = func() time.Time { return testNow.Add(time.Hour) }
	if _, _, clientErr := handshake(t, serverConfig(t, tc), client); clientErr != nil {
		t.Fatalf("handshake trusting RootPEM: %v", clientErr)
	}
}

func TestParseTrustBundleRefuses(t *testing.T) {
	tc := newTestCA(t, caSuites[0])
	root := pemBytes(tc.RootCertificate().Raw)
	key := []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
	broken := []byte("-----BEGIN CERTIFICATE-----\nMAMCAQA=\n-----END CERTIFICATE-----\n")
	cases := []struct {
		name, data, mention string
	}{
		{"empty", "", "no certificate"},
		{"not PEM", "hello", "no PEM block"},
		{"a key after the root", string(root) + string(key), `"PRIVATE KEY"`},
		{"a broken certificate", string(root) + string(broken), "certificate 2"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pool, err := ParseTrustBundle([]byte(c.data))
			if !errors.Is(err, ErrTrustBundle) || pool != nil {
				t.Fatalf("ParseTrustBundle = %v, %v; want ErrTrustBundle", pool, err)
			}
			if !strings.Contains(err.Error(), c.mention) {
				t.Fatalf("error %q does not mention %q", err, c.mention)
			}
		})
	}
}

func TestLoadTrustBundleNamesTheFile(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.pem")
	if _, err := LoadTrustBundle(missing); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Fatalf("LoadTrustBundle(missing) = %v", err)
	}
	big := filepath.Join(dir, "big.pem")
	if err := os.WriteFile(big, make([]byte, maxTrustBundle+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadTrustBundle(big); !errors.Is(err, ErrTrustBundle) || !strings.Contains(err.Error(), big) {
		t.Fatalf("LoadTrustBundle(big) = %v", err)
	}
}

func TestClientTLSConfig(t *testing.T) {
	roots, err := ParseTrustBundle(newTestCA(t, caSuites[0]).RootPEM())
	if err != nil {
		t.Fatal(err)
	}
	cfg := ClientTLSConfig(roots, nil)
	if cfg.MinVersion != tls.VersionTLS13 || cfg.RootCAs != roots || len(cfg.Certificates) != 0 {
		t.Fatalf("ClientTLSConfig(roots, nil) = %+v", cfg)
	}
	cert := tls.Certificate{Certificate: [][]byte{{1}}}
	if cfg := ClientTLSConfig(roots, &cert); len(cfg.Certificates) != 1 || cfg.Certificates[0].Certificate[0][0] != 1 {
		t.Fatalf("ClientTLSConfig(roots, cert) did not present cert: %+v", cfg.Certificates)
	}
}

// TestTLSRootCopy: an ECDSA CA directory made before tls-root.pem existed
// gets it on load; a tls-root.pem that is not the root is refused.
func TestTLSRootCopy(t *testing.T) {
	tc := newTestCA(t, caSuites[0])
	other := newTestCA(t, caSuites[0])
	path := filepath.Join(tc.dir, FileTLSRoot)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(t.Context(), tc.km, tc.dir, Config{Now: fixedClock}); err != nil {
		t.Fatalf("Open without %s: %v", FileTLSRoot, err)
	}
	got, err := os.ReadFile(path)
	if err != nil || string(got) != string(pemBytes(tc.RootCertificate().Raw)) {
		t.Fatalf("%s after Open = %q, %v; want the root", FileTLSRoot, got, err)
	}
	foreign, err := os.ReadFile(filepath.Join(other.dir, FileRoot))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, foreign, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(t.Context(), tc.km, tc.dir, Config{Now: fixedClock}); !errors.Is(err, ErrCAMismatch) {
		t.Fatalf("Open with a foreign %s = %v, want ErrCAMismatch", FileTLSRoot, err)
	}
}

func FuzzParseTrustBundle(f *testing.F) {
	ecdsa, mldsa := newTestCA(f, caSuites[0]), newTestCA(f, caSuites[len(caSuites)-1])
	f.Add(ecdsa.RootPEM())
	f.Add(mldsa.RootPEM())
	f.Add(pemBytes(mldsa.RootCertificate().Raw))
	f.Add([]byte("-----BEGIN X-----\nAA==\n-----END X-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		pool, err := ParseTrustBundle(data)
		if (pool == nil) == (err == nil) {
			t.Fatalf("ParseTrustBundle = %v, %v: want a pool or an error", pool, err)
		}
	})
}
