package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// errDuplicates makes inTx roll an import back when devices are taken; the
// caller reports them as a result, not an error.
var errDuplicates = errors.New("duplicate identities")

const batchColumns = `id, station_id, product_id, manifest_digest, device_count, imported_at`

// ImportBatch registers a batch and its devices in one transaction. Each
// device takes BatchID, StationID, ProductID and CreatedAt (ImportedAt)
// from the batch and starts registered; DeviceCount is len(devices). An
// unknown station or product is store.ErrNotFound.
//
// The devices go to the server with COPY into a temporary table, then
// into devices with one INSERT ... SELECT ... ON CONFLICT DO NOTHING: a
// million devices cost one round trip's worth of statements, not a
// million. Fewer rows inserted than sent means duplicates, which one more
// query over the temporary table lists; the transaction is then rolled
// back.
func (s *Store) ImportBatch(ctx context.Context, b store.Batch, devices []store.Device) (store.ImportResult, error) {
	var res store.ImportResult
	b.DeviceCount = len(devices)
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		res = store.ImportResult{}
		done, err := insertBatch(ctx, tx, b)
		if err != nil || done {
			res.AlreadyImported = done
			return err
		}
		dups, err := insertDevices(ctx, tx, b, devices)
		if err != nil {
			return err
		}
		if len(dups) > 0 {
			res.Duplicates = dups
			return errDuplicates
		}
		res.Imported = len(devices)
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

// insertBatch inserts the batch row, or reports done when the same batch
// with the same digest is there already. ON CONFLICT DO NOTHING waits for
// a concurrent import of the same batch to end, so of two replicas
// importing one manifest at once, one imports it and the other sees it
// imported, instead of failing on the primary key.
func insertBatch(ctx context.Context, tx pgx.Tx, b store.Batch) (done bool, err error) {
	const q = `SELECT ` + batchColumns + ` FROM batches WHERE id = $1`
	prior, err := scanBatch(tx.QueryRow(ctx, q, b.ID))
	if err == nil {
		return sameBatch(prior, b)
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return false, fmt.Errorf("read batch: %w", err)
	}
	if err := checkBatchRefs(ctx, tx, b); err != nil {
		return false, err
	}
	const insert = `INSERT INTO batches (` + batchColumns + `) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (id) DO NOTHING`
	tag, err := tx.Exec(ctx, insert, b.ID, b.StationID[:], b.ProductID, b.ManifestDigest[:], b.DeviceCount, b.ImportedAt)
	if err != nil {
		return false, fmt.Errorf("insert batch: %w", err)
	}
	if tag.RowsAffected() == 1 {
		return false, nil
	}
	// A concurrent import committed the batch first; this statement's
	// snapshot, newer than the first SELECT's, sees it.
	prior, err = scanBatch(tx.QueryRow(ctx, q, b.ID))
	if err != nil {
		return false, fmt.Errorf("read batch: %w", err)
	}
	return sameBatch(prior, b)
}

func sameBatch(prior, b store.Batch) (bool, error) {
	if prior.ManifestDigest == b.ManifestDigest {
		return true, nil
	}
	return false, fmt.Errorf("batch was imported before from another manifest: %w", store.ErrConflict)
}

func checkBatchRefs(ctx context.Context, tx pgx.Tx, b store.Batch) error {
	var station, product bool
	const q = `SELECT EXISTS (SELECT 1 FROM stations WHERE id = $1), EXISTS (SELECT 1 FROM products WHERE id = $2)`
	if err := tx.QueryRow(ctx, q, b.StationID[:], b.ProductID).Scan(&station, &product); err != nil {
		return fmt.Errorf("check station and product: %w", err)
	}
	if !station {
		return fmt.Errorf("station %s: %w", b.StationID, store.ErrNotFound)
	}
	if !product {
		return fmt.Errorf("product %q: %w", b.ProductID, store.ErrNotFound)
	}
	return nil
}

// Statements on the temporary table run in exec mode: the table is
// created and dropped with every import, so a statement prepared against
// one import's table must not be cached for the next.
const (
	createStaging = `CREATE TEMPORARY TABLE import_devices (
		ord           integer NOT NULL,
		identity      bytea   NOT NULL,
		algorithm     text    NOT NULL,
		public_key    bytea   NOT NULL,
		root_of_trust text    NOT NULL,
		injection     text    NOT NULL,
		locks         text    NOT NULL
	) ON COMMIT DROP`

	// The staging table was filled in identity order, and a fresh heap's
	// sequential scan returns rows in the order they were written: every
	// device index (each ends in identity, and a batch has one product,
	// station and state) is then written in key order, and two imports with
	// devices in common lock them in the same order, so they wait for each
	// other instead of deadlocking. Were the order ever lost, imports would
	// be slower and a deadlock possible, which inTx retries. Sorting here
	// instead (ORDER BY identity) measured slower: a million rows spill the
	// sort to disk.
	insertFromStaging = `INSERT INTO devices (identity, algorithm, public_key, root_of_trust, injection,
			batch_id, station_id, product_id, state, created_at, locks)
		SELECT identity, algorithm, public_key, root_of_trust, injection, $1::text, $2::bytea, $3::text, 'registered', $4::timestamptz, locks
		FROM import_devices
		ON CONFLICT (identity) DO NOTHING`

	// A device is a duplicate at the first position where a sequential
	// reader would notice: its first occurrence when another batch holds
	// it, its second when only the import repeats it. Devices of this
	// batch were inserted by this transaction a moment ago.
	findDuplicates = `SELECT identity FROM (
			SELECT identity, ord, row_number() OVER (PARTITION BY identity ORDER BY ord) AS occurrence
			FROM import_devices
		) s
		WHERE occurrence > 1
			OR EXISTS (SELECT 1 FROM devices d WHERE d.identity = s.identity AND d.batch_id <> $1::text)
		GROUP BY identity ORDER BY min(ord)`
)

// insertDevices copies devices into a temporary table and inserts them
// from there, returning the duplicates, each once in input order.
func insertDevices(ctx context.Context, tx pgx.Tx, b store.Batch, devices []store.Device) ([]identity.ID, error) {
	if len(devices) == 0 {
		return nil, nil
	}
	if _, err := tx.Exec(ctx, createStaging, pgx.QueryExecModeExec); err != nil {
		return nil, fmt.Errorf("create staging table: %w", err)
	}
	columns := []string{"ord", "identity", "algorithm", "public_key", "root_of_trust", "injection", "locks"}
	order := make([]int32, len(devices))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortStableFunc(order, func(a, b int32) int {
		return bytes.Compare(devices[a].Identity[:], devices[b].Identity[:])
	})
	n, err := tx.CopyFrom(ctx, pgx.Identifier{"import_devices"}, columns, &deviceRows{devices: devices, order: order, i: -1})
	if err != nil {
		return nil, fmt.Errorf("copy devices: %w", err)
	}
	if n != int64(len(devices)) {
		return nil, fmt.Errorf("copy devices: copied %d of %d", n, len(devices))
	}
	tag, err := tx.Exec(ctx, insertFromStaging, pgx.QueryExecModeExec, b.ID, b.StationID[:], b.ProductID, b.ImportedAt)
	if err != nil {
		return nil, fmt.Errorf("insert devices: %w", err)
	}
	if tag.RowsAffected() == int64(len(devices)) {
		return nil, nil
	}
	rows, err := tx.Query(ctx, findDuplicates, pgx.QueryExecModeExec, b.ID)
	if err != nil {
		return nil, fmt.Errorf("find duplicates: %w", err)
	}
	dups, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (identity.ID, error) {
		var raw []byte
		var id identity.ID
		if err := row.Scan(&raw); err != nil {
			return id, err
		}
		return id, fixed(id[:], raw, "identity")
	})
	if err != nil {
		return nil, fmt.Errorf("find duplicates: %w", err)
	}
	if len(dups) == 0 {
		return nil, fmt.Errorf("inserted %d of %d devices, but found no duplicate", tag.RowsAffected(), len(devices))
	}
	return dups, nil
}

