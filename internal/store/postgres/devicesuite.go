package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// GetDeviceOfSuite returns the device if it is registered with suite alg,
// or store.ErrNotFound. The condition is in the query, so a device of
// another suite yields no row and none of its columns is decoded or sent:
// the miss costs about what an unknown identity's does (the server may
// still fetch the row to test the condition, well within network jitter).
func (s *Store) GetDeviceOfSuite(ctx context.Context, id identity.ID, alg sigalg.ID) (store.Device, error) {
	const q = `SELECT ` + deviceColumns + ` FROM devices WHERE identity = $1 AND algorithm = $2`
	d, err := scanDevice(s.pool.QueryRow(ctx, q, id[:], string(alg)))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Device{}, fmt.Errorf("postgres: device %s of %s: %w", id, alg, store.ErrNotFound)
	}
	if err != nil {
		return store.Device{}, fmt.Errorf("postgres: get device %s: %w", id, err)
	}
	return d, nil
}
