package sqlite

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/hallmark-iot/hallmark/internal/store"
)

// ImportBatchStream registers a batch whose devices arrive one at a time
// from src (store.Devices). SQLite has one writer: a write transaction
// kept open while a large manifest is still being verified (minutes for
// a million devices on two cores) would hold off every onboarding and
// every other write for as long. So the devices are read from src first,
// outside any transaction, and written by ImportBatch's one short
// transaction once src has ended cleanly. The import's memory is then
// that of the whole batch (docs/performance.md); PostgreSQL, with many
// writers, streams into its transaction instead.
func (s *Store) ImportBatchStream(ctx context.Context, b store.Batch, src store.DeviceSource) (store.ImportResult, error) {
	var devices []store.Device
	for {
		if err := ctx.Err(); err != nil {
			return store.ImportResult{}, fmt.Errorf("sqlite: import batch %q: %w", b.ID, err)
		}
		d, err := src.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return store.ImportResult{}, fmt.Errorf("sqlite: import batch %q: %w", b.ID, err)
		}
		devices = append(devices, d)
	}
	b.ManifestDigest = src.Digest()
	return s.ImportBatch(ctx, b, devices)
}
