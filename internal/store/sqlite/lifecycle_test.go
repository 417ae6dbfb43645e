package sqlite

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// TestLifecycleMigrationKeepsData: migration 0005 rebuilds the devices
// table (certificates and jobs reference it) to admit the new states; the
// rows, their references and the foreign keys survive it, and a revoked
// device gets its revocation as its last transition.
func TestLifecycleMigrationKeepsData(t *testing.T) {
	path := filepath.Join(t.TempDir(), "registry.db")
	ms, err := loadMigrations(migrationFiles, migrationsDir)
	if err != nil {
		t.Fatal(err)
	}
	db := rawDB(t, path)
	if err := migrate(t.Context(), db, ms[:4]); err != nil {
		t.Fatal(err)
	}
	dev, station := identity.ID{9}, make([]byte, 32)
	for _, q := range []string{
		`INSERT INTO stations (id, name, algorithm, public_key, created_at) VALUES (?2, 's', 'ed25519', x'00', 0)`,
		`INSERT INTO products (id, name, cert_validity, cloud_endpoint, created_at) VALUES ('p', 'p', 1, '', 0)`,
		`INSERT INTO batches (id, station_id, product_id, manifest_digest, device_count, imported_at)
			VALUES ('b', ?2, 'p', zeroblob(32), 1, 0)`,
		`INSERT INTO devices (identity, algorithm, public_key, root_of_trust, injection, batch_id, station_id,
			product_id, state, created_at, onboarded_at, revoked_at, revoke_note)
			VALUES (?1, 'ed25519', x'00', 'puf', 'none', 'b', ?2, 'p', 'revoked', 0, 5, 7, 'stolen')`,
		`INSERT INTO certificates (serial, identity, not_before, not_after, der, issued_at, revoked_at)
			VALUES (x'02020202020202020202020202020202', ?1, 0, 10, x'00', 5, 7)`,
		`INSERT INTO jobs (kind, connector, identity, state, next_run_at, created_at, updated_at)
			VALUES ('deregister', 'mqtt', ?1, 'pending', 7, 7, 7)`,
	} {
		if _, err := db.Exec(q, dev[:], station); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	d, err := s.GetDevice(t.Context(), dev)
	if err != nil || d.State != "revoked" || d.RevokeNote != "stolen" || d.StateReason != "stolen" ||
		d.StateChangedAt.UnixMicro() != 7 || d.OnboardedAt.UnixMicro() != 5 {
		t.Fatalf("device after the migration: %+v, %v", d, err)
	}
	revoked, err := s.ListRevokedCertificates(t.Context(), store.RevokedCursor{}, 0)
	if err != nil || len(revoked) != 1 || revoked[0].Reason != 0 || revoked[0].RevokedAt.UnixMicro() != 7 {
		t.Fatalf("revoked certificates after the migration: %+v, %v; want the one, reason unspecified", revoked, err)
	}
	if jobs, err := s.LatestJobs(t.Context(), []identity.ID{dev}); err != nil || len(jobs[dev]) != 1 {
		t.Fatalf("jobs after the migration: %v, %v", jobs, err)
	}
	var fk int
	if err := s.writer.QueryRowContext(t.Context(), "PRAGMA foreign_keys").Scan(&fk); err != nil || fk != 1 {
		t.Fatalf("foreign_keys after the migration = %d, %v; want on again", fk, err)
	}
	_, err = s.writer.ExecContext(t.Context(), `INSERT INTO certificates (serial, identity, not_before, not_after, der, issued_at)
		VALUES (x'01010101010101010101010101010101', ?, 0, 10, x'00', 5)`, make([]byte, 32))
	if err == nil || !strings.Contains(err.Error(), "FOREIGN KEY") {
		t.Fatalf("a certificate of no device: %v, want a foreign key violation", err)
	}
}

// TestRevokedCertificatesQueryPlan: a CRL page is one range scan of the
// partial index of revoked certificates by expiry (migration 0010), bound
// by the cursor: neither the whole table nor the entries expired before
// the cut-off are read.
func TestRevokedCertificatesQueryPlan(t *testing.T) {
	s := openFile(t)
	defer s.Close()
	const q = `SELECT serial, revoked_at, revocation_reason, not_after FROM certificates
		WHERE revoked_at IS NOT NULL AND (not_after, serial) > (?, ?) ORDER BY not_after, serial LIMIT ?`
	plan := queryPlan(t, s, q, []any{int64(0), make([]byte, 16), 10})
	if !strings.Contains(plan, "SEARCH") || !strings.Contains(plan, "certificates_revoked_by_expiry (") ||
		strings.Contains(plan, "TEMP B-TREE") {
		t.Errorf("plan: %s; want a range search of certificates_revoked_by_expiry, in index order", plan)
	}
}
