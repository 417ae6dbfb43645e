package softkms

import (
	"crypto"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/cloudflare/circl/sign/mldsa/mldsa44"
	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
	"github.com/cloudflare/circl/sign/mldsa/mldsa87"

	"github.com/hallmark-iot/hallmark/internal/atomicfile"
	"github.com/hallmark-iot/hallmark/internal/keys"
)

// writeNew writes data to dir/name with mode 0600 without ever replacing an
// existing file (atomicfile.WriteNew links a synced temporary file into
// place). A crash leaves at most a temporary file, never a half-written key.
func writeNew(dir, name string, data []byte) error {
	err := atomicfile.WriteNew(filepath.Join(dir, name), data, 0o600)
	if errors.Is(err, atomicfile.ErrExists) {
		return fmt.Errorf("%s: %w", name, keys.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", name, pathErr(err))
	}
	return nil
}

// readPrivateFile reads a store file, refusing symbolic links, anything but
// a regular file, files others can read or write, and files larger than
// any the store writes.
func readPrivateFile(path string) ([]byte, error) {
	info, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: %w: not a regular file", filepath.Base(path), keys.ErrCorrupt)
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%s: file mode %#o lets other users in; chmod 600 it", filepath.Base(path), perm)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", filepath.Base(path), err)
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("%s: %w: larger than %d bytes", filepath.Base(path), keys.ErrCorrupt, maxFileSize)
	}
	return data, nil
}

// pathErr keeps the operation and path of a *fs.PathError but drops the
// leading "open"/"mkdir", which callers' messages already imply.
func pathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Path, pe.Err)
	}
	return err
}

// forget overwrites what it can of a private key. Ed25519 and ML-DSA keys
// are plain memory; an ECDSA key's scalar lives in big.Int and internal
// copies the runtime does not let us reach, so for it this is best effort
// and the real protection is that keys are decrypted only when used.
func forget(key crypto.Signer) {
	switch k := key.(type) {
	case ed25519.PrivateKey:
		clear(k)
	case *mldsa44.PrivateKey:
		*k = mldsa44.PrivateKey{}
	case *mldsa65.PrivateKey:
		*k = mldsa65.PrivateKey{}
	case *mldsa87.PrivateKey:
		*k = mldsa87.PrivateKey{}
	}
}
