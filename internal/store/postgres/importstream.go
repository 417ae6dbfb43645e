package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// ImportBatchStream registers a batch whose devices arrive one at a time
// from src: COPY reads them from src straight into the temporary table
// while src is still producing them, then one INSERT ... SELECT moves them
// into devices, as ImportBatch does. The transaction commits only after
// src ended cleanly, so a kill at any moment leaves the whole batch or
// none of it. It is not retried: src cannot be read twice.
func (s *Store) ImportBatchStream(ctx context.Context, b store.Batch, src store.DeviceSource) (store.ImportResult, error) {
	var res store.ImportResult
	b.DeviceCount = 0
	err := s.tryTx(ctx, func(tx pgx.Tx) error {
		done, err := insertBatch(ctx, tx, b)
		if err != nil && !errors.Is(err, store.ErrConflict) {
			return err
		}
		if done || err != nil {
			// The batch is there: only the whole manifest's digest says
			// whether it is this one.
			return sameStream(ctx, tx, b.ID, src, &res)
		}
		n, dups, err := insertDeviceStream(ctx, tx, b, src)
		if err != nil {
			return err
		}
		if len(dups) > 0 {
			res.Duplicates = dups
			return errDuplicates
		}
		digest := src.Digest()
		const seal = `UPDATE batches SET manifest_digest = $1, device_count = $2 WHERE id = $3`
		if _, err := tx.Exec(ctx, seal, digest[:], n, b.ID); err != nil {
			return fmt.Errorf("complete batch: %w", err)
		}
		res.Imported = n
		return nil
	})
	if errors.Is(err, errDuplicates) {
		return res, nil
	}
	if err != nil {
		return store.ImportResult{}, fmt.Errorf("postgres: import batch %q: %w", b.ID, err)
	}
	return res, nil
}

// sameStream reads src to its end and compares its digest with the
// stored batch's.
func sameStream(ctx context.Context, tx pgx.Tx, id string, src store.DeviceSource, res *store.ImportResult) error {
	for {
		_, err := src.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read devices: %w", err)
		}
	}
	prior, err := scanBatch(tx.QueryRow(ctx, `SELECT `+batchColumns+` FROM batches WHERE id = $1`, id))
	if err != nil {
		return fmt.Errorf("read batch: %w", err)
	}
	if prior.ManifestDigest != src.Digest() {
		return fmt.Errorf("batch was imported before from another manifest: %w", store.ErrConflict)
	}
	res.AlreadyImported = true
	return nil
}

// insertDeviceStream copies src's devices into the temporary table as
// they come and inserts them from there, returning how many src gave and
// the duplicates, each once in input order.
func insertDeviceStream(ctx context.Context, tx pgx.Tx, b store.Batch, src store.DeviceSource) (int, []identity.ID, error) {
	if _, err := tx.Exec(ctx, createStaging, pgx.QueryExecModeExec); err != nil {
		return 0, nil, fmt.Errorf("create staging table: %w", err)
	}
	columns := []string{"ord", "identity", "algorithm", "public_key", "root_of_trust", "injection", "locks"}
	rows := &streamRows{src: src}
	n, err := tx.CopyFrom(ctx, pgx.Identifier{"import_devices"}, columns, rows)
	if rows.err != nil {
		return 0, nil, fmt.Errorf("read devices: %w", rows.err)
	}
	if err != nil {
		return 0, nil, fmt.Errorf("copy devices: %w", err)
	}
	if n == 0 {
		return 0, nil, nil
	}
	tag, err := tx.Exec(ctx, insertStreamFromStaging, pgx.QueryExecModeExec, b.ID, b.StationID[:], b.ProductID, b.ImportedAt)
	if err != nil {
		return 0, nil, fmt.Errorf("insert devices: %w", err)
	}
	if tag.RowsAffected() == n {
		return int(n), nil, nil
	}
	dbRows, err := tx.Query(ctx, findDuplicates, pgx.QueryExecModeExec, b.ID)
	if err != nil {
		return 0, nil, fmt.Errorf("find duplicates: %w", err)
	}
	dups, err := pgx.CollectRows(dbRows, func(row pgx.CollectableRow) (identity.ID, error) {
		var raw []byte
		var id identity.ID
		if err := row.Scan(&raw); err != nil {
			return id, err
		}
		return id, fixed(id[:], raw, "identity")
	})
	if err != nil {
		return 0, nil, fmt.Errorf("find duplicates: %w", err)
	}
	if len(dups) == 0 {
		return 0, nil, fmt.Errorf("inserted %d of %d devices, but found no duplicate", tag.RowsAffected(), n)
	}
	return int(n), dups, nil
}

// insertStreamFromStaging is insertFromStaging for rows staged in the
// manifest's order, random as identities are hashes: the sort puts them in
// identity order, so that every device index is written in key order and
// two imports with devices in common lock them in the same order.
const insertStreamFromStaging = `INSERT INTO devices (identity, algorithm, public_key, root_of_trust, injection,
		batch_id, station_id, product_id, state, created_at, locks)
	SELECT identity, algorithm, public_key, root_of_trust, injection, $1::text, $2::bytea, $3::text, 'registered', $4::timestamptz, locks
	FROM import_devices ORDER BY identity
	ON CONFLICT (identity) DO NOTHING`

// streamRows feeds CopyFrom from a DeviceSource. An error of the source
// ends the COPY, which then fails and rolls the transaction back.
type streamRows struct {
	src store.DeviceSource
	ord int32
	d   store.Device
	err error
	row [7]any
}

func (r *streamRows) Next() bool {
	d, err := r.src.Next()
	if err != nil {
		if !errors.Is(err, io.EOF) {
			r.err = err
		}
		return false
	}
	r.ord++
	r.d = d
	return true
}

func (r *streamRows) Values() ([]any, error) {
	d := &r.d
	r.row = [7]any{r.ord, d.Identity[:], string(d.Algorithm), d.PublicKey, d.RootOfTrust, d.Injection, d.Locks}
	return r.row[:], nil
}

func (r *streamRows) Err() error { return r.err }
