package manifest

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

var update = flag.Bool("update", false, "rewrite the testdata/golden-*.jsonl files")

// goldenManifest is fully deterministic: Ed25519 signatures are, and the
// keys, nonces and times are fixed.
func goldenManifest(t *testing.T) []byte {
	station := deriveKey(t, sigalg.Ed25519, 0x51)
	nonce := func(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }
	return writeManifest(t, station, "2026-11-25.line1.B0001",
		newDevice(t, deriveKey(t, sigalg.Ed25519, 1), PUF, NotInjected, nonce(0xa1)).rec,
		newDevice(t, deriveKey(t, sigalg.Ed25519, 2), Keygen, NotInjected, nonce(0xa2)).rec,
		newDevice(t, deriveKey(t, sigalg.Ed25519, 3), Inject, Encrypted, nonce(0xa3)).rec,
		newDevice(t, deriveKey(t, sigalg.Ed25519, 4), Inject, Clear, nonce(0xa4)).rec,
	)
}

// TestGolden pins the exact bytes of a manifest, so that any change to the
// format, its field order or its encoding shows up as a diff to review
// (go test -run TestGolden -update rewrites it).
func TestGolden(t *testing.T) {
	path := filepath.Join("testdata", "golden-ed25519.jsonl")
	got := goldenManifest(t)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("the writer's output differs from %s:\n got: %s\nwant: %s", path, got, want)
	}
	_, sum, err := verifyAll(want, deriveKey(t, sigalg.Ed25519, 0x51).Public())
	if err != nil || sum.Count != 4 {
		t.Fatalf("the golden manifest does not verify: %v", err)
	}
}

// TestGoldenLocks pins the bytes of a manifest whose records carry lock
// states (lockedManifest: one device closed, one open), so that the
// field's name, place and spelling cannot drift.
func TestGoldenLocks(t *testing.T) {
	path := filepath.Join("testdata", "golden-locks-ed25519.jsonl")
	got := lockedManifest(t)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("the writer's output differs from %s:\n got: %s\nwant: %s", path, got, want)
	}
}
