package postgres

import (
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hallmark-iot/hallmark/internal/identity"
)

// TestMigrationSupersedesOlderCertificates: a database from before
// migration 0005 may hold several current certificates per device; the
// migration keeps each device's newest current and supersedes the rest.
func TestMigrationSupersedesOlderCertificates(t *testing.T) {
	u := newDatabase(t)
	ms, err := loadMigrations(migrationFiles, migrationsDir)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.New(t.Context(), u)
	if err != nil {
		t.Fatal(err)
	}
	if err := migrate(t.Context(), pool, ms[:4]); err != nil {
		t.Fatal(err)
	}
	dev := identity.ID{7}
	for _, q := range []string{
		`INSERT INTO stations VALUES ('\x` + hex32 + `', 's', 'ed25519', '\x00', now())`,
		`INSERT INTO products VALUES ('p', 'P', 1, 'mqtts://x', now())`,
		`INSERT INTO batches VALUES ('b', '\x` + hex32 + `', 'p', '\x` + hex32 + `', 1, now())`,
	} {
		if _, err := pool.Exec(t.Context(), q); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pool.Exec(t.Context(), `INSERT INTO devices (identity, algorithm, public_key, root_of_trust, injection, batch_id,
		station_id, product_id, state, created_at) VALUES ($1, 'ed25519', '\x00', 'puf', 'none', 'b', '\x00', 'p', 'onboarded', now())`, dev[:]); err != nil {
		t.Fatal(err)
	}
	// Two issued at the same time: the later recorded is newer.
	for i, issued := range []int{1, 3, 2, 3} {
		if _, err := pool.Exec(t.Context(), `INSERT INTO certificates (serial, identity, not_before, not_after, der, issued_at)
			VALUES ($1, $2, now(), now(), '\x00', to_timestamp($3))`, append(make([]byte, 15), byte(i)), dev[:], issued); err != nil {
			t.Fatal(err)
		}
	}
	pool.Close()
	s := openURL(t, u)
	certs, err := s.ListCertificates(t.Context(), dev)
	if err != nil || len(certs) != 4 {
		t.Fatalf("ListCertificates = %d, %v", len(certs), err)
	}
	for i, c := range certs {
		if (i == 0) != c.SupersededAt.IsZero() || c.KeyHash != ([32]byte{}) {
			t.Errorf("certificate %x (newest first: %d): superseded at %v", c.Serial[15], i, c.SupersededAt)
		}
	}
	if certs[0].Serial[15] != 3 {
		t.Errorf("the current certificate is %d, want the last recorded of the newest", certs[0].Serial[15])
	}
}

// hex32 is 32 zero bytes in bytea's hex form.
const hex32 = "0000000000000000000000000000000000000000000000000000000000000000"
