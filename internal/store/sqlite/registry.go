package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// Stations, products and tokens: small tables written by administrators.

const stationColumns = `id, name, algorithm, public_key, created_at`

// CreateStation registers a station; a taken ID is store.ErrExists.
func (s *Store) CreateStation(ctx context.Context, st store.Station) error {
	const q = `INSERT INTO stations (` + stationColumns + `) VALUES (?, ?, ?, ?, ?)`
	_, err := s.writer.ExecContext(ctx, q, st.ID[:], st.Name, string(st.Algorithm), st.PublicKey, micros(st.CreatedAt))
	if isKeyTaken(err) {
		return fmt.Errorf("sqlite: create station %s: %w", st.ID, store.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("sqlite: create station %s: %w", st.ID, err)
	}
	return nil
}

// GetStation returns one station or store.ErrNotFound.
func (s *Store) GetStation(ctx context.Context, id identity.ID) (store.Station, error) {
	const q = `SELECT ` + stationColumns + ` FROM stations WHERE id = ?`
	st, err := scanStation(s.reader.QueryRowContext(ctx, q, id[:]))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Station{}, fmt.Errorf("sqlite: station %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Station{}, fmt.Errorf("sqlite: get station %s: %w", id, err)
	}
	return st, nil
}

// ListStations returns every station, by name and then ID.
func (s *Store) ListStations(ctx context.Context) ([]store.Station, error) {
	const q = `SELECT ` + stationColumns + ` FROM stations ORDER BY name, id`
	list, err := queryAll(ctx, s.reader, q, nil, scanStation)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list stations: %w", err)
	}
	return list, nil
}

func scanStation(row scanner) (store.Station, error) {
	var st store.Station
	var id []byte
	var alg string
	var created int64
	if err := row.Scan(&id, &st.Name, &alg, &st.PublicKey, &created); err != nil {
		return store.Station{}, err
	}
	st.Algorithm = sigalg.ID(alg)
	st.CreatedAt = fromMicros(created)
	return st, fixed(st.ID[:], id, "station ID")
}

const productColumns = `id, name, cert_validity, cloud_endpoint, created_at, renewal_window, heartbeat_interval, min_firmware_version,
	firmware_roots, firmware_retired, firmware_class_key, issuing_ca, require_locked, allocation, allocation_secret`

// CreateProduct adds a product; a taken ID is store.ErrExists.
func (s *Store) CreateProduct(ctx context.Context, p store.Product) error {
	policy, secret, err := store.AllocationColumns(p.Allocation)
	if err != nil {
		return fmt.Errorf("sqlite: create product %q: %w", p.ID, err)
	}
	const q = `INSERT INTO products (` + productColumns + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	_, err = s.writer.ExecContext(ctx, q, p.ID, p.Name, int64(p.CertValidity), p.CloudEndpoint, micros(p.CreatedAt), int64(p.RenewalWindow),
		int64(p.HeartbeatInterval), p.MinFirmwareVersion, joinHashes(p.Firmware.Roots), int64(p.Firmware.Retired), classKey(p.Firmware.ClassKey), p.IssuingCA, p.RequireLocked,
		policy, secret)
	if isKeyTaken(err) {
		return fmt.Errorf("sqlite: create product %q: %w", p.ID, store.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("sqlite: create product %q: %w", p.ID, err)
	}
	return nil
}

// GetProduct returns one product or store.ErrNotFound.
func (s *Store) GetProduct(ctx context.Context, id string) (store.Product, error) {
	const q = `SELECT ` + productColumns + ` FROM products WHERE id = ?`
	p, err := scanProduct(s.reader.QueryRowContext(ctx, q, id))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Product{}, fmt.Errorf("sqlite: product %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Product{}, fmt.Errorf("sqlite: get product %q: %w", id, err)
	}
	return p, nil
}

// ListProducts returns every product, by ID.
func (s *Store) ListProducts(ctx context.Context) ([]store.Product, error) {
	const q = `SELECT ` + productColumns + ` FROM products ORDER BY id`
	list, err := queryAll(ctx, s.reader, q, nil, scanProduct)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list products: %w", err)
	}
	return list, nil
}

// UpdateProduct changes the fields u sets, in one statement.
func (s *Store) UpdateProduct(ctx context.Context, id string, u store.ProductUpdate) (store.Product, error) {
	const q = `UPDATE products SET renewal_window = coalesce(?, renewal_window),
		heartbeat_interval = coalesce(?, heartbeat_interval), min_firmware_version = coalesce(?, min_firmware_version),
		firmware_roots = coalesce(?, firmware_roots), firmware_retired = coalesce(?, firmware_retired),
		firmware_class_key = CASE WHEN ? THEN ? ELSE firmware_class_key END, issuing_ca = coalesce(?, issuing_ca),
		require_locked = coalesce(?, require_locked)
		WHERE id = ? RETURNING ` + productColumns
	p, err := scanProduct(s.writer.QueryRowContext(ctx, q, optDuration(u.RenewalWindow), optDuration(u.HeartbeatInterval),
		u.MinFirmwareVersion, optHashes(u.FirmwareRoots), optRetired(u.FirmwareRetired), u.FirmwareClassKey != nil, optClassKey(u.FirmwareClassKey), u.IssuingCA, u.RequireLocked, id))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Product{}, fmt.Errorf("sqlite: product %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Product{}, fmt.Errorf("sqlite: update product %q: %w", id, err)
	}
	return p, nil
}

