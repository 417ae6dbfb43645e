package softkms

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/keys"
	"github.com/hallmark-iot/hallmark/internal/keys/keystest"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

func mustCreate(t testing.TB, s *Store, name string, suite sigalg.ID) {
	t.Helper()
	if _, err := s.CreateKey(context.Background(), keys.CreateKeyRequest{Name: name, Suite: suite}); err != nil {
		t.Fatal(err)
	}
}

// assertRefused checks that neither PublicKey nor Signer accepts the key.
func assertRefused(t *testing.T, s *Store, name string, want error) {
	t.Helper()
	ctx := context.Background()
	if _, err := s.PublicKey(ctx, name); !errors.Is(err, want) {
		t.Fatalf("PublicKey(%s): %v, want %v", name, err, want)
	}
	if _, err := s.Signer(ctx, name); !errors.Is(err, want) {
		t.Fatalf("Signer(%s): %v, want %v", name, err, want)
	}
}

// TestEveryBitFlipOfAKeyFileIsRefused flips each bit of a key file in turn.
// Each flip must make the key unusable; none may panic or yield a key.
func TestEveryBitFlipOfAKeyFileIsRefused(t *testing.T) {
	dir := newDir(t)
	s := openTest(t, dir)
	defer s.Close()
	mustCreate(t, s, "k", sigalg.Ed25519)
	path := filepath.Join(dir, "k.key")
	orig, _ := os.ReadFile(path)
	ctx := context.Background()
	for i := range orig {
		for bit := range 8 {
			flipped := append([]byte(nil), orig...)
			flipped[i] ^= 1 << bit
			os.WriteFile(path, flipped, 0o600)
			if _, err := s.PublicKey(ctx, "k"); err == nil {
				t.Fatalf("byte %d bit %d flipped: PublicKey accepted the file", i, bit)
			}
			if _, err := s.Signer(ctx, "k"); err == nil {
				t.Fatalf("byte %d bit %d flipped: Signer accepted the file", i, bit)
			}
		}
	}
	os.WriteFile(path, orig, 0o600)
	if _, err := s.Signer(ctx, "k"); err != nil {
		t.Fatalf("the restored file is refused: %v", err)
	}
}

// TestEveryByteChangeOfKeystoreJSONIsRefused changes each byte of the store
// metadata; Open must fail every time.
func TestEveryByteChangeOfKeystoreJSONIsRefused(t *testing.T) {
	dir := newDir(t)
	s, err := Open(context.Background(), dir, passphrase, InsecureKDFIterations(minKDFRounds))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	path := filepath.Join(dir, metaFile)
	orig, _ := os.ReadFile(path)
	for i := range orig {
		changed := append([]byte(nil), orig...)
		changed[i] ^= 0x01
		os.WriteFile(path, changed, 0o600)
		if _, err := Open(context.Background(), dir, passphrase); err == nil {
			t.Fatalf("byte %d changed: the store opened", i)
		}
	}
}

func TestMovedOrSwappedFilesAreRefused(t *testing.T) {
	dir := newDir(t)
	s := openTest(t, dir)
	defer s.Close()
	mustCreate(t, s, "a", sigalg.MLDSA65)
	mustCreate(t, s, "b", sigalg.MLDSA65)
	keyPath := func(name string) string { return filepath.Join(dir, name+".key") }
	original, _ := os.ReadFile(keyPath("b"))
	restore := func() { os.WriteFile(keyPath("b"), original, 0o600) }
	editB := func(edit func(*keyFile)) {
		data, _ := os.ReadFile(keyPath("b"))
		var kf keyFile
		json.Unmarshal(data, &kf)
		edit(&kf)
		data, _ = json.Marshal(kf)
		os.WriteFile(keyPath("b"), append(data, '\n'), 0o600)
	}
	a, _ := os.ReadFile(keyPath("a"))
	var kfA keyFile
	json.Unmarshal(a, &kfA)

	t.Run("copied under another name", func(t *testing.T) {
		defer restore()
		os.WriteFile(keyPath("b"), a, 0o600)
		assertRefused(t, s, "b", keys.ErrCorrupt)
	})
	t.Run("copied and renamed inside", func(t *testing.T) {
		defer restore()
		os.WriteFile(keyPath("b"), a, 0o600)
		editB(func(kf *keyFile) { kf.Name = "b" })
		assertRefused(t, s, "b", keys.ErrCorrupt)
	})
	t.Run("public key swapped", func(t *testing.T) {
		defer restore()
		editB(func(kf *keyFile) { kf.PublicKey = kfA.PublicKey })
		assertRefused(t, s, "b", keys.ErrCorrupt)
	})
	t.Run("suite relabelled", func(t *testing.T) {
		defer restore()
		editB(func(kf *keyFile) { kf.Suite = sigalg.MLDSA87 })
		assertRefused(t, s, "b", keys.ErrCorrupt)
	})
	t.Run("ciphertext from another key", func(t *testing.T) {
		defer restore()
		editB(func(kf *keyFile) { kf.Nonce, kf.Ciphertext = kfA.Nonce, kfA.Ciphertext })
		assertRefused(t, s, "b", keys.ErrCorrupt)
	})
	t.Run("truncated", func(t *testing.T) {
		defer restore()
		os.WriteFile(keyPath("b"), original[:len(original)/2], 0o600)
		assertRefused(t, s, "b", keys.ErrCorrupt)
	})
	t.Run("from another store", func(t *testing.T) {
		defer restore()
		other := openTest(t, newDir(t))
		defer other.Close()
		mustCreate(t, other, "b", sigalg.MLDSA65)
		foreign, _ := os.ReadFile(filepath.Join(other.Dir(), "b.key"))
		os.WriteFile(keyPath("b"), foreign, 0o600)
		assertRefused(t, s, "b", keys.ErrCorrupt)
	})
	t.Run("symbolic link", func(t *testing.T) {
		defer restore()
		os.Remove(keyPath("b"))
		os.Symlink(keyPath("a"), keyPath("b"))
		assertRefused(t, s, "b", keys.ErrCorrupt)
		os.Remove(keyPath("b"))
	})
	if _, err := s.Signer(context.Background(), "b"); err != nil {
		t.Fatalf("the restored key is refused: %v", err)
	}
}

func TestDeviceKeysAreNotKept(t *testing.T) {
	dir := newDir(t)
	s := openTest(t, dir)
	defer s.Close()
	before := snapshot(t, dir)
	for _, suite := range sigalg.All() {
		if _, _, err := s.GenerateDeviceKey(context.Background(), suite.ID(), keystest.NewTransportWrapper()); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.GenerateDeviceKey(context.Background(), suite.ID(), nil); err != nil {
			t.Fatal(err)
		}
	}
	if !equalSnapshots(before, snapshot(t, dir)) {
		t.Fatal("generating device keys wrote to the store")
	}
}
