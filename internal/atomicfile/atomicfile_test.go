package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func TestWriteReplacesWholeFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	if err := Write(path, []byte("first version, longer"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Write(path, []byte("second"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	info, _ := os.Stat(path)
	if string(got) != "second" || info.Mode().Perm() != 0o644 {
		t.Fatalf("content %q mode %v", got, info.Mode())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("temporary files left: %v", entries)
	}
}

func TestWriteNewRefusesExisting(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	if err := WriteNew(path, []byte("a"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteNew(path, []byte("b"), 0o600); !errors.Is(err, ErrExists) {
		t.Fatalf("second WriteNew = %v, want ErrExists", err)
	}
	if got, _ := os.ReadFile(path); string(got) != "a" {
		t.Fatalf("content changed to %q", got)
	}
}

func TestWriteIntoMissingDirectoryFails(t *testing.T) {
	if err := Write(filepath.Join(t.TempDir(), "no", "f"), nil, 0o600); err == nil {
		t.Fatal("write into a missing directory succeeded")
	}
}

func TestWriteFuncLeavesTargetOnFailure(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	Write(path, []byte("old"), 0o600)
	err := WriteFunc(path, 0o600, func(w io.Writer) error {
		w.Write([]byte("half of the new"))
		return errors.New("writer failed")
	})
	if err == nil {
		t.Fatal("failure not reported")
	}
	if got, _ := os.ReadFile(path); string(got) != "old" {
		t.Fatalf("target is %q after a failed write", got)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("temporary files left: %v", entries)
	}
}

func TestWriteNewRaceHasOneWinner(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	errs := make(chan error, 8)
	for i := range 8 {
		go func() { errs <- WriteNew(path, []byte{byte('a' + i)}, 0o600) }()
	}
	wins := 0
	for range 8 {
		err := <-errs
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, ErrExists):
			t.Fatal(err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d writers won", wins)
	}
}
