package cmdline

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
	MaxKeyFile   = 1 << 20 // PEM keys, certificates and seeds
	MaxImageFile = firmware.MaxImageSize
)

// Stdio is the path argument that means standard input or output.
const Stdio = "-"

// ReadInput reads path, or standard input when path is "-" or empty, and
// refuses more than limit bytes.
func (s *Streams) ReadInput(path string, limit int64, what string) ([]byte, error) {
	var r io.Reader = s.In
	name := "standard input"
	if path != "" && path != Stdio {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", what, PathError(err))
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

// WriteOutput writes data to path, or standard output when path is "-" or
// empty. A file is written to a temporary name and renamed into place, so a
// failure never leaves a half-written file, and an existing file is replaced
// only when force is set.
func (s *Streams) WriteOutput(path string, data []byte, perm fs.FileMode, force bool) error {
	if IsStdio(path) {
		_, err := s.Out.Write(data)
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
		return fmt.Errorf("write %s: %w", path, PathError(err))
	}
	return nil
}

// FileOutput is one file of a command that writes several.
type FileOutput struct {
	Path string
	Data []byte
	Perm fs.FileMode
}

// WriteOutputs checks that no file exists (unless force) before writing
// any, so a refused command leaves no half of a key pair behind.
func (s *Streams) WriteOutputs(outputs []FileOutput, force bool) error {
	if !force {
		for _, o := range outputs {
			if !IsStdio(o.Path) && FileExists(o.Path) {
				return fmt.Errorf("write %s: file exists (use --force to replace it)", o.Path)
			}
		}
	}
	for _, o := range outputs {
		if err := s.WriteOutput(o.Path, o.Data, o.Perm, force); err != nil {
			return err
		}
	}
	return nil
}

// Secret reads a passphrase or other secret from a file or the environment
// variable envName, never from a flag value, which would show in the
// process list and shell history.
func (s *Streams) Secret(file, envName string) ([]byte, error) {
	if file != "" {
		data, err := s.ReadInput(file, 4096, "passphrase")
		if err != nil {
			return nil, err
		}
		return []byte(strings.TrimRight(string(data), "\r\n")), nil
	}
	if p := os.Getenv(envName); p != "" {
		return []byte(p), nil
	}
	return nil, Usagef("no passphrase: use --passphrase-file FILE or set %s", envName)
}

// PathError drops the operation prefix from *fs.PathError, whose message
// would otherwise repeat the path the caller already names.
func PathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Path, pe.Err)
	}
	return err
}

// DisplayPath names an input path in messages.
func DisplayPath(path string) string {
	if IsStdio(path) {
		return "from standard input"
	}
	return path
}

// IsStdio reports a path that means a standard stream: "-", or none.
func IsStdio(path string) bool { return path == "" || path == Stdio }

// FileExists reports whether anything (even a dangling link) is at path.
func FileExists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// StdinCount counts the flags set to "-"; empty values are optional inputs
// left unset, not standard input.
func StdinCount(paths ...string) int {
	n := 0
	for _, p := range paths {
		if p == Stdio {
			n++
		}
	}
	return n
}

// ArgOrStdin is the optional FILE argument, standard input by default.
func ArgOrStdin(args []string) string {
	if len(args) == 0 {
		return Stdio
	}
	return args[0]
}
