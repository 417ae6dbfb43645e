package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// Stations, products and tokens: small tables written by administrators.

const stationColumns = `id, name, algorithm, public_key, created_at`

// CreateStation registers a station; a taken ID is store.ErrExists.
func (s *Store) CreateStation(ctx context.Context, st store.Station) error {
	const q = `INSERT INTO stations (` + stationColumns + `) VALUES ($1, $2, $3, $4, $5)`
	_, err := s.pool.Exec(ctx, q, st.ID[:], st.Name, string(st.Algorithm), st.PublicKey, st.CreatedAt)
	if isKeyTaken(err) {
		return fmt.Errorf("postgres: create station %s: %w", st.ID, store.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("postgres: create station %s: %w", st.ID, err)
	}
	return nil
}

// GetStation returns one station or store.ErrNotFound.
func (s *Store) GetStation(ctx context.Context, id identity.ID) (store.Station, error) {
	const q = `SELECT ` + stationColumns + ` FROM stations WHERE id = $1`
	st, err := scanStation(s.pool.QueryRow(ctx, q, id[:]))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Station{}, fmt.Errorf("postgres: station %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Station{}, fmt.Errorf("postgres: get station %s: %w", id, err)
	}
	return st, nil
}

// ListStations returns every station, by name (bytewise: the column is
// COLLATE "C") and then ID.
func (s *Store) ListStations(ctx context.Context) ([]store.Station, error) {
	const q = `SELECT ` + stationColumns + ` FROM stations ORDER BY name, id`
	list, err := queryAll(ctx, s.pool, q, nil, scanStation)
	if err != nil {
		return nil, fmt.Errorf("postgres: list stations: %w", err)
	}
	return list, nil
}

func scanStation(row pgx.Row) (store.Station, error) {
	var st store.Station
	var id []byte
	var alg string
	if err := row.Scan(&id, &st.Name, &alg, &st.PublicKey, &st.CreatedAt); err != nil {
		return store.Station{}, err
	}
	st.Algorithm = sigalg.ID(alg)
	st.CreatedAt = st.CreatedAt.UTC()
	return st, fixed(st.ID[:], id, "station ID")
}

const productColumns = `id, name, cert_validity, cloud_endpoint, created_at, renewal_window, heartbeat_interval, min_firmware_version,
	firmware_roots, firmware_retired, firmware_class_key, issuing_ca, require_locked, allocation, allocation_secret`

// CreateProduct adds a product; a taken ID is store.ErrExists.
func (s *Store) CreateProduct(ctx context.Context, p store.Product) error {
	policy, secret, err := store.AllocationColumns(p.Allocation)
	if err != nil {
		return fmt.Errorf("postgres: create product %q: %w", p.ID, err)
	}
	const q = `INSERT INTO products (` + productColumns + `) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`
	_, err = s.pool.Exec(ctx, q, p.ID, p.Name, int64(p.CertValidity), p.CloudEndpoint, p.CreatedAt, int64(p.RenewalWindow),
		int64(p.HeartbeatInterval), p.MinFirmwareVersion, joinHashes(p.Firmware.Roots), int16(p.Firmware.Retired), classKey(p.Firmware.ClassKey), p.IssuingCA, p.RequireLocked,
		policy, secret)
	if isKeyTaken(err) {
		return fmt.Errorf("postgres: create product %q: %w", p.ID, store.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("postgres: create product %q: %w", p.ID, err)
	}
	return nil
}

// GetProduct returns one product or store.ErrNotFound.
func (s *Store) GetProduct(ctx context.Context, id string) (store.Product, error) {
	const q = `SELECT ` + productColumns + ` FROM products WHERE id = $1`
	p, err := scanProduct(s.pool.QueryRow(ctx, q, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Product{}, fmt.Errorf("postgres: product %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Product{}, fmt.Errorf("postgres: get product %q: %w", id, err)
	}
	return p, nil
}

// ListProducts returns every product, by ID (bytewise).
func (s *Store) ListProducts(ctx context.Context) ([]store.Product, error) {
	const q = `SELECT ` + productColumns + ` FROM products ORDER BY id`
	list, err := queryAll(ctx, s.pool, q, nil, scanProduct)
	if err != nil {
		return nil, fmt.Errorf("postgres: list products: %w", err)
	}
	return list, nil
}

// UpdateProduct changes the fields u sets, in one statement.
func (s *Store) UpdateProduct(ctx context.Context, id string, u store.ProductUpdate) (store.Product, error) {
	const q = `UPDATE products SET renewal_window = coalesce($1, renewal_window),
		heartbeat_interval = coalesce($2, heartbeat_interval), min_firmware_version = coalesce($3, min_firmware_version),
		firmware_roots = coalesce($4, firmware_roots), firmware_retired = coalesce($5, firmware_retired),
		firmware_class_key = CASE WHEN $6 THEN $7 ELSE firmware_class_key END, issuing_ca = coalesce($8, issuing_ca),
		require_locked = coalesce($10, require_locked)
		WHERE id = $9 RETURNING ` + productColumns
	p, err := scanProduct(s.pool.QueryRow(ctx, q, optDuration(u.RenewalWindow), optDuration(u.HeartbeatInterval),
		u.MinFirmwareVersion, optHashes(u.FirmwareRoots), optRetired(u.FirmwareRetired), u.FirmwareClassKey != nil, optClassKey(u.FirmwareClassKey), u.IssuingCA, id, u.RequireLocked))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Product{}, fmt.Errorf("postgres: product %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Product{}, fmt.Errorf("postgres: update product %q: %w", id, err)
	}
	return p, nil
}

// optDuration is d in nanoseconds, or NULL.
func optDuration(d *time.Duration) *int64 {
	if d == nil {
		return nil
	}
	n := int64(*d)
	return &n
}

func scanProduct(row pgx.Row) (store.Product, error) {
	var p store.Product
	var validity, window, heartbeat int64
	var retired int16
	var roots, class, secret []byte
	var policy *string
	if err := row.Scan(&p.ID, &p.Name, &validity, &p.CloudEndpoint, &p.CreatedAt, &window, &heartbeat, &p.MinFirmwareVersion,
		&roots, &retired, &class, &p.IssuingCA, &p.RequireLocked, &policy, &secret); err != nil {
		return store.Product{}, err
	}
	var err error
	if p.Allocation, err = store.AllocationFromColumns(policy, secret); err != nil {
		return store.Product{}, err
	}
	if err := scanFirmwarePolicy(&p.Firmware, roots, int64(retired), class); err != nil {
		return store.Product{}, err
	}
	p.HeartbeatInterval = time.Duration(heartbeat)
	p.CertValidity = time.Duration(validity)
	p.RenewalWindow = time.Duration(window)
	p.CreatedAt = p.CreatedAt.UTC()
	return p, nil
}

const tokenColumns = `id, name, hash, scopes, created_at, expires_at, revoked_at`

// CreateToken stores a token (its hash, never the secret); a taken ID is
// store.ErrExists.
func (s *Store) CreateToken(ctx context.Context, t store.Token) error {
	scopes := t.Scopes
	if scopes == nil {
		scopes = []string{} // NOT NULL: an empty array, not NULL
	}
	const q = `INSERT INTO tokens (` + tokenColumns + `) VALUES ($1, $2, $3, $4, $5, $6, $7)`
	_, err := s.pool.Exec(ctx, q, t.ID, t.Name, t.Hash[:], scopes,
		t.CreatedAt, nullTime(t.ExpiresAt), nullTime(t.RevokedAt))
	if isKeyTaken(err) {
		return fmt.Errorf("postgres: create token %q: %w", t.ID, store.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("postgres: create token %q: %w", t.ID, err)
	}
	return nil
}

// GetToken returns one token or store.ErrNotFound.
func (s *Store) GetToken(ctx context.Context, id string) (store.Token, error) {
	const q = `SELECT ` + tokenColumns + ` FROM tokens WHERE id = $1`
	t, err := scanToken(s.pool.QueryRow(ctx, q, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Token{}, fmt.Errorf("postgres: token %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Token{}, fmt.Errorf("postgres: get token %q: %w", id, err)
	}
	return t, nil
}

// ListTokens returns every token, by ID (bytewise).
func (s *Store) ListTokens(ctx context.Context) ([]store.Token, error) {
	const q = `SELECT ` + tokenColumns + ` FROM tokens ORDER BY id`
	list, err := queryAll(ctx, s.pool, q, nil, scanToken)
	if err != nil {
		return nil, fmt.Errorf("postgres: list tokens: %w", err)
	}
	return list, nil
}

// RevokeToken marks a token revoked at the given time. Revoking a revoked
// token keeps the first time; an unknown one is store.ErrNotFound.
func (s *Store) RevokeToken(ctx context.Context, id string, at time.Time) error {
	const q = `UPDATE tokens SET revoked_at = coalesce(revoked_at, $1) WHERE id = $2`
	tag, err := s.pool.Exec(ctx, q, at, id)
	if err != nil {
		return fmt.Errorf("postgres: revoke token %q: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: revoke token %q: %w", id, store.ErrNotFound)
	}
	return nil
}

func scanToken(row pgx.Row) (store.Token, error) {
	var t store.Token
	var hash []byte
	var expires, revoked *time.Time
	if err := row.Scan(&t.ID, &t.Name, &hash, &t.Scopes, &t.CreatedAt, &expires, &revoked); err != nil {
		return store.Token{}, err
	}
	if len(t.Scopes) == 0 {
		t.Scopes = nil
	}
	t.CreatedAt = t.CreatedAt.UTC()
	t.ExpiresAt = fromNullTime(expires)
	t.RevokedAt = fromNullTime(revoked)
	return t, fixed(t.Hash[:], hash, "token hash")
}

// SetAllocation replaces a product's allocation policy (store.Allocations).
func (s *Store) SetAllocation(ctx context.Context, id string, a store.Allocation, endpoint string) (store.Product, error) {
	policy, secret, err := store.AllocationColumns(a)
	if err != nil {
		return store.Product{}, fmt.Errorf("postgres: set allocation of product %q: %w", id, err)
	}
	const q = `UPDATE products SET allocation = $1, allocation_secret = $2, cloud_endpoint = $3 WHERE id = $4 RETURNING ` + productColumns
	p, err := scanProduct(s.pool.QueryRow(ctx, q, policy, secret, endpoint, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Product{}, fmt.Errorf("postgres: product %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Product{}, fmt.Errorf("postgres: set allocation of product %q: %w", id, err)
	}
	return p, nil
}
