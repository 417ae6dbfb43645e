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
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // fails harmlessly once renamed
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
		err = os.Rename(tmp.Name(), path)
	}
	return err
}

// WriteNew is Write that refuses to replace an existing file. The check and
// the rename are not one atomic step; it guards against mistakes, not
// against a concurrent writer.
func WriteNew(path string, data []byte, perm fs.FileMode) error {
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("%s: %w", path, ErrExists)
	}
	return Write(path, data, perm)
}
