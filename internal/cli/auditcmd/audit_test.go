package auditcmd_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "modernc.org/sqlite" // the attacker's own connection to the file

	"github.com/hallmark-iot/hallmark/internal/audit/chain"
	"github.com/hallmark-iot/hallmark/internal/cli/clitest"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
	"github.com/hallmark-iot/hallmark/internal/store/sqlite"
)

// chainedDB makes a SQLite registry with n audit events, chained and
// signed every 10 positions, and returns its path and the audit key file.
func chainedDB(t *testing.T, n int) (db, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	db = filepath.Join(dir, "hallmark.db")
	s, err := sqlite.Open(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	suite, _ := sigalg.Lookup(string(sigalg.ECDSAP256))
	key, err := suite.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sealer, err := chain.NewSealer(chain.SealerConfig{Chain: s, Key: key, CheckpointEvery: 10, Batch: 10})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if _, err := s.AppendAudit(t.Context(), store.AuditEvent{Actor: "system", Action: "test", Subject: "n", Outcome: "ok"}); err != nil {
			t.Fatal(err)
		}
		if i%10 == 9 {
			if _, err := sealer.Step(t.Context(), false); err != nil {
				t.Fatal(err)
			}
		}
	}
	pemKey, _ := sigalg.EncodePublicKeyPEM(key.Public())
	keyFile = filepath.Join(dir, "audit.pem")
	writeFile(t, keyFile, pemKey)
	return db, keyFile
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyExportPrune(t *testing.T) {
	db, key := chainedDB(t, 35)
	out := clitest.MustRun(t, nil, "audit", "verify", "--db", db, "--key", key)
	if !strings.Contains(out, "audit chain OK: 30 entries (positions 1 to 30), 3 checkpoints, last signed position 30") ||
		!strings.Contains(out, "5 not yet chained") {
		t.Fatalf("verify: %q", out)
	}
	export := filepath.Join(t.TempDir(), "audit.jsonl")
	clitest.MustRun(t, nil, "audit", "export", "--db", db, "--out", export)
	if out := clitest.MustRun(t, nil, "audit", "verify", "--export", export, "--key", key); !strings.Contains(out, "30 entries") {
		t.Fatalf("verify --export: %q", out)
	}
	archive := filepath.Join(t.TempDir(), "archive.jsonl")
	if out := clitest.MustRun(t, nil, "audit", "prune", "--db", db, "--before", "25", "--archive", archive, "--key", key); !strings.Contains(out, "pruned 20 entries") {
		t.Fatalf("prune: %q", out)
	}
	if out := clitest.MustRun(t, nil, "audit", "verify", "--export", archive, "--key", key); !strings.Contains(out, "20 entries (positions 1 to 20)") {
		t.Fatalf("verify the archive: %q", out)
	}
	if out := clitest.MustRun(t, nil, "audit", "verify", "--db", db, "--key", key); !strings.Contains(out, "10 entries (positions 21 to 30)") {
		t.Fatalf("verify after the prune: %q", out)
	}
	// The export taken before the prune still witnesses the live log: its
	// older checkpoints are about pruned history.
	if out := clitest.MustRun(t, nil, "audit", "verify", "--db", db, "--key", key, "--witness", export); !strings.Contains(out, "10 entries") {
		t.Fatalf("verify with a witness: %q", out)
	}
	// An archive is never overwritten.
	code, _, errOut := clitest.Run(t, nil, "audit", "prune", "--db", db, "--before", "30", "--archive", archive, "--key", key)
	if code != 2 || !strings.Contains(errOut, "never overwritten") {
		t.Fatalf("prune onto an archive: %d %q", code, errOut)
	}
}

// TestVerifyNamesTheEntry: an attacker who edits the file (dropping the
// trigger first) is named in one line and exit status 1.
func TestVerifyNamesTheEntry(t *testing.T) {
	db, key := chainedDB(t, 20)
	conn, err := sql.Open("sqlite", db)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`DROP TRIGGER audit_events_no_update`, `UPDATE audit_events SET outcome = 'denied' WHERE seq = 14`} {
		if _, err := conn.ExecContext(context.Background(), q); err != nil {
			t.Fatal(err)
		}
	}
	conn.Close()
	code, out, errOut := clitest.Run(t, nil, "audit", "verify", "--db", db, "--key", key)
	if code != 1 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "entry 14 (event seq 14) changed") {
		t.Fatalf("verify a tampered log: %d %q %q", code, out, errOut)
	}
}

func TestVerifyRefusals(t *testing.T) {
	db, key := chainedDB(t, 10)
	other, _ := chainedDB(t, 10)
	_, otherKey := chainedDB(t, 1)
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--db", db}, 2, "--key FILE is required"},
		{[]string{"--key", key}, 2, "give one of --db and --export"},
		{[]string{"--db", db, "--export", "x", "--key", key}, 2, "give one of"},
		{[]string{"--db", filepath.Join(t.TempDir(), "none.db"), "--key", key}, 2, "no such SQLite file"},
		{[]string{"--db", db, "--key", db}, 1, "audit key"},
		{[]string{"--db", other, "--key", key}, 1, "checkpoint 10 forged"},
		{[]string{"--db", db, "--key", otherKey}, 1, "forged"},
		{[]string{"--export", "-", "--key", key}, 1, "malformed audit export"},
	} {
		code, _, errOut := clitest.Run(t, []byte("not an export\n"), append([]string{"audit", "verify"}, c.args...)...)
		if code != c.code || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: %d %q, want %d and %q", c.args, code, errOut, c.code, c.want)
		}
	}
}

// TestWitnessCatchesTruncation: deleting the newest checkpoint with the
// entries it signs passes alone, not against an earlier export.
func TestWitnessCatchesTruncation(t *testing.T) {
	db, key := chainedDB(t, 20)
	witness := filepath.Join(t.TempDir(), "before.jsonl")
	clitest.MustRun(t, nil, "audit", "export", "--db", db, "--out", witness)
	conn, err := sql.Open("sqlite", db)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`DROP TRIGGER audit_events_no_delete`, `DROP TRIGGER audit_chain_no_delete`, `DROP TRIGGER audit_checkpoints_no_delete`,
		`DELETE FROM audit_events WHERE seq > 12`, `DELETE FROM audit_chain WHERE pos > 12`, `DELETE FROM audit_checkpoints WHERE seq = 20`} {
		if _, err := conn.ExecContext(context.Background(), q); err != nil {
			t.Fatal(err)
		}
	}
	conn.Close()
	clitest.MustRun(t, nil, "audit", "verify", "--db", db, "--key", key)
	code, _, errOut := clitest.Run(t, nil, "audit", "verify", "--db", db, "--key", key, "--witness", witness)
	if code != 1 || !strings.Contains(errOut, "entry 13 truncated") {
		t.Fatalf("verify against the witness: %d %q", code, errOut)
	}
}
