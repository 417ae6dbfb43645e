package sqlite

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/identity"
)

// TestIssuanceQueryPlans: the statements each certificate's write adds
// (issue 10) search an index; none scans the certificates of every
// device.
func TestIssuanceQueryPlans(t *testing.T) {
	s := openFile(t)
	defer s.Close()
	id := make([]byte, 32)
	for _, c := range []struct {
		q    string
		args []any
	}{
		{countRecentCerts, []any{id, int64(0)}},
		{supersedeCerts, []any{int64(0), id}},
		{selectKeyHolder, []any{id}},
	} {
		plan := queryPlan(t, s, c.q, c.args)
		if !strings.Contains(plan, "SEARCH") || strings.Contains(plan, "SCAN") {
			t.Errorf("%s\nplan: %s; want an index search", c.q, plan)
		}
	}
}

// TestMigrationSupersedesOlderCertificates: a database from before
// migration 0004 may hold several current certificates per device; the
// migration keeps each device's newest current and supersedes the rest.
func TestMigrationSupersedesOlderCertificates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "registry.db")
	ms, err := loadMigrations(migrationFiles, migrationsDir)
	if err != nil {
		t.Fatal(err)
	}
	db := rawDB(t, path)
	if err := migrate(t.Context(), db, ms[:3]); err != nil {
		t.Fatal(err)
	}
	dev := identity.ID{7}
	// The parents a device row references: migration 0005 checks them.
	station := make([]byte, 32)
	for _, q := range []string{
		`INSERT INTO stations (id, name, algorithm, public_key, created_at) VALUES (?, 's', 'ed25519', x'00', 0)`,
		`INSERT INTO products (id, name, cert_validity, cloud_endpoint, created_at) VALUES ('p', 'p', 1, '', 0)`,
		`INSERT INTO batches (id, station_id, product_id, manifest_digest, device_count, imported_at)
			VALUES ('b', ?, 'p', zeroblob(32), 1, 0)`,
	} {
		var args []any
		if strings.Contains(q, "?") {
			args = []any{station}
		}
		if _, err := db.Exec(q, args...); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Exec(`INSERT INTO devices (identity, algorithm, public_key, root_of_trust, injection, batch_id,
		station_id, product_id, state, created_at) VALUES (?, 'ed25519', x'00', 'puf', 'none', 'b', ?, 'p', 'onboarded', 0)`, dev[:], station); err != nil {
		t.Fatal(err)
	}
	// Two issued in the same microsecond: the later recorded is newer.
	for i, issued := range []int64{1, 3, 2, 3} {
		if _, err := db.Exec(`INSERT INTO certificates (serial, identity, not_before, not_after, der, issued_at)
			VALUES (?, ?, 0, 10, x'00', ?)`, append(make([]byte, 15), byte(i)), dev[:], issued); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
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
