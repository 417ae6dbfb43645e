package app

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/device"
	"github.com/hallmark-iot/hallmark/internal/httpapi"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/pki"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// TestMigrationUnderMLDSACA: a fleet onboarded under the platform's first
// CA (ECDSA P-256) moves its product to the ML-DSA-65 CA (--ca-suites,
// the product's issuing_ca) and its devices, a keygen and a PUF one,
// migrate from ECDSA P-256 to ML-DSA-65 enrolment keys (docs/migration.md,
// "Under a post-quantum issuing CA"). What is true afterwards:
//   - the new certificate is the ML-DSA CA's (ML-DSA-65 signature, its
//     chain and trust bundle), names the new identity (the SHA-256 of the
//     ML-DSA-65 enrolment key), and certifies the device's ECDSA P-256
//     operational key, which is what authenticates it in mutual TLS;
//   - an ML-DSA operational key cannot take part in a Go 1.26 TLS
//     handshake (decision 0004), so it cannot be the TLS certificate;
//   - the old identity is refused with its old certificate and its old key;
//   - the superseded first-CA certificates are on the first CA's CRL only,
//     the new ones on no CRL until revoked, and then on the ML-DSA CA's only.
func TestMigrationUnderMLDSACA(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := &testClock{}
	p, err := Start(ctx, Config{DataDir: newDataDir(t), Listen: "127.0.0.1:0", ServerName: "localhost", CASuite: sigalg.ECDSAP256,
		CASuites: []sigalg.ID{sigalg.MLDSA65}, RevocationListen: "127.0.0.1:0", RevocationBaseURL: testRevocationBase, Now: clock.now,
		Migration: MigrationConfig{OpenTo: sigalg.MLDSA65}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	first := p.CA
	pq, err := p.CAs.Get("ml-dsa-65")
	if err != nil {
		t.Fatal(err)
	}
	admin := adminClient(t, p)
	f := buildFleet(t, "batch-1", []devSpec{{device.ClassKeygen, sigalg.ECDSAP256}, {device.ClassPUF, sigalg.ECDSAP256}})
	f.register(t, admin)
	e := &migrationEnv{p: p, ids: f.ids, devs: f.devices}
	var oldLeaves []*x509.Certificate
	for i, d := range f.devices {
		creds, cert, err := onboard(t, p, d, f.ids[i])
		if err != nil {
			t.Fatal(err)
		}
		checkIssuedBy(t, "onboarded under the first CA", creds, first, p)
		e.certs = append(e.certs, cert)
		oldLeaves = append(oldLeaves, mustParseCert(t, cert.Certificate[0]))
	}
	target := "ml-dsa-65"
	if _, err := admin.UpdateProduct(ctx, "meter", httpapi.ProductUpdateRequest{IssuingCA: &target}); err != nil {
		t.Fatal(err)
	}
	clock.advance(time.Minute) // past the services' product caches

	var newLeaves []*x509.Certificate
	for i := range f.devices {
		ch, err := e.challenge(t, e.certs[i])
		if err != nil || ch.TargetAlgorithm != sigalg.MLDSA65 {
			t.Fatalf("device %d: challenge %+v, %v", i, ch, err)
		}
		req := e.prepare(t, i, ch, sigalg.MLDSA65)
		creds, err := e.migrate(t, e.certs[i], req)
		if err != nil {
			t.Fatalf("device %d: migrate: %v", i, err)
		}
		newID := req.Proof.NewIdentity
		checkIssuedBy(t, "migrated under the ML-DSA CA", creds, pq, p)
		op := issuanceOpKey(t, f.devices[i])
		cert := issuanceCert(t, creds, op)
		leaf := mustParseCert(t, cert.Certificate[0])
		if leaf.Subject.CommonName != newID.String() || leaf.PublicKeyAlgorithm != x509.ECDSA {
			t.Fatalf("device %d: new certificate for %q with a %v key, want the new identity and the ECDSA operational key",
				i, leaf.Subject.CommonName, leaf.PublicKeyAlgorithm)
		}
		if nd, err := admin.GetDevice(ctx, newID); err != nil || nd.Algorithm != "ml-dsa-65" || nd.State != "onboarded" {
			t.Fatalf("device %d: new identity %+v, %v", i, nd, err)
		}
		// Mutual TLS with the ML-DSA-signed certificate of an ECDSA key.
		if _, err := deviceClient(p.URL(), tlsClient(p, cert)).Credentials(ctx); err != nil {
			t.Fatalf("device %d: mutual TLS with the new certificate: %v", i, err)
		}
		// The old identity is refused, with its certificate and its key.
		if _, err := deviceClient(p.URL(), tlsClient(p, e.certs[i])).Credentials(ctx); !isProblem(err, "device-migrated") {
			t.Fatalf("device %d: old certificate: %v, want device-migrated", i, err)
		}
		if _, _, err := onboard(t, p, f.devices[i], f.ids[i]); !isProblem(err, "device-migrated") {
			t.Fatalf("device %d: onboarding with the old key: %v, want device-migrated", i, err)
		}
		_, err = e.challenge(t, e.certs[i])
		wantProblem(t, "a second migration of the old identity", err, "device-migrated")
		if _, err := f.devices[i].CommitMigration(); err != nil {
			t.Fatal(err)
		}
		newLeaves = append(newLeaves, leaf)
	}

	// An ML-DSA key as the TLS key: Go 1.26's client finds no signature
	// scheme for it and sends no certificate, so the platform, which
	// requires one, refuses the handshake.
	mldsa, _ := sigalg.MLDSA65.Suite()
	pqKey, err := mldsa.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pqTLS := &tls.Certificate{Certificate: [][]byte{newLeaves[0].Raw}, PrivateKey: pqKey}
	if _, err := deviceClient(p.URL(), tlsClient(p, pqTLS)).Credentials(ctx); err == nil {
		t.Fatal("mutual TLS with an ML-DSA key succeeded: crypto/tls gained ML-DSA; revisit decision 0004 and docs/migration.md")
	}

	// The CRLs: the superseded first-CA certificates on the first CA's
	// CRL as superseded, on the ML-DSA CA's not at all.
	p.NotifyRevocation()
	for i, old := range oldLeaves {
		crl := waitCRL(t, p, first, old, true)
		if entry, _ := crl.Lookup(serialOf(old)); entry.Reason != pki.ReasonSuperseded {
			t.Errorf("device %d: old certificate listed with reason %d, want superseded", i, entry.Reason)
		}
		pqCRL := fetchCRLOf(t, p, pq)
		if _, listed := pqCRL.Lookup(serialOf(old)); listed {
			t.Errorf("device %d: a first-CA certificate is on the ML-DSA CA's CRL", i)
		}
		if _, listed := pqCRL.Lookup(serialOf(newLeaves[i])); listed {
			t.Errorf("device %d: the new certificate is on a CRL before any revocation", i)
		}
	}
	// Revoking a migrated device: its certificate on the ML-DSA CA's CRL
	// only, and its mutual TLS refused.
	newID, err := identity.Parse(newLeaves[1].Subject.CommonName)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.RevokeDevice(ctx, newID, "key compromise"); err != nil {
		t.Fatal(err)
	}
	p.NotifyRevocation()
	waitCRL(t, p, pq, newLeaves[1], true)
	if _, listed := fetchCRLOf(t, p, first).Lookup(serialOf(newLeaves[1])); listed {
		t.Error("the ML-DSA CA's revoked certificate is on the first CA's CRL")
	}
	if _, listed := fetchCRLOf(t, p, pq).Lookup(serialOf(newLeaves[0])); listed {
		t.Error("the other migrated device's certificate is on the CRL")
	}
}
