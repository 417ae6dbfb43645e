package softkms

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// FuzzKeyFile puts arbitrary bytes where a key file belongs. Properties: no
// panic; a file is accepted only if it is byte for byte the file the store
// wrote (anything else is a forgery, which GCM and the canonical-form check
// must catch); and an accepted file yields the key that was stored.
func FuzzKeyFile(f *testing.F) {
	dir := filepath.Join(f.TempDir(), "keystore")
	s, err := Open(context.Background(), dir, passphrase, InsecureKDFIterations(testRounds))
	if err != nil {
		f.Fatal(err)
	}
	defer s.Close()
	mustCreate(f, s, "k", sigalg.Ed25519)
	path := filepath.Join(dir, "k.key")
	orig, _ := os.ReadFile(path)
	want, err := s.PublicKey(context.Background(), "k")
	if err != nil {
		f.Fatal(err)
	}
	wantSPKI, _ := sigalg.MarshalPublicKey(want)
	f.Add(orig)
	f.Add(orig[:len(orig)-1])
	f.Add(bytes.Replace(orig, []byte(`"name":"k"`), []byte(`"name":"j"`), 1))
	f.Add([]byte("{}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		pub, err := s.PublicKey(context.Background(), "k")
		key, serr := s.load("k")
		if (err == nil) != (serr == nil) {
			t.Fatalf("PublicKey and Signer disagree: %v vs %v", err, serr)
		}
		if err != nil {
			return
		}
		if !bytes.Equal(data, orig) {
			t.Fatalf("accepted a key file that differs from the one written: %q", data)
		}
		got, _ := sigalg.MarshalPublicKey(pub)
		fromKey, _ := sigalg.MarshalPublicKey(key.Public())
		if !bytes.Equal(got, wantSPKI) || !bytes.Equal(fromKey, wantSPKI) {
			t.Fatal("accepted file yields another key")
		}
	})
}

// FuzzStoreMeta parses arbitrary keystore.json contents. Properties: no
// panic, and what is accepted has the sizes and counts unlock relies on.
func FuzzStoreMeta(f *testing.F) {
	dir := filepath.Join(f.TempDir(), "keystore")
	s, err := Open(context.Background(), dir, passphrase, InsecureKDFIterations(testRounds))
	if err != nil {
		f.Fatal(err)
	}
	s.Close()
	orig, _ := os.ReadFile(filepath.Join(dir, metaFile))
	f.Add(orig)
	f.Add(bytes.Replace(orig, []byte(`"iterations":2000`), []byte(`"iterations":1e9`), 1))
	f.Fuzz(func(t *testing.T, data []byte) {
		fdir := t.TempDir()
		if err := os.WriteFile(filepath.Join(fdir, metaFile), data, 0o600); err != nil {
			t.Fatal(err)
		}
		meta, err := readMeta(fdir)
		if err != nil {
			return
		}
		if meta.Iterations < minKDFRounds || meta.Iterations > maxKDFRounds || len(meta.Salt) != saltSize ||
			len(meta.Nonce) != 12 || len(meta.MasterKey) != masterKeySize+16 {
			t.Fatalf("accepted out-of-range metadata: %+v", meta)
		}
	})
}
