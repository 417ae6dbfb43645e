package firmwarerepo

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/hallmark-iot/hallmark/internal/atomicfile"
)

// ErrBlobMissing reports an image whose bytes are not in the blob store.
var ErrBlobMissing = errors.New("firmware blob missing")

// Blobs is a content-addressed store of image files in a directory: each
// image is one file named by the hex SHA-256 of its bytes. A file appears
// whole or not at all (written beside its name, synced, then linked into
// place), so replicas that share the directory never serve a torn image,
// and two writers of one image cannot both win or leave a mix.
type Blobs struct {
	dir string
}

// BlobDir is where the blobs live under a platform's data directory.
func BlobDir(dataDir string) string { return filepath.Join(dataDir, "firmware", "sha256") }

// OpenBlobs returns the blob store in dir, creating it if missing.
func OpenBlobs(dir string) (*Blobs, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("firmware blobs: %w", err)
	}
	return &Blobs{dir: dir}, nil
}

func (b *Blobs) path(digest [32]byte) string {
	return filepath.Join(b.dir, hex.EncodeToString(digest[:]))
}

// Put stores data under its digest, which the caller computed; storing an
// image that is there already changes nothing.
func (b *Blobs) Put(digest [32]byte, data []byte) error {
	if sha256.Sum256(data) != digest {
		return fmt.Errorf("firmware blob %x: digest does not match the data", digest[:8])
	}
	p := b.path(digest)
	if st, err := os.Stat(p); err == nil && st.Size() == int64(len(data)) {
		return nil
	}
	err := atomicfile.WriteNew(p, data, 0o640)
	if errors.Is(err, atomicfile.ErrExists) {
		return nil // a concurrent upload of the same image placed it
	}
	if err != nil {
		return fmt.Errorf("firmware blob %x: %w", digest[:8], err)
	}
	return nil
}

// Open returns the image file of digest for reading; a missing one is
// ErrBlobMissing.
func (b *Blobs) Open(digest [32]byte) (*os.File, error) {
	f, err := os.Open(b.path(digest))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("firmware blob %x: %w", digest[:8], ErrBlobMissing)
	}
	if err != nil {
		return nil, fmt.Errorf("firmware blob %x: %w", digest[:8], err)
	}
	return f, nil
}

// Has reports whether the image of digest is stored.
func (b *Blobs) Has(digest [32]byte) bool {
	_, err := os.Stat(b.path(digest))
	return err == nil
}
