package sqlite

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// TestWatchMigrationKeepsEvents: migration 0008 rebuilds device_events to
// admit the new kinds. Every event keeps its seq, the AUTOINCREMENT
// sequence continues past the highest seq ever handed out (also one whose
// event is gone), the triggers still write events, and status rows get
// their device's product.
func TestWatchMigrationKeepsEvents(t *testing.T) {
	path := filepath.Join(t.TempDir(), "registry.db")
	ms, err := loadMigrations(migrationFiles, migrationsDir)
	if err != nil {
		t.Fatal(err)
	}
	db := rawDB(t, path)
	if err := migrate(t.Context(), db, ms[:7]); err != nil {
		t.Fatal(err)
	}
	dev := identity.ID{7}
	for _, q := range []string{
		`INSERT INTO stations (id, name, algorithm, public_key, created_at) VALUES (zeroblob(32), 's', 'ed25519', x'00', 0)`,
		`INSERT INTO products (id, name, cert_validity, cloud_endpoint, created_at) VALUES ('p', 'p', 1, '', 0)`,
		`INSERT INTO batches (id, station_id, product_id, manifest_digest, device_count, imported_at)
			VALUES ('b', zeroblob(32), 'p', zeroblob(32), 1, 0)`,
		`INSERT INTO devices (identity, algorithm, public_key, root_of_trust, injection, batch_id, station_id,
			product_id, state, created_at, onboarded_at) VALUES (?1, 'ed25519', x'00', 'puf', 'none', 'b', zeroblob(32), 'p', 'onboarded', 0, 5)`,
		`INSERT INTO device_status (identity, received_at, firmware_version, security_counter, boot_result,
			enrolment_algorithm, operational_algorithm, uptime_seconds, remote_addr) VALUES (?1, 10, '1.0', 1, 'ok', 'ed25519', 'ed25519', 3, '')`,
		`INSERT INTO device_events (seq, time, kind, identity, serial, detail) VALUES (3, 1, 'device.onboarded', ?1, NULL, '')`,
		`INSERT INTO device_events (seq, time, kind, identity, serial, detail) VALUES (8, 2, 'device.silent', ?1, NULL, 'last seen')`,
		`INSERT INTO device_events (seq, time, kind, identity, serial, detail) VALUES (40, 3, 'device.silent', ?1, NULL, 'gone')`,
		`DELETE FROM device_events WHERE seq = 40`, // seq 40 was handed out: never again
	} {
		if _, err := db.Exec(q, dev[:]); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	events, err := s.ListEvents(t.Context(), store.EventFilter{})
	if err != nil || len(events) != 2 || events[0].Seq != 3 || events[1].Seq != 8 || events[1].Detail != "last seen" {
		t.Fatalf("events after the migration: %+v, %v", events, err)
	}
	ok, err := s.NoteCloneSuspected(t.Context(), dev, time.UnixMicro(20), time.Hour, "new kind")
	if err != nil || !ok {
		t.Fatalf("a new kind after the migration: %v, %v", ok, err)
	}
	if _, err := s.TransitionDevice(t.Context(), dev, store.TransitionRequest{Transition: store.TransitionSuspend, Reason: "trigger", At: time.UnixMicro(30)}); err != nil {
		t.Fatal(err)
	}
	events, err = s.ListEvents(t.Context(), store.EventFilter{AfterSeq: 8})
	if err != nil || len(events) != 2 || events[0].Seq <= 40 || events[0].Kind != store.EventCloneSuspected ||
		events[1].Kind != store.EventSuspended || events[1].Detail != "trigger" {
		t.Fatalf("events written after the migration: %+v, %v; want seq after 40 and the trigger's event", events, err)
	}
	if _, err := s.writer.Exec(`INSERT INTO device_events (time, kind, identity, detail) VALUES (1, 'device.exploded', ?, '')`, dev[:]); err == nil {
		t.Error("an unknown kind was accepted")
	}
	rec, err := s.RecordStatus(t.Context(), store.DeviceStatus{Identity: dev, ReceivedAt: time.UnixMicro(40), FirmwareVersion: "1.0",
		BootResult: "ok", EnrolmentAlgorithm: "ed25519", OperationalAlgorithm: "ed25519"})
	if err != nil || rec.ProductID != "p" || rec.Previous.Uptime != 3*time.Second {
		t.Fatalf("RecordStatus after the migration: %+v, %v", rec, err)
	}
}

// TestWatchQueryPlans: the silence sweep and its count read one range of
// an index per product, however many devices report.
func TestWatchQueryPlans(t *testing.T) {
	s := openFile(t)
	defer s.Close()
	for q, args := range map[string][]any{
		markSilent: {1, "p", 5, 10},
		`SELECT count(*) FROM device_status AS st INDEXED BY device_status_by_product WHERE st.product_id = ? AND st.received_at < ?`: {"p", 5},
	} {
		plan := queryPlan(t, s, q, args)
		if !strings.Contains(plan, "SEARCH") || !strings.Contains(plan, "product_id=? AND received_at<?") || strings.Contains(plan, "TEMP B-TREE") {
			t.Errorf("%s\nplan: %s; want one range of the index", q, plan)
		}
	}
}
