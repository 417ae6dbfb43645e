package auditcmd_test

import (
	"context"
	"crypto/rand"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/app"
	"github.com/hallmark-iot/hallmark/internal/audit/chain"
	"github.com/hallmark-iot/hallmark/internal/cli/clitest"
	"github.com/hallmark-iot/hallmark/internal/pki"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
	"github.com/hallmark-iot/hallmark/internal/store/postgres"
	"github.com/hallmark-iot/hallmark/internal/store/postgres/pgtest"
)

// TestKeyFromServeThenVerify: the key fetched from a running platform over
// HTTPS verifies the log that platform chained and signed, once it closed.
func TestKeyFromServeThenVerify(t *testing.T) {
	dir := t.TempDir()
	p, err := app.Start(context.Background(), app.Config{DataDir: dir, Listen: "127.0.0.1:0", ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	keyFile := filepath.Join(t.TempDir(), "audit.pem")
	clitest.MustRun(t, nil, "audit", "key", "--server", p.URL(), "--ca-file", filepath.Join(dir, pki.TLSTrustFile), "--out", keyFile)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	out := clitest.MustRun(t, nil, "audit", "verify", "--db", filepath.Join(dir, app.DatabaseFile), "--key", keyFile)
	if !strings.Contains(out, "audit chain OK") || !strings.Contains(out, "0 chained but unsigned, 0 not yet chained") {
		t.Fatalf("verify: %q", out)
	}
	code, _, errOut := clitest.Run(t, nil, "audit", "key", "--server", p.URL())
	if code != 2 || !strings.Contains(errOut, "--ca-file") {
		t.Fatalf("key without --ca-file: %d %q", code, errOut)
	}
}

// TestVerifyPostgres: --db takes a postgres:// URL.
func TestVerifyPostgres(t *testing.T) {
	url := pgtest.NewDatabase(t)
	s, err := postgres.Open(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for range 3 {
		if _, err := s.AppendAudit(t.Context(), store.AuditEvent{Actor: "system", Action: "test", Outcome: "ok"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Settle(t.Context()); err != nil {
		t.Fatal(err)
	}
	suite, _ := sigalg.Lookup(string(sigalg.Ed25519))
	key, _ := suite.GenerateKey(rand.Reader)
	sealer, err := chain.NewSealer(chain.SealerConfig{Chain: s, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sealer.Step(t.Context(), true); err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "audit.pem")
	pemKey, _ := sigalg.EncodePublicKeyPEM(key.Public())
	writeFile(t, keyFile, pemKey)
	out := clitest.MustRun(t, nil, "audit", "verify", "--db", url, "--key", keyFile, "--json")
	if !strings.Contains(out, `"entries": 3`) || !strings.Contains(out, `"last_signed": 3`) {
		t.Fatalf("verify: %q", out)
	}
}
