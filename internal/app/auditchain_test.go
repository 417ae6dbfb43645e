package app

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"io"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/audit/chain"
	"github.com/hallmark-iot/hallmark/internal/cli/cmdline"
	"github.com/hallmark-iot/hallmark/internal/httpapi"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store/sqlite"
)

// TestAuditChainServe: serve publishes the audit key over HTTPS, and at
// Close the sealer has chained and signed every event the platform
// logged, so the log verifies offline against the published key.
// The audit key follows the CA: ML-DSA-65 beside an ML-DSA CA.
func TestAuditChainServe(t *testing.T) {
	for _, suite := range []sigalg.ID{sigalg.ECDSAP256, sigalg.MLDSA65} {
		t.Run(string(suite), func(t *testing.T) { testAuditChainServe(t, suite) })
	}
}

func testAuditChainServe(t *testing.T, caSuite sigalg.ID) {
	dir := t.TempDir()
	p := start(t, dir, caSuite)
	admin := adminClient(t, p)
	suite, _ := sigalg.Lookup(string(sigalg.ECDSAP256))
	for _, name := range []string{"line-1", "line-2"} {
		key, err := suite.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		stationPEM, _ := sigalg.EncodePublicKeyPEM(key.Public())
		if _, err := admin.CreateStation(t.Context(), httpapi.StationRequest{Name: name, PublicKey: string(stationPEM)}); err != nil {
			t.Fatal(err)
		}
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(p.CA.RootPEM())
	resp, err := cmdline.PlatformHTTPClient(roots, nil).Get(p.URL() + AuditKeyPath)
	if err != nil {
		t.Fatal(err)
	}
	pemKey, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d, %v", AuditKeyPath, resp.StatusCode, err)
	}
	pub, err := sigalg.ParsePublicKeyPEM(pemKey)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := sigalg.SuiteOf(pub); got == nil || got.ID() != caSuite {
		t.Fatalf("audit key %v beside a %s CA", got, caSuite)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := sqlite.Open(context.Background(), filepath.Join(dir, DatabaseFile))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rep, err := chain.VerifyStore(t.Context(), s, pub)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Entries < 2 || rep.LastSigned != rep.Head || rep.Unlinked != 0 {
		t.Fatalf("after Close: %+v, want every event chained and signed", rep)
	}
}

// BenchmarkOnboardingAuditChain: complete ECDSA onboardings over HTTPS
// (BenchmarkOnboarding's https case) with the audit sealer stopped (the
// log as before the chain) and running; the chain must cost under 5 %.
func BenchmarkOnboardingAuditChain(b *testing.B) {
	for _, off := range []bool{false, true, false, true} {
		name := "sealer=on"
		if off {
			name = "sealer=off"
		}
		b.Run(name, func(b *testing.B) {
			benchWithoutSealer.Store(off)
			defer benchWithoutSealer.Store(false)
			benchHTTPS(b, sigalg.ECDSAP256)
		})
	}
}
