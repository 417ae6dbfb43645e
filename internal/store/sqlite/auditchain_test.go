package sqlite

import (
	"crypto"
	"crypto/rand"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/audit/chain"
	"github.com/hallmark-iot/hallmark/internal/sigalg"

	"github.com/hallmark-iot/hallmark/internal/store"
	"github.com/hallmark-iot/hallmark/internal/store/storetest"
)

// sqliteTamper edits the database file's tables directly, as anyone who
// can write the file can: it drops the append-only triggers first.
type sqliteTamper struct{ s *Store }

func (x sqliteTamper) exec(t testing.TB, q string, args ...any) {
	t.Helper()
	if _, err := x.s.writer.ExecContext(t.Context(), q, args...); err != nil {
		t.Fatalf("tamper: %s: %v", q, err)
	}
}

func (x sqliteTamper) dropTriggers(t testing.TB) {
	for _, name := range []string{"audit_events_no_update", "audit_events_no_delete", "audit_chain_no_update",
		"audit_chain_no_delete", "audit_checkpoints_no_update", "audit_checkpoints_no_delete"} {
		x.exec(t, `DROP TRIGGER IF EXISTS `+name)
	}
}

func (x sqliteTamper) EditEvent(t testing.TB, seq int64) {
	x.exec(t, `UPDATE audit_events SET detail = 'reason=nothing to see' WHERE seq = ?`, seq)
}

func (x sqliteTamper) DeleteEvent(t testing.TB, seq int64) {
	x.exec(t, `DELETE FROM audit_events WHERE seq = ?`, seq)
}

func (x sqliteTamper) DeleteLinks(t testing.TB, from, to int64) {
	x.exec(t, `DELETE FROM audit_events WHERE seq IN (SELECT event_seq FROM audit_chain WHERE pos BETWEEN ? AND ?)`, from, to)
	x.exec(t, `DELETE FROM audit_chain WHERE pos BETWEEN ? AND ?`, from, to)
}

// InsertEventBefore uses seq -1: SQLite's log has no gaps to hide in.
func (x sqliteTamper) InsertEventBefore(t testing.TB, _ int64) int64 {
	x.exec(t, `INSERT INTO audit_events (seq, time, actor, action, subject, outcome, detail, remote_addr)
		VALUES (-1, 0, 'token:adm', 'device.revoke', 'device:forged', 'ok', '', '192.0.2.1')`)
	return -1
}

func (x sqliteTamper) SwapSeqs(t testing.TB, a, b int64) {
	x.exec(t, `UPDATE audit_events SET seq = -2 WHERE seq = ?`, a)
	x.exec(t, `UPDATE audit_events SET seq = ? WHERE seq = ?`, a, b)
	x.exec(t, `UPDATE audit_events SET seq = ? WHERE seq = -2`, b)
}

func (x sqliteTamper) SetLinkHash(t testing.TB, pos int64, hash [32]byte) {
	x.exec(t, `UPDATE audit_chain SET hash = ? WHERE pos = ?`, hash[:], pos)
}

func (x sqliteTamper) EditCheckpoint(t testing.TB, seq int64) {
	x.exec(t, `UPDATE audit_checkpoints SET head = CAST(CASE WHEN substr(head, 1, 1) = x'00' THEN x'01' ELSE x'00' END || substr(head, 2) AS BLOB) WHERE seq = ?`, seq)
}

func (x sqliteTamper) DeleteCheckpoint(t testing.TB, seq int64) {
	x.exec(t, `DELETE FROM audit_checkpoints WHERE seq = ?`, seq)
}

func (x sqliteTamper) Reset(t testing.TB) {
	for _, table := range []string{"audit_events", "audit_chain", "audit_checkpoints"} {
		x.exec(t, `DELETE FROM `+table)
	}
}

func TestAuditTamper(t *testing.T) {
	t.Parallel()
	storetest.RunAuditTamper(t, func(t *testing.T) (store.Store, storetest.AuditTamper, func()) {
		s := openFile(t)
		x := sqliteTamper{s}
		x.dropTriggers(t)
		return s, x, func() {}
	})
}

// TestAuditChainTriggers: without a prune's permit, the chain and the
// checkpoints refuse UPDATE and DELETE like the log itself.
func TestAuditChainTriggers(t *testing.T) {
	t.Parallel()
	s := openFile(t)
	defer s.Close()
	if _, err := s.AppendAudit(t.Context(), store.AuditEvent{Actor: "system", Action: "test", Outcome: "ok"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.SealAudit(t.Context(), 10, func(int64, [32]byte, store.AuditEvent) [32]byte { return [32]byte{1} }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.writer.ExecContext(t.Context(), `INSERT INTO audit_checkpoints VALUES (1, zeroblob(32), 1, 0, 'k', 'a', x'00')`); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`UPDATE audit_chain SET hash = zeroblob(32)`, `DELETE FROM audit_chain`,
		`UPDATE audit_checkpoints SET first = 2`, `DELETE FROM audit_checkpoints`, `DELETE FROM audit_events`} {
		if _, err := s.writer.ExecContext(t.Context(), q); err == nil {
			t.Errorf("%s: accepted", q)
		}
	}
}

func BenchmarkAuditChain(b *testing.B) {
	storetest.BenchmarkAuditChain(b, func(b *testing.B) store.Store { return openFile(b) }, func(store.Store) {})
}

// BenchmarkVerify1M verifies a log of 1,000,000 chained events with a
// checkpoint every 10,000, from the database. The events are inserted
// in bulk with SQL (the append path is BenchmarkAuditChain's) and linked
// by the real sealer before the timer starts.
func BenchmarkVerify1M(b *testing.B) {
	const n = 1_000_000
	s := openFile(b)
	defer s.Close()
	ctx := b.Context()
	_, err := s.writer.ExecContext(ctx, `WITH RECURSIVE i(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM i WHERE x < ?)
		INSERT INTO audit_events (time, actor, action, subject, outcome, detail, remote_addr)
		SELECT 1764669600000000 + x, 'device:' || x, 'device.onboard', 'device:' || x, 'ok', 'serial=' || x, '192.0.2.1' FROM i`, n)
	if err != nil {
		b.Fatal(err)
	}
	key := benchKey(b)
	sealer, err := chain.NewSealer(chain.SealerConfig{Chain: s, Key: key, Batch: 10000, CheckpointEvery: 10000})
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	if _, err := sealer.Step(ctx, false); err != nil {
		b.Fatal(err)
	}
	b.Logf("sealed %d events in %v", n, time.Since(start).Round(time.Millisecond))
	b.ResetTimer()
	for range b.N {
		rep, err := chain.VerifyStore(ctx, s, key.Public())
		if err != nil {
			b.Fatal(err)
		}
		if rep.Entries != n || rep.Checkpoints != n/10000 {
			b.Fatalf("report %+v", rep)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "entries/s")
}

func benchKey(b *testing.B) crypto.Signer {
	suite, err := sigalg.Lookup(string(sigalg.ECDSAP256))
	if err != nil {
		b.Fatal(err)
	}
	key, err := suite.GenerateKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	return key
}
