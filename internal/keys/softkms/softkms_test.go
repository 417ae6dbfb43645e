package softkms

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/cloudflare/circl/sign"

	"github.com/hallmark-iot/hallmark/internal/keys"
	"github.com/hallmark-iot/hallmark/internal/keys/keystest"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// testRounds keeps the many Opens of these tests fast, above all under the
// race detector; TestDefaultWorkFactor covers the production count.
const testRounds = 2_000

var passphrase = []byte("correct horse battery staple")

func openTest(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(context.Background(), dir, passphrase, InsecureKDFIterations(testRounds))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func newDir(t *testing.T) string { return filepath.Join(t.TempDir(), "keystore") }

func TestContract(t *testing.T) {
	keystest.Run(t, func(t *testing.T) keys.Manager { return openTest(t, newDir(t)) })
}

func TestPersistence(t *testing.T) {
	keystest.RunPersistence(t, func(t *testing.T) func() (keys.Manager, error) {
		dir := newDir(t)
		return func() (keys.Manager, error) {
			return Open(context.Background(), dir, passphrase, InsecureKDFIterations(testRounds))
		}
	})
}

// TestDefaultWorkFactor opens a store made with the production count, once:
// the slow path must work and must be what a plain Open writes.
func TestDefaultWorkFactor(t *testing.T) {
	dir := newDir(t)
	s, err := Open(context.Background(), dir, passphrase)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	meta, err := readMeta(dir)
	if err != nil {
		t.Fatal(err)
	}
	if meta.Iterations != DefaultKDFRounds || DefaultKDFRounds < 600_000 || meta.KDF != "pbkdf2-hmac-sha256" || len(meta.Salt) != 32 {
		t.Fatalf("new store KDF: %s × %d, salt %d bytes", meta.KDF, meta.Iterations, len(meta.Salt))
	}
	if _, err := s.CreateKey(context.Background(), keys.CreateKeyRequest{Name: "k", Suite: sigalg.Ed25519}); err != nil {
		t.Fatal(err)
	}
}

func TestOpenByURI(t *testing.T) {
	ctx := context.Background()
	dir := newDir(t)
	openTest(t, dir).Close() // made with the fast count; the URI opens it
	m, err := keys.Open(ctx, "soft:"+dir, keys.Options{Passphrase: passphrase})
	if err != nil {
		t.Fatalf("keys.Open(soft:): %v", err)
	}
	// Without Create, a path with no store is not found rather than made.
	missing := newDir(t)
	if _, err := keys.Open(ctx, "soft:"+missing, keys.Options{Passphrase: passphrase}); !errors.Is(err, keys.ErrNotFound) {
		t.Fatalf("keys.Open of a missing store: %v, want ErrNotFound", err)
	}
	if _, err := os.Stat(missing); err == nil {
		t.Fatal("keys.Open without Create made a directory")
	}
	if _, ok := m.(keys.DeviceKeyGenerator); !ok {
		t.Error("the software store does not offer DeviceKeyGenerator")
	}
	m.Close()
	for _, uri := range []string{"pkcs11:token=station", "tpm:/dev/tpmrm0", "gcpkms:x", "no-scheme", ":x"} {
		t.Run(uri, func(t *testing.T) {
			_, err := keys.Open(ctx, uri, keys.Options{Passphrase: passphrase})
			if err == nil {
				t.Fatal("opened")
			}
			if strings.Contains(uri, "pkcs11") && (!errors.Is(err, keys.ErrUnsupported) || !strings.Contains(err.Error(), "PKCS #11")) {
				t.Fatalf("pkcs11: %v, want ErrUnsupported naming the backend", err)
			}
		})
	}
	if _, err := keys.Open(ctx, "soft:"+dir, keys.Options{Passphrase: []byte("wrong passphrase")}); !errors.Is(err, keys.ErrPassphrase) {
		t.Fatalf("keys.Open with a wrong passphrase: %v", err)
	}
}

// TestNoPlaintextOnDisk creates a key of every suite and searches every
// file of the store for the private key in any form we can name: PKCS #8
// DER, the raw seed or scalar, and their base64 and hex spellings.
func TestNoPlaintextOnDisk(t *testing.T) {
	ctx := context.Background()
	dir := newDir(t)
	s := openTest(t, dir)
	defer s.Close()
	var secrets [][]byte
	for _, suite := range sigalg.All() {
		name := "k-" + string(suite.ID())
		if _, err := s.CreateKey(ctx, keys.CreateKeyRequest{Name: name, Suite: suite.ID()}); err != nil {
			t.Fatal(err)
		}
		key, err := s.load(name)
		if err != nil {
			t.Fatal(err)
		}
		der, err := sigalg.MarshalPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, der, rawSecret(t, key))
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(files) != len(sigalg.All())+1 {
		t.Fatalf("store holds %d files, want one per key plus keystore.json", len(files))
	}
	for _, f := range files {
		data, _ := os.ReadFile(f)
		for _, secret := range secrets {
			for _, form := range [][]byte{secret, []byte(base64.StdEncoding.EncodeToString(secret)), []byte(hex.EncodeToString(secret))} {
				if bytes.Contains(data, form) {
					t.Fatalf("%s contains a private key in the clear", filepath.Base(f))
				}
			}
		}
	}
}

// rawSecret returns the bytes a key is made from: the 32-byte seed of
// Ed25519 and ML-DSA keys, the scalar of an ECDSA key.
func rawSecret(t *testing.T, key crypto.Signer) []byte {
	switch k := key.(type) {
	case ed25519.PrivateKey:
		return k.Seed()
	case *ecdsa.PrivateKey:
		raw, err := k.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		return raw
	case sign.Seeded:
		return k.Seed()
	}
	t.Fatalf("no raw form for %T", key)
	return nil
}

func TestFileModes(t *testing.T) {
	dir := newDir(t)
	s := openTest(t, dir)
	defer s.Close()
	if _, err := s.CreateKey(context.Background(), keys.CreateKeyRequest{Name: "station", Suite: sigalg.MLDSA65}); err != nil {
		t.Fatal(err)
	}
	info, _ := os.Stat(dir)
	if info.Mode().Perm() != 0o700 {
		t.Errorf("directory mode %#o, want 0700", info.Mode().Perm())
	}
	for _, name := range []string{"keystore.json", "station.key"} {
		info, err := os.Stat(filepath.Join(dir, name))
		if err != nil || info.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v (%v), want 0600", name, info.Mode().Perm(), err)
		}
	}
	// Loosened permissions are refused, as ssh refuses them.
	os.Chmod(filepath.Join(dir, "station.key"), 0o644)
	if _, err := s.PublicKey(context.Background(), "station"); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("a key file readable by others was used: %v", err)
	}
	os.Chmod(dir, 0o755)
	if _, err := Open(context.Background(), dir, passphrase); err == nil || !strings.Contains(err.Error(), "chmod 700") {
		t.Errorf("a store directory open to others was opened: %v", err)
	}
}

