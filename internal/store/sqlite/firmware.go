package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	sqlite3 "modernc.org/sqlite/lib"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// The firmware repository's metadata, and the product's firmware policy
// columns (0011_firmware.sql).

const firmwareColumns = `digest, product_id, type, version, security_counter, size, encrypted, signers, uploaded_at, uploaded_by`

// PutFirmwareImage records img once per digest (store.FirmwareImages).
// INSERT OR IGNORE keeps the first record; SQLite's single writer makes
// the insert and the read that follows it one decision.
func (s *Store) PutFirmwareImage(ctx context.Context, img store.FirmwareImage) (store.FirmwareImage, bool, error) {
	const q = `INSERT INTO firmware_images (` + firmwareColumns + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (digest) DO NOTHING`
	res, err := s.writer.ExecContext(ctx, q, img.Digest[:], img.ProductID, img.Type, img.Version, int64(img.SecurityCounter),
		img.Size, img.Encrypted, joinIDs(img.Signers), micros(img.UploadedAt), img.UploadedBy)
	if isConstraint(err, sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY) {
		return store.FirmwareImage{}, false, fmt.Errorf("sqlite: firmware image for product %q: %w", img.ProductID, store.ErrNotFound)
	}
	if err != nil {
		return store.FirmwareImage{}, false, fmt.Errorf("sqlite: put firmware image %x: %w", img.Digest, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return store.FirmwareImage{}, false, fmt.Errorf("sqlite: put firmware image %x: %w", img.Digest, err)
	}
	// Read from the writer: a reader might not see the row yet.
	rec, err := s.getFirmwareImage(ctx, s.writer, img.Digest)
	return rec, n == 1, err
}

// GetFirmwareImage returns one image's record or store.ErrNotFound.
func (s *Store) GetFirmwareImage(ctx context.Context, digest [32]byte) (store.FirmwareImage, error) {
	return s.getFirmwareImage(ctx, s.reader, digest)
}

func (s *Store) getFirmwareImage(ctx context.Context, db *sql.DB, digest [32]byte) (store.FirmwareImage, error) {
	const q = `SELECT ` + firmwareColumns + ` FROM firmware_images WHERE digest = ?`
	img, err := scanFirmwareImage(db.QueryRowContext(ctx, q, digest[:]))
	if errors.Is(err, sql.ErrNoRows) {
		return store.FirmwareImage{}, fmt.Errorf("sqlite: firmware image %x: %w", digest, store.ErrNotFound)
	}
	if err != nil {
		return store.FirmwareImage{}, fmt.Errorf("sqlite: get firmware image %x: %w", digest, err)
	}
	return img, nil
}

// ListFirmwareImages returns a page of images by digest.
func (s *Store) ListFirmwareImages(ctx context.Context, f store.FirmwareFilter) ([]store.FirmwareImage, error) {
	q := `SELECT ` + firmwareColumns + ` FROM firmware_images WHERE digest > ? ORDER BY digest LIMIT ?`
	args := []any{f.After[:], store.PageLimit(f.Limit)}
	if f.ProductID != "" {
		q = `SELECT ` + firmwareColumns + ` FROM firmware_images WHERE product_id = ? AND digest > ? ORDER BY digest LIMIT ?`
		args = append([]any{f.ProductID}, args...)
	}
	list, err := queryAll(ctx, s.reader, q, args, scanFirmwareImage)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list firmware images: %w", err)
	}
	return list, nil
}

func scanFirmwareImage(row scanner) (store.FirmwareImage, error) {
	var img store.FirmwareImage
	var digest, signers []byte
	var counter, uploaded int64
	if err := row.Scan(&digest, &img.ProductID, &img.Type, &img.Version, &counter, &img.Size, &img.Encrypted, &signers,
		&uploaded, &img.UploadedBy); err != nil {
		return store.FirmwareImage{}, err
	}
	img.SecurityCounter = uint32(counter)
	img.UploadedAt = fromMicros(uploaded)
	ids, err := splitHashes(signers, "firmware signers")
	if err != nil {
		return store.FirmwareImage{}, err
	}
	for _, h := range ids {
		img.Signers = append(img.Signers, identity.ID(h))
	}
	return img, fixed(img.Digest[:], digest, "firmware digest")
}

// Hashes (roots, signers) are stored concatenated, 32 bytes each.

func joinHashes(hs [][32]byte) []byte {
	out := make([]byte, 0, 32*len(hs))
	for _, h := range hs {
		out = append(out, h[:]...)
	}
	return out
}

func joinIDs(ids []identity.ID) []byte {
	out := make([]byte, 0, 32*len(ids))
	for _, id := range ids {
		out = append(out, id[:]...)
	}
	return out
}

func splitHashes(b []byte, what string) ([][32]byte, error) {
	if len(b)%32 != 0 {
		return nil, fmt.Errorf("stored %s have %d bytes, not a multiple of 32", what, len(b))
	}
	var out [][32]byte
	for i := 0; i < len(b); i += 32 {
		out = append(out, [32]byte(b[i:i+32]))
	}
	return out, nil
}

// classKey is a class key fingerprint as stored: NULL for none.
func classKey(k [32]byte) any {
	if k == ([32]byte{}) {
		return nil
	}
	return k[:]
}

func optHashes(hs *[][32]byte) any {
	if hs == nil {
		return nil
	}
	return joinHashes(*hs)
}

func optRetired(m *uint8) any {
	if m == nil {
		return nil
	}
	return int64(*m)
}

func optClassKey(k *[32]byte) any {
	if k == nil {
		return nil
	}
	return classKey(*k)
}

func scanFirmwarePolicy(p *store.FirmwarePolicy, roots []byte, retired int64, class []byte) error {
	var err error
	if p.Roots, err = splitHashes(roots, "firmware roots"); err != nil {
		return err
	}
	p.Retired = uint8(retired)
	if class != nil {
		return fixed(p.ClassKey[:], class, "class key fingerprint")
	}
	return nil
}
