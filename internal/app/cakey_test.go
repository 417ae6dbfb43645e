package app

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/keys"
	"github.com/hallmark-iot/hallmark/internal/pki"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// TestCAKeyURIElsewhere: a platform told to keep its CA keys in a soft:
// store outside the data directory puts them there, none in DataDir/keys,
// and finds them again on the next start.
func TestCAKeyURIElsewhere(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	dataDir, keyDir := filepath.Join(base, "data"), filepath.Join(base, "hsm-stand-in")
	cfg := Config{DataDir: dataDir, Listen: "127.0.0.1:0", ServerName: "localhost",
		CAKeyURI: "soft:" + keyDir, CAPassphrase: []byte("a test passphrase")}
	p, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	root := p.CA.RootCertificate().Raw
	p.Close()
	for _, name := range []string{pki.KeyRoot, pki.KeyIssuing, pki.KeyTLSServer} {
		if _, err := os.Stat(filepath.Join(keyDir, name+".key")); err != nil {
			t.Errorf("CA key %s is not in %s: %v", name, keyDir, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dataDir, KeysDir)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s/%s exists (%v); the CA keys belong to the configured store", dataDir, KeysDir, err)
	}
	again, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("second Start: %v", err)
	}
	defer again.Close()
	if string(again.CA.RootCertificate().Raw) != string(root) {
		t.Fatal("second start made a new CA instead of opening the stored one")
	}
}

// TestCAKeyURIDefault: without a URI the CA keys stay where they always
// were, DataDir/keys.
func TestCAKeyURIDefault(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	p, err := Start(context.Background(), Config{DataDir: dataDir, Listen: "127.0.0.1:0", ServerName: "localhost"})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer p.Close()
	if p.cfg.CAKeyURI != DefaultCAKeyURI(dataDir) || !strings.HasPrefix(p.cfg.CAKeyURI, "soft:") {
		t.Fatalf("CAKeyURI = %q, want %q", p.cfg.CAKeyURI, DefaultCAKeyURI(dataDir))
	}
	if _, err := os.Stat(filepath.Join(dataDir, KeysDir, pki.KeyRoot+".key")); err != nil {
		t.Fatalf("default CA key store: %v", err)
	}
}

// TestCAKeyURIRefused: a scheme no backend serves, a malformed URI, and a
// location its backend's syntax check refuses fail before the data
// directory or any store is created.
func TestCAKeyURIRefused(t *testing.T) {
	t.Parallel()
	cases := []struct{ uri, mention string }{
		{"nope:/somewhere", `scheme "nope"`},
		{"tpm:/dev/tpmrm0", "dir"},                // no key directory
		{"pkcs11:token=ca;object=root", "object"}, // a manager URI names a token, not a key
		{"/just/a/path", "SCHEME:LOCATION"},
		{"soft:", "no location"},
	}
	for _, c := range cases {
		t.Run(c.uri, func(t *testing.T) {
			dataDir := filepath.Join(t.TempDir(), "data")
			_, err := Start(context.Background(), Config{DataDir: dataDir, Listen: "127.0.0.1:0", CAKeyURI: c.uri})
			if err == nil || !strings.Contains(err.Error(), "CA key URI") || !strings.Contains(err.Error(), c.mention) {
				t.Fatalf("Start = %v, want a CA key URI error mentioning %q", err, c.mention)
			}
			if strings.HasPrefix(c.uri, "nope:") && !errors.Is(err, keys.ErrUnsupported) {
				t.Fatalf("Start = %v, want keys.ErrUnsupported", err)
			}
			if _, err := os.Stat(dataDir); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("refused start created %s (%v)", dataDir, err)
			}
		})
	}
}

// TestCAKeyStoreRefusesShortPassphrase: a key store that will not open
// (here for a passphrase below the minimum) is an error that says why, not
// a crash in the cleanup of what was never opened.
func TestCAKeyStoreRefusesShortPassphrase(t *testing.T) {
	t.Parallel()
	dataDir := filepath.Join(t.TempDir(), "data")
	_, err := Start(context.Background(), Config{DataDir: dataDir, Listen: "127.0.0.1:0", CAPassphrase: []byte("short")})
	if err == nil || !strings.Contains(err.Error(), "CA key store") || !strings.Contains(err.Error(), "passphrase") {
		t.Fatalf("Start = %v, want the key store's refusal of the passphrase", err)
	}
}

// TestCASuites: the CA takes the suites CASuites lists, in any spelling
// Lookup accepts, and refuses the others before creating anything.
func TestCASuites(t *testing.T) {
	t.Parallel()
	if got := CASuites(); len(got) != 2 || got[0] != sigalg.ECDSAP256 || got[1] != sigalg.MLDSA65 {
		t.Fatalf("CASuites() = %v", got)
	}
	for in, want := range map[sigalg.ID]sigalg.ID{"ecdsa-p256": sigalg.ECDSAP256, "P256": sigalg.ECDSAP256, "ML-DSA-65": sigalg.MLDSA65} {
		if got, err := checkCASuite(in); err != nil || got != want {
			t.Errorf("checkCASuite(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, c := range []struct {
		suite sigalg.ID
		want  error
	}{
		{sigalg.Ed25519, ErrCASuite},
		{sigalg.MLDSA44, ErrCASuite},
		{sigalg.MLDSA87, ErrCASuite},
		{"rsa-2048", sigalg.ErrUnknownAlgorithm},
	} {
		t.Run(string(c.suite), func(t *testing.T) {
			dataDir := filepath.Join(t.TempDir(), "data")
			_, err := Start(context.Background(), Config{DataDir: dataDir, Listen: "127.0.0.1:0", CASuite: c.suite})
			if !errors.Is(err, c.want) {
				t.Fatalf("Start with CA suite %s = %v, want %v", c.suite, err, c.want)
			}
			if c.want == ErrCASuite && !strings.Contains(err.Error(), "ecdsa-p256, ml-dsa-65") {
				t.Fatalf("error %q does not list the CA suites", err)
			}
			if _, err := os.Stat(dataDir); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("refused start created %s (%v)", dataDir, err)
			}
		})
	}
}