func TestWrongPassphrase(t *testing.T) {
	dir := newDir(t)
	openTest(t, dir).Close()
	before := snapshot(t, dir)
	for _, p := range [][]byte{[]byte("correct horse battery stapler"), []byte("x"), passphrase[:len(passphrase)-1]} {
		if _, err := Open(context.Background(), dir, p); !errors.Is(err, keys.ErrPassphrase) {
			t.Errorf("Open with %q: %v, want ErrPassphrase", p, err)
		}
	}
	if _, err := Open(context.Background(), dir, nil); !errors.Is(err, keys.ErrPassphrase) {
		t.Errorf("Open with no passphrase: %v", err)
	}
	if !equalSnapshots(before, snapshot(t, dir)) {
		t.Error("a refused Open changed the store")
	}
}

func TestOpenRefuses(t *testing.T) {
	ctx := context.Background()
	t.Run("short passphrase for a new store", func(t *testing.T) {
		dir := newDir(t)
		if _, err := Open(ctx, dir, []byte("short")); err == nil || !strings.Contains(err.Error(), "at least") {
			t.Fatalf("%v", err)
		}
		if _, err := os.Stat(filepath.Join(dir, metaFile)); err == nil {
			t.Fatal("a refused Open left a keystore.json")
		}
	})
	t.Run("directory that is not a store", func(t *testing.T) {
		dir := newDir(t)
		os.Mkdir(dir, 0o700)
		os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("hi"), 0o600)
		if _, err := Open(ctx, dir, passphrase); err == nil || !strings.Contains(err.Error(), "not a Hallmark key store") {
			t.Fatalf("%v", err)
		}
	})
	t.Run("file instead of directory", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "file")
		os.WriteFile(path, nil, 0o600)
		if _, err := Open(ctx, path, passphrase); err == nil {
			t.Fatal("opened a file as a store")
		}
	})
	t.Run("absurd work factor", func(t *testing.T) {
		dir := newDir(t)
		openTest(t, dir).Close()
		rewriteMeta(t, dir, func(m *storeMeta) { m.Iterations = 1 << 30 })
		if _, err := Open(ctx, dir, passphrase); !errors.Is(err, keys.ErrCorrupt) {
			t.Fatalf("%v, want ErrCorrupt", err)
		}
	})
	t.Run("lowered work factor", func(t *testing.T) {
		dir := newDir(t)
		openTest(t, dir).Close()
		rewriteMeta(t, dir, func(m *storeMeta) { m.Iterations = testRounds - 1 })
		if _, err := Open(ctx, dir, passphrase); !errors.Is(err, keys.ErrPassphrase) {
			t.Fatalf("%v, want ErrPassphrase (the count is an input of the key)", err)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		cancelled, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := Open(cancelled, newDir(t), passphrase); !errors.Is(err, context.Canceled) {
			t.Fatalf("%v", err)
		}
	})
}

func rewriteMeta(t *testing.T, dir string, edit func(*storeMeta)) {
	t.Helper()
	path := filepath.Join(dir, metaFile)
	data, _ := os.ReadFile(path)
	var meta storeMeta
	if err := json.Unmarshal(data, &meta); err != nil {
		t.Fatal(err)
	}
	edit(&meta)
	data, _ = json.Marshal(meta)
	os.WriteFile(path, append(data, '\n'), 0o600)
}

type fileSnapshot map[string]string

func snapshot(t *testing.T, dir string) fileSnapshot {
	t.Helper()
	snap := fileSnapshot{}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		data, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		snap[e.Name()] = string(data)
	}
	return snap
}

func equalSnapshots(a, b fileSnapshot) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestConcurrentCreation opens one new store from several goroutines at
// once: all must end up in the same store, none with an error.
func TestConcurrentCreation(t *testing.T) {
	dir := newDir(t)
	stores := make([]*Store, 4)
	errs := make([]error, len(stores))
	var wg sync.WaitGroup
	for i := range stores {
		wg.Go(func() {
			stores[i], errs[i] = Open(context.Background(), dir, passphrase, InsecureKDFIterations(testRounds))
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Open %d: %v", i, err)
		}
		defer stores[i].Close()
	}
	mustCreate(t, stores[0], "shared", sigalg.Ed25519)
	for i, s := range stores {
		if _, err := s.PublicKey(context.Background(), "shared"); err != nil {
			t.Fatalf("store %d does not see the key the first made: %v", i, err)
		}
	}
}
