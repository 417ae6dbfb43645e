package cli

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/hallmark-iot/hallmark/internal/atomicfile"
	"github.com/hallmark-iot/hallmark/internal/firmware"
)

// Input limits keep a mistaken argument (a disk image instead of a key) from
// exhausting memory; each names what it bounds.
const (
	maxKeyFile   = 1 << 20  // PEM keys and seeds
	maxMessage   = 64 << 20 // messages to sign or verify
	maxSigFile   = 64 << 10 // signatures
	maxImageFile = firmware.MaxImageSize
	stdioMarker  = "-"
)

// readInput reads path, or standard input when path is "-" or empty, and
// refuses more than limit bytes.
func (s *streams) readInput(path string, limit int64, what string) ([]byte, error) {
	var r io.Reader = s.in
	name := "standard input"
	if path != "" && path != stdioMarker {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", what, pathError(err))
		}
		defer f.Close()
		r, name = f, path
	}
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s from %s: %w", what, name, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("read %s from %s: larger than the %d-byte limit", what, name, limit)
	}
	return data, nil
}

// writeOutput writes data to path, or standard output when path is "-" or
// empty. A file is written to a temporary name and renamed into place, so a
// failure never leaves a half-written file, and an existing file is replaced
// only when force is set.
func (s *streams) writeOutput(path string, data []byte, perm fs.FileMode, force bool) error {
	if path == "" || path == stdioMarker {
		_, err := s.out.Write(data)
		return err
	}
	write := atomicfile.WriteNew
	if force {
		write = atomicfile.Write
	}
	if err := write(path, data, perm); err != nil {
		if errors.Is(err, atomicfile.ErrExists) {
			return fmt.Errorf("write %s: file exists (use --force to replace it)", path)
		}
		return fmt.Errorf("write %s: %w", path, pathError(err))
	}
	return nil
}

// pathError drops the operation prefix from *fs.PathError, whose message
// would otherwise repeat the path the caller already names.
func pathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Path, pe.Err)
	}
	return err
}

// secret reads a passphrase from a file or the environment variable
// envName, never from a flag value, which would show in the process list
// and shell history.
func (s *streams) secret(file, envName string) ([]byte, error) {
	if file != "" {
		data, err := s.readInput(file, 4096, "passphrase")
		if err != nil {
			return nil, err
		}
		return []byte(strings.TrimRight(string(data), "\r\n")), nil
	}
	if p := os.Getenv(envName); p != "" {
		return []byte(p), nil
	}
	return nil, usagef("no passphrase: use --passphrase-file FILE or set %s", envName)
}