// deviceRows feeds devices to CopyFrom one row at a time, in the given
// order, without copying them into [][]any first: a million rows would
// take that much memory again.
type deviceRows struct {
	devices []store.Device
	order   []int32 // positions in devices
	i       int
	row     [7]any
}

func (r *deviceRows) Next() bool {
	r.i++
	return r.i < len(r.order)
}

func (r *deviceRows) Values() ([]any, error) {
	pos := r.order[r.i]
	d := &r.devices[pos]
	r.row = [7]any{pos, d.Identity[:], string(d.Algorithm), d.PublicKey, d.RootOfTrust, d.Injection, d.Locks}
	return r.row[:], nil
}

func (r *deviceRows) Err() error { return nil }

// GetBatch returns one batch or store.ErrNotFound.
func (s *Store) GetBatch(ctx context.Context, id string) (store.Batch, error) {
	const q = `SELECT ` + batchColumns + ` FROM batches WHERE id = $1`
	b, err := scanBatch(s.pool.QueryRow(ctx, q, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Batch{}, fmt.Errorf("postgres: batch %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Batch{}, fmt.Errorf("postgres: get batch %q: %w", id, err)
	}
	return b, nil
}

func scanBatch(row pgx.Row) (store.Batch, error) {
	var b store.Batch
	var station, digest []byte
	if err := row.Scan(&b.ID, &station, &b.ProductID, &digest, &b.DeviceCount, &b.ImportedAt); err != nil {
		return store.Batch{}, err
	}
	b.ImportedAt = b.ImportedAt.UTC()
	if err := fixed(b.StationID[:], station, "station ID"); err != nil {
		return store.Batch{}, err
	}
	return b, fixed(b.ManifestDigest[:], digest, "manifest digest")
}

const deviceColumns = `identity, algorithm, public_key, root_of_trust, injection, batch_id,
	station_id, product_id, state, created_at, onboarded_at, revoked_at, revoke_note,
	state_changed_at, state_reason, locks, cloud_endpoint`

// GetDevice returns one device or store.ErrNotFound.
func (s *Store) GetDevice(ctx context.Context, id identity.ID) (store.Device, error) {
	const q = `SELECT ` + deviceColumns + ` FROM devices WHERE identity = $1`
	d, err := scanDevice(s.pool.QueryRow(ctx, q, id[:]))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Device{}, fmt.Errorf("postgres: device %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Device{}, fmt.Errorf("postgres: get device %s: %w", id, err)
	}
	return d, nil
}

// ListDevices returns one page of the devices f selects, ordered by
// identity bytes, starting after f.After.
func (s *Store) ListDevices(ctx context.Context, f store.DeviceFilter) ([]store.Device, error) {
	q, args, err := deviceQuery(f)
	if err != nil {
		return nil, fmt.Errorf("postgres: list devices: %w", err)
	}
	list, err := queryAll(ctx, s.pool, q, args, scanDevice)
	if err != nil {
		return nil, fmt.Errorf("postgres: list devices: %w", err)
	}
	return list, nil
}

// deviceQuery builds ListDevices' query with only the conditions f sets,
// so the planner can pick the one index (each ends in identity) that
// serves both the condition and the order. An identity prefix is a range
// of identities; a cloud state walks the devices' jobs instead
// (console.go).
func deviceQuery(f store.DeviceFilter) (string, []any, error) {
	if err := f.Validate(); err != nil {
		return "", nil, err
	}
	var where, idWhere []string
	var args []any
	add := func(cond string, arg any) {
		args = append(args, arg)
		where = append(where, cond+" $"+strconv.Itoa(len(args)))
	}
	addID := func(cond string, arg any) {
		args = append(args, arg)
		idWhere = append(idWhere, cond+" $"+strconv.Itoa(len(args)))
	}
	if f.State != "" {
		add("state =", string(f.State))
	}
	if f.ProductID != "" {
		add("product_id =", f.ProductID)
	}
	if f.BatchID != "" {
		add("batch_id =", f.BatchID)
	}
	if f.Algorithm != "" {
		add("algorithm =", string(f.Algorithm))
	}
	if f.RootOfTrust != "" {
		add("root_of_trust =", f.RootOfTrust)
	}
	if f.IdentityPrefix != "" {
		lo, hi, _ := store.IdentityPrefixRange(f.IdentityPrefix) // checked by Validate
		addID("identity >=", lo[:])
		addID("identity <=", hi[:])
	}
	if f.After != (identity.ID{}) {
		addID("identity >", f.After[:])
	}
	q := `SELECT ` + deviceColumns + ` FROM devices`
	if f.CloudState != "" {
		q = cloudStateQuery(f.CloudState, idWhere, where)
	} else if where = append(where, idWhere...); len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ") + ` ORDER BY identity`
	} else {
		q += ` ORDER BY identity`
	}
	args = append(args, store.PageLimit(f.Limit))
	q += ` LIMIT $` + strconv.Itoa(len(args))
	return q, args, nil
}

func scanDevice(row pgx.Row) (store.Device, error) {
	var d store.Device
	var endpoint *string
	var id, station []byte
	var alg, state string
	var onboarded, revoked, changed *time.Time
	err := row.Scan(&id, &alg, &d.PublicKey, &d.RootOfTrust, &d.Injection, &d.BatchID,
		&station, &d.ProductID, &state, &d.CreatedAt, &onboarded, &revoked, &d.RevokeNote, &changed, &d.StateReason, &d.Locks, &endpoint)
	if err != nil {
		return store.Device{}, err
	}
	d.Algorithm = sigalg.ID(alg)
	d.State = store.DeviceState(state)
	if endpoint != nil {
		d.CloudEndpoint = *endpoint
	}
	d.CreatedAt = d.CreatedAt.UTC()
	d.OnboardedAt = fromNullTime(onboarded)
	d.RevokedAt = fromNullTime(revoked)
	d.StateChangedAt = fromNullTime(changed)
	if err := fixed(d.Identity[:], id, "identity"); err != nil {
		return store.Device{}, err
	}
	return d, fixed(d.StationID[:], station, "station ID")
}

// AllocateEndpoint records a device's endpoint unless one is recorded
// (store.Allocations); one statement, so the first writer wins.
func (s *Store) AllocateEndpoint(ctx context.Context, id identity.ID, endpoint string) (string, error) {
	const q = `UPDATE devices SET cloud_endpoint = coalesce(cloud_endpoint, $1) WHERE identity = $2 RETURNING cloud_endpoint`
	var recorded string
	err := s.pool.QueryRow(ctx, q, endpoint, id[:]).Scan(&recorded)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("postgres: device %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("postgres: allocate endpoint of %s: %w", id, err)
	}
	return recorded, nil
}
