package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// GetDeviceOfSuite returns the device if it is registered with suite alg,
// or store.ErrNotFound. The lookup goes through the (algorithm, identity)
// index, so a device of another suite misses in the index as an unknown
// identity does, and its row is never read.
func (s *Store) GetDeviceOfSuite(ctx context.Context, id identity.ID, alg sigalg.ID) (store.Device, error) {
	const q = `SELECT ` + deviceColumns + ` FROM devices INDEXED BY devices_by_algorithm WHERE algorithm = ? AND identity = ?`
	d, err := scanDevice(s.reader.QueryRowContext(ctx, q, string(alg), id[:]))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Device{}, fmt.Errorf("sqlite: device %s of %s: %w", id, alg, store.ErrNotFound)
	}
	if err != nil {
		return store.Device{}, fmt.Errorf("sqlite: get device %s: %w", id, err)
	}
	return d, nil
}
