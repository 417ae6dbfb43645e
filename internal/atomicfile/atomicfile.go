// Package atomicfile owns writing a file so that readers see either the old
// content or the new, never a torn mix: the data goes to a temporary file in
// the same directory, is synced, and is renamed over the target.
package atomicfile

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// ErrExists reports a target that exists when the caller asked not to
// replace it.
var ErrExists = errors.New("file exists")

// Write replaces path with data, creating it with mode perm.
func Write(path string, data []byte, perm fs.FileMode) error {
	return WriteFunc(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// WriteFunc replaces path with what write produces, streaming through a
// buffer; if write fails, path is left as it was.
func WriteFunc(path string, perm fs.FileMode, write func(io.Writer) error) error {
	return place(path, perm, write, os.Rename)
}

// WriteNew is Write that never replaces an existing file: the finished
// temporary file is hard-linked into place, which fails atomically if the
// name exists, so two writers racing for one name cannot both win.
func WriteNew(path string, data []byte, perm fs.FileMode) error {
	err := place(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	}, os.Link)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s: %w", path, ErrExists)
	}
	return err
}

// place writes a synced temporary file beside path, moves it into place
// with move (rename or link), and syncs the directory so that the new name
// survives a power cut.
func place(path string, perm fs.FileMode, write func(io.Writer) error, move func(oldpath, newpath string) error) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // harmless after a rename; drops the link's twin
	err = tmp.Chmod(perm)
	if err == nil {
		buf := bufio.NewWriterSize(tmp, 256<<10)
		if err = write(buf); err == nil {
			err = buf.Flush()
		}
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = move(tmp.Name(), path)
	}
	if err != nil {
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