// optDuration is d in nanoseconds, or NULL.
func optDuration(d *time.Duration) any {
	if d == nil {
		return nil
	}
	return int64(*d)
}

func scanProduct(row scanner) (store.Product, error) {
	var p store.Product
	var validity, created, window, heartbeat, retired int64
	var roots, class, secret []byte
	var policy *string
	if err := row.Scan(&p.ID, &p.Name, &validity, &p.CloudEndpoint, &created, &window, &heartbeat, &p.MinFirmwareVersion,
		&roots, &retired, &class, &p.IssuingCA, &p.RequireLocked, &policy, &secret); err != nil {
		return store.Product{}, err
	}
	var err error
	if p.Allocation, err = store.AllocationFromColumns(policy, secret); err != nil {
		return store.Product{}, err
	}
	if err := scanFirmwarePolicy(&p.Firmware, roots, retired, class); err != nil {
		return store.Product{}, err
	}
	p.HeartbeatInterval = time.Duration(heartbeat)
	p.CertValidity = time.Duration(validity)
	p.RenewalWindow = time.Duration(window)
	p.CreatedAt = fromMicros(created)
	return p, nil
}

const tokenColumns = `id, name, hash, scopes, created_at, expires_at, revoked_at`

// CreateToken stores a token (its hash, never the secret); a taken ID is
// store.ErrExists.
func (s *Store) CreateToken(ctx context.Context, t store.Token) error {
	scopes, err := json.Marshal(nonNil(t.Scopes))
	if err != nil {
		return fmt.Errorf("sqlite: create token %q: %w", t.ID, err)
	}
	const q = `INSERT INTO tokens (` + tokenColumns + `) VALUES (?, ?, ?, ?, ?, ?, ?)`
	_, err = s.writer.ExecContext(ctx, q, t.ID, t.Name, t.Hash[:], string(scopes),
		micros(t.CreatedAt), nullMicros(t.ExpiresAt), nullMicros(t.RevokedAt))
	if isKeyTaken(err) {
		return fmt.Errorf("sqlite: create token %q: %w", t.ID, store.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("sqlite: create token %q: %w", t.ID, err)
	}
	return nil
}

// GetToken returns one token or store.ErrNotFound.
func (s *Store) GetToken(ctx context.Context, id string) (store.Token, error) {
	const q = `SELECT ` + tokenColumns + ` FROM tokens WHERE id = ?`
	t, err := scanToken(s.reader.QueryRowContext(ctx, q, id))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Token{}, fmt.Errorf("sqlite: token %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Token{}, fmt.Errorf("sqlite: get token %q: %w", id, err)
	}
	return t, nil
}

// ListTokens returns every token, by ID.
func (s *Store) ListTokens(ctx context.Context) ([]store.Token, error) {
	const q = `SELECT ` + tokenColumns + ` FROM tokens ORDER BY id`
	list, err := queryAll(ctx, s.reader, q, nil, scanToken)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list tokens: %w", err)
	}
	return list, nil
}

// RevokeToken marks a token revoked at the given time. Revoking a revoked
// token keeps the first time; an unknown one is store.ErrNotFound.
func (s *Store) RevokeToken(ctx context.Context, id string, at time.Time) error {
	const q = `UPDATE tokens SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?`
	res, err := s.writer.ExecContext(ctx, q, micros(at), id)
	if err != nil {
		return fmt.Errorf("sqlite: revoke token %q: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return fmt.Errorf("sqlite: revoke token %q: %w", id, errors.Join(store.ErrNotFound, err))
	}
	return nil
}

func scanToken(row scanner) (store.Token, error) {
	var t store.Token
	var hash []byte
	var scopes string
	var created int64
	var expires, revoked sql.NullInt64
	if err := row.Scan(&t.ID, &t.Name, &hash, &scopes, &created, &expires, &revoked); err != nil {
		return store.Token{}, err
	}
	if err := json.Unmarshal([]byte(scopes), &t.Scopes); err != nil {
		return store.Token{}, fmt.Errorf("stored scopes: %w", err)
	}
	if len(t.Scopes) == 0 {
		t.Scopes = nil
	}
	t.CreatedAt = fromMicros(created)
	t.ExpiresAt = fromNullMicros(expires)
	t.RevokedAt = fromNullMicros(revoked)
	return t, fixed(t.Hash[:], hash, "token hash")
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// queryer is what *sql.DB and *sql.Tx have in common for reads.
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// queryAll runs q and scans every row with scan.
func queryAll[T any](ctx context.Context, db queryer, q string, args []any, scan func(scanner) (T, error)) ([]T, error) {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var list []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		list = append(list, v)
	}
	return list, rows.Err()
}

// SetAllocation replaces a product's allocation policy (store.Allocations).
func (s *Store) SetAllocation(ctx context.Context, id string, a store.Allocation, endpoint string) (store.Product, error) {
	policy, secret, err := store.AllocationColumns(a)
	if err != nil {
		return store.Product{}, fmt.Errorf("sqlite: set allocation of product %q: %w", id, err)
	}
	const q = `UPDATE products SET allocation = ?, allocation_secret = ?, cloud_endpoint = ? WHERE id = ? RETURNING ` + productColumns
	p, err := scanProduct(s.writer.QueryRowContext(ctx, q, policy, secret, endpoint, id))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Product{}, fmt.Errorf("sqlite: product %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Product{}, fmt.Errorf("sqlite: set allocation of product %q: %w", id, err)
	}
	return p, nil
}
