package app

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/onboarding"
	"github.com/hallmark-iot/hallmark/internal/pki"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// TestSupersededRevokedInCRLAndOCSP: over the real platform, a device
// renews; once the replaced certificate's (short) grace has passed, the
// platform's sweep revokes it with reason superseded, and the served CRL
// (checked by pki.VerifyCRL and `openssl verify -crl_check`) and the OCSP
// responder (the project's verifier and `openssl ocsp`) say so, while the
// new certificate stays good. The sweep's audit event says how many.
func TestSupersededRevokedInCRLAndOCSP(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p, err := Start(ctx, Config{DataDir: newDataDir(t), Listen: "127.0.0.1:0", CASuite: sigalg.ECDSAP256,
		RevocationListen: "127.0.0.1:0", RevocationBaseURL: testRevocationBase + "/",
		Issuance:        onboarding.IssuancePolicy{SupersededGrace: 200 * time.Millisecond},
		SupersededSweep: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	f := newFleet(t, sigalg.Ed25519)
	admin := adminClient(t, p)
	f.register(t, admin)
	op := issuanceOpKey(t, f.devices[0])
	old := issuanceOnboard(t, p, f, 0, op)
	renewed, err := deviceClient(p.URL(), tlsClient(p, old)).RenewWithKey(ctx, f.ids[0], op)
	if err != nil {
		t.Fatal(err)
	}
	current := issuanceCert(t, renewed, op)
	oldLeaf := mustParseCert(t, old.Certificate[0])
	oldSerial := [16]byte(oldLeaf.SerialNumber.FillBytes(make([]byte, 16)))

	served := p.RevocationURL() + pki.CRLPath + p.CA.CRLName() + ".crl"
	var crl *pki.CRL
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if crl = fetchCRL(t, p, served); len(crl.Entries) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the CRL still lists nothing 20 s after the renewal: was the superseded certificate revoked and the publisher told?")
		}
	}
	entry, ok := crl.Lookup(oldSerial)
	if len(crl.Entries) != 1 || !ok || entry.Reason != pki.ReasonSuperseded {
		t.Fatalf("CRL after the grace: %+v, want the replaced certificate alone, reason superseded", crl.Entries)
	}
	leaves := [][]byte{old.Certificate[0], current.Certificate[0]}
	checkWithOpenSSL(t, p, served, leaves)
	checkOCSPWithOpenSSL(t, p, leaves)
	checkSupersededOCSP(t, p, oldSerial)

	var swept int
	for _, ev := range auditEvents(t, admin) {
		if ev.Actor == "system" && ev.Action == "certificate.revoke-superseded" && ev.Outcome == "ok" && strings.HasPrefix(ev.Detail, "1 revoked") {
			swept++
		}
	}
	if swept != 1 {
		t.Fatalf("%d sweep audit events for one revocation, want 1", swept)
	}
	if n, err := p.RevokeSuperseded(ctx); err != nil || n != 0 {
		t.Fatalf("a sweep after everything is revoked: %d, %v; want 0", n, err)
	}
	certs := issuanceCerts(t, p, f.ids[0])
	if len(certs) != 2 || certs[1].RevocationReason != "superseded" || certs[0].RevocationReason != "" {
		t.Fatalf("admin view of the certificates: %+v", certs)
	}
}

// checkSupersededOCSP asks the responder about serial with the project's
// client and verifier: revoked, reason superseded.
func checkSupersededOCSP(t *testing.T, p *Platform, serial [16]byte) {
	t.Helper()
	got := askOCSP(t, p, serial, []byte("superseded-nonce-0123"))
	if len(got.Responses) != 1 || got.Responses[0].Status != pki.OCSPRevoked || got.Responses[0].Reason != pki.ReasonSuperseded {
		t.Fatalf("OCSP for the superseded certificate: %+v, want revoked, superseded", got.Responses)
	}
}
