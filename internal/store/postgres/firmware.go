package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// The firmware repository's metadata, and the product's firmware policy
// columns (0012_firmware.sql).

const firmwareColumns = `digest, product_id, type, version, security_counter, size, encrypted, signers, uploaded_at, uploaded_by`

// codeForeignKeyViolation is PostgreSQL's SQLSTATE for a missing
// referenced row.
const codeForeignKeyViolation = "23503"

// PutFirmwareImage records img once per digest (store.FirmwareImages).
// ON CONFLICT DO NOTHING waits for a concurrent insert of the same digest
// to commit, so the read that follows a conflict sees the winner's row.
func (s *Store) PutFirmwareImage(ctx context.Context, img store.FirmwareImage) (store.FirmwareImage, bool, error) {
	const q = `INSERT INTO firmware_images (` + firmwareColumns + `) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
		ON CONFLICT (digest) DO NOTHING RETURNING ` + firmwareColumns
	rec, err := scanFirmwareImage(s.pool.QueryRow(ctx, q, img.Digest[:], img.ProductID, img.Type, img.Version,
		int64(img.SecurityCounter), img.Size, img.Encrypted, joinIDs(img.Signers), img.UploadedAt, img.UploadedBy))
	switch {
	case err == nil:
		return rec, true, nil
	case sqlState(err) == codeForeignKeyViolation:
		return store.FirmwareImage{}, false, fmt.Errorf("postgres: firmware image for product %q: %w", img.ProductID, store.ErrNotFound)
	case !errors.Is(err, pgx.ErrNoRows):
		return store.FirmwareImage{}, false, fmt.Errorf("postgres: put firmware image %x: %w", img.Digest, err)
	}
	rec, err = s.GetFirmwareImage(ctx, img.Digest)
	return rec, false, err
}

// GetFirmwareImage returns one image's record or store.ErrNotFound.
func (s *Store) GetFirmwareImage(ctx context.Context, digest [32]byte) (store.FirmwareImage, error) {
	const q = `SELECT ` + firmwareColumns + ` FROM firmware_images WHERE digest = $1`
	img, err := scanFirmwareImage(s.pool.QueryRow(ctx, q, digest[:]))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.FirmwareImage{}, fmt.Errorf("postgres: firmware image %x: %w", digest, store.ErrNotFound)
	}
	if err != nil {
		return store.FirmwareImage{}, fmt.Errorf("postgres: get firmware image %x: %w", digest, err)
	}
	return img, nil
}

// ListFirmwareImages returns a page of images by digest.
func (s *Store) ListFirmwareImages(ctx context.Context, f store.FirmwareFilter) ([]store.FirmwareImage, error) {
	q := `SELECT ` + firmwareColumns + ` FROM firmware_images WHERE digest > $1 ORDER BY digest LIMIT $2`
	args := []any{f.After[:], store.PageLimit(f.Limit)}
	if f.ProductID != "" {
		q = `SELECT ` + firmwareColumns + ` FROM firmware_images WHERE digest > $1 AND product_id = $3 ORDER BY digest LIMIT $2`
		args = append(args, f.ProductID)
	}
	list, err := queryAll(ctx, s.pool, q, args, scanFirmwareImage)
	if err != nil {
		return nil, fmt.Errorf("postgres: list firmware images: %w", err)
	}
	return list, nil
}

func scanFirmwareImage(row pgx.Row) (store.FirmwareImage, error) {
	var img store.FirmwareImage
	var digest, signers []byte
	var counter int64
	if err := row.Scan(&digest, &img.ProductID, &img.Type, &img.Version, &counter, &img.Size, &img.Encrypted, &signers,
		&img.UploadedAt, &img.UploadedBy); err != nil {
		return store.FirmwareImage{}, err
	}
	img.SecurityCounter = uint32(counter)
	img.UploadedAt = img.UploadedAt.UTC()
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
func classKey(k [32]byte) []byte {
	if k == ([32]byte{}) {
		return nil
	}
	return k[:]
}

func optHashes(hs *[][32]byte) []byte {
	if hs == nil {
		return nil
	}
	return joinHashes(*hs)
}

func optRetired(m *uint8) *int16 {
	if m == nil {
		return nil
	}
	v := int16(*m)
	return &v
}

func optClassKey(k *[32]byte) []byte {
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
