package app

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/connector"
	"github.com/hallmark-iot/hallmark/internal/continuity"
	"github.com/hallmark-iot/hallmark/internal/device"
	"github.com/hallmark-iot/hallmark/internal/httpapi"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/migration"
	"github.com/hallmark-iot/hallmark/internal/onboarding"
	"github.com/hallmark-iot/hallmark/internal/onboarding/onboardpki"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// cloudLog is a connector that keeps what the outbox asked of it.
type cloudLog struct {
	mu    sync.Mutex
	calls []string
}

func (c *cloudLog) Name() string { return "cloud" }
func (c *cloudLog) Register(_ context.Context, d connector.Device) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = append(c.calls, "register "+d.Identity.String())
	return nil
}
func (c *cloudLog) Deregister(_ context.Context, id identity.ID) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = append(c.calls, "deregister "+id.String())
	return nil
}

// migrationEnv is a platform open to migrations to target, with a fleet of
// onboarded devices of the given classes and suites.
type migrationEnv struct {
	p     *Platform
	ids   []identity.ID
	devs  []*device.Device
	certs []*tls.Certificate
	cloud *cloudLog
}

func newMigrationEnv(t *testing.T, target sigalg.ID, specs ...devSpec) *migrationEnv {
	t.Helper()
	e := &migrationEnv{cloud: &cloudLog{}}
	p, err := Start(context.Background(), Config{DataDir: newDataDir(t), Listen: "127.0.0.1:0", ServerName: "localhost",
		CASuite: sigalg.ECDSAP256, Connectors: []connector.Connector{e.cloud}, Migration: MigrationConfig{OpenTo: target}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	e.p = p
	f := buildFleet(t, "batch-1", specs)
	f.register(t, adminClient(t, p))
	e.ids, e.devs = f.ids, f.devices
	for i, d := range f.devices {
		_, cert, err := onboard(t, p, d, f.ids[i])
		if err != nil {
			t.Fatalf("onboard device %d: %v", i, err)
		}
		e.certs = append(e.certs, cert)
	}
	return e
}

// post sends body (JSON) to path over mutual TLS with cert and decodes
// a success into out, a problem into the error.
func (e *migrationEnv) post(t *testing.T, cert *tls.Certificate, path string, body, out any) error {
	t.Helper()
	data, _ := json.Marshal(body)
	resp, err := tlsClient(e.p, cert).Post(e.p.URL()+path, "application/json", bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		var p httpapi.Problem
		if err := json.Unmarshal(raw, &p); err != nil {
			t.Fatalf("%s: status %d, body %q", path, resp.StatusCode, raw)
		}
		return &p
	}
	return json.Unmarshal(raw, out)
}

func (e *migrationEnv) challenge(t *testing.T, cert *tls.Certificate) (migration.ChallengeResponse, error) {
	t.Helper()
	var ch migration.ChallengeResponse
	err := e.post(t, cert, migration.PathMigrateChallenge, struct{}{}, &ch)
	return ch, err
}

// prepare has device i make its new key (once) and a proof and CSR for ch.
func (e *migrationEnv) prepare(t *testing.T, i int, ch migration.ChallengeResponse, target sigalg.ID) migration.Request {
	t.Helper()
	d := e.devs[i]
	m, err := d.PendingMigration()
	if err != nil {
		if m, err = d.BeginMigration(target); err != nil {
			t.Fatal(err)
		}
	}
	cc, err := ch.Continuity()
	if err != nil {
		t.Fatal(err)
	}
	proof, err := d.ProveContinuity(cc)
	if err != nil {
		t.Fatal(err)
	}
	op, err := d.OperationalKey(sigalg.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := onboardpki.CSRs{}.MakeCSR(op, m.Identity.String(), migration.CSRBinding(cc, m.Identity))
	if err != nil {
		t.Fatal(err)
	}
	return migration.Request{ChallengeID: ch.ChallengeID, Proof: proof, CSR: csr}
}

func (e *migrationEnv) migrate(t *testing.T, cert *tls.Certificate, req migration.Request) (*onboarding.Credentials, error) {
	t.Helper()
	var creds onboarding.Credentials
	if err := e.post(t, cert, migration.PathMigrate, req, &creds); err != nil {
		return nil, err
	}
	return &creds, nil
}

func wantProblem(t *testing.T, what string, err error, code string) {
	t.Helper()
	if !isProblem(err, code) {
		t.Fatalf("%s: %v, want %s", what, err, code)
	}
}

// TestMigrationEndToEnd: a keygen and a puf device migrate from ECDSA
// P-256 to ML-DSA-65 over HTTPS with the real device simulator; then the
// old identity is refused everywhere.
func TestMigrationEndToEnd(t *testing.T) {
	t.Parallel()
	e := newMigrationEnv(t, sigalg.MLDSA65, devSpec{device.ClassKeygen, sigalg.ECDSAP256}, devSpec{device.ClassPUF, sigalg.ECDSAP256})
	ctx := context.Background()
	admin := adminClient(t, e.p)
	for i := range e.devs {
		ch, err := e.challenge(t, e.certs[i])
		if err != nil || ch.TargetAlgorithm != sigalg.MLDSA65 {
			t.Fatalf("challenge: %+v, %v", ch, err)
		}
		req := e.prepare(t, i, ch, ch.TargetAlgorithm)
		creds, err := e.migrate(t, e.certs[i], req)
		if err != nil {
			t.Fatalf("device %d: migrate: %v", i, err)
		}
		newID := req.Proof.NewIdentity
		if creds.Identity != newID {
			t.Fatalf("credentials name %s, want the new identity %s", creds.Identity.Short(), newID.Short())
		}
		newCert := issuanceCert(t, creds, issuanceOpKey(t, e.devs[i]))
		if _, err := deviceClient(e.p.URL(), tlsClient(e.p, newCert)).Credentials(ctx); err != nil {
			t.Fatalf("the new certificate is refused: %v", err)
		}
		// The platform's record.
		nd, err := admin.GetDevice(ctx, newID)
		if err != nil || nd.State != "onboarded" || nd.Algorithm != "ml-dsa-65" || len(nd.Certificates) != 1 {
			t.Fatalf("new device %+v, %v", nd, err)
		}
		stored, _ := e.p.Store.GetDevice(ctx, newID)
		if !bytes.Equal(stored.PublicKey, req.Proof.NewPublicKey) {
			t.Fatal("the new identity's recorded key is not the proof's")
		}
		od, err := admin.GetDevice(ctx, e.ids[i])
		if err != nil || od.State != "migrated" {
			t.Fatalf("old device %+v, %v", od, err)
		}
		for _, c := range od.Certificates {
			if c.RevocationReason != "superseded" {
				t.Fatalf("old certificate revoked %q, want superseded", c.RevocationReason)
			}
		}
		for id, want := range map[identity.ID][2]*identity.ID{e.ids[i]: {nil, &newID}, newID: {&e.ids[i], nil}} {
			l, err := e.p.Store.GetLineage(ctx, id)
			if err != nil || (l.Predecessor == nil) != (want[0] == nil) || (l.Successor == nil) != (want[1] == nil) {
				t.Fatalf("lineage of %s: %+v, %v", id.Short(), l, err)
			}
		}
		for id, kind := range map[identity.ID]string{e.ids[i]: store.JobDeregister, newID: store.JobRegister} {
			jobs, _ := e.p.Store.ListJobs(ctx, store.JobFilter{Identity: id})
			if len(jobs) == 0 || jobs[0].Kind != kind && jobs[len(jobs)-1].Kind != kind {
				t.Fatalf("jobs of %s: %+v, want a %s", id.Short(), jobs, kind)
			}
		}
		// The old identity is refused everywhere: onboarding with its old
		// key (the device has not committed yet), its old certificate for
		// credentials, renewal and another migration, and reprovision.
		_, _, err = onboard(t, e.p, e.devs[i], e.ids[i])
		wantProblem(t, "onboard with the old key", err, "device-migrated")
		old := deviceClient(e.p.URL(), tlsClient(e.p, e.certs[i]))
		_, err = old.Credentials(ctx)
		wantProblem(t, "credentials with the old certificate", err, "device-migrated")
		_, err = old.RenewWithKey(ctx, e.ids[i], issuanceOpKey(t, e.devs[i]))
		wantProblem(t, "renew with the old certificate", err, "device-migrated")
		_, err = e.challenge(t, e.certs[i])
		wantProblem(t, "migrate again with the old certificate", err, "device-migrated")
		for _, tr := range []string{"reprovision", "revoke", "decommission", "suspend"} {
			_, err = admin.TransitionDevice(ctx, e.ids[i], tr, "again")
			wantProblem(t, tr+" a migrated device", err, "transition-not-allowed")
		}
		if _, err := e.devs[i].CommitMigration(); err != nil {
			t.Fatal(err)
		}
	}
	events, err := e.p.Store.ListEvents(ctx, store.EventFilter{Kind: store.EventMigrated})
	if err != nil || len(events) != 2 {
		t.Fatalf("device.migrated events %+v, %v", events, err)
	}
}

// TestMigrationReplayAndCrossDevice: a challenge answers once; a proof
// made for one challenge is refused for another; a proof carrying another
// device's new key, or made by another device, is refused; a migration
// the platform does not allow, and a downgrade, are refused.
func TestMigrationRefusals(t *testing.T) {
	t.Parallel()
	e := newMigrationEnv(t, sigalg.MLDSA65, devSpec{device.ClassKeygen, sigalg.ECDSAP256}, devSpec{device.ClassPUF, sigalg.ECDSAP256},
		devSpec{device.ClassKeygen, sigalg.MLDSA87})
	ctx := context.Background()

	// Cross-device: B's new key in A's proof. A signs its old half over
	// its own new key; swapping in B's key and identity breaks it.
	chA, err := e.challenge(t, e.certs[0])
	if err != nil {
		t.Fatal(err)
	}
	reqA := e.prepare(t, 0, chA, sigalg.MLDSA65)
	chB, err := e.challenge(t, e.certs[1])
	if err != nil {
		t.Fatal(err)
	}
	reqB := e.prepare(t, 1, chB, sigalg.MLDSA65)
	mixed := *reqA.Proof
	mixed.NewIdentity, mixed.NewPublicKey, mixed.NewSignature = reqB.Proof.NewIdentity, reqB.Proof.NewPublicKey, reqB.Proof.NewSignature
	_, err = e.migrate(t, e.certs[0], migration.Request{ChallengeID: reqA.ChallengeID, Proof: &mixed, CSR: reqA.CSR})
	wantProblem(t, "B's new key in A's proof", err, "continuity-rejected")
	// The challenge was used up by the refused answer: A's genuine proof
	// for it is now a replay.
	_, err = e.migrate(t, e.certs[0], reqA)
	wantProblem(t, "A's proof after its challenge was used", err, "challenge-used")
	// B's whole request sent over A's connection: the challenge is B's.
	_, err = e.migrate(t, e.certs[0], reqB)
	wantProblem(t, "B's request on A's certificate", err, "challenge-unknown")

	// A proof for an older challenge relabelled with a fresh one.
	chA2, err := e.challenge(t, e.certs[0])
	if err != nil {
		t.Fatal(err)
	}
	relabelled := *reqA.Proof
	cc2, _ := chA2.Continuity()
	relabelled.ChallengeID = cc2.ID
	_, err = e.migrate(t, e.certs[0], migration.Request{ChallengeID: chA2.ChallengeID, Proof: &relabelled, CSR: reqA.CSR})
	wantProblem(t, "a proof relabelled with a fresh challenge", err, "continuity-rejected")

	// Nothing of A changed; a fresh, genuine exchange works, and its
	// replay is refused.
	if d, _ := e.p.Store.GetDevice(ctx, e.ids[0]); d.State != store.StateOnboarded {
		t.Fatalf("A is %s after refused migrations", d.State)
	}
	chA3, err := e.challenge(t, e.certs[0])
	if err != nil {
		t.Fatal(err)
	}
	reqA3 := e.prepare(t, 0, chA3, sigalg.MLDSA65)
	if _, err := e.migrate(t, e.certs[0], reqA3); err != nil {
		t.Fatalf("genuine migration after refusals: %v", err)
	}
	_, err = e.migrate(t, e.certs[0], reqA3)
	wantProblem(t, "replayed migration", err, "device-migrated")

	// Downgrade: an ML-DSA-87 device may not move to ML-DSA-65.
	_, err = e.challenge(t, e.certs[2])
	wantProblem(t, "challenge for a downgrade", err, "migration-not-allowed")
	if d, _ := e.p.Store.GetDevice(ctx, e.ids[2]); d.State != store.StateOnboarded {
		t.Fatalf("the ML-DSA-87 device is %s", d.State)
	}
}

// TestMigrationProofDowngradeAndClosed: a proof to another suite than the
// one the migration allows is refused, and without an open migration no
// challenge is issued.
func TestMigrationProofDowngradeAndClosed(t *testing.T) {
	t.Parallel()
	e := newMigrationEnv(t, sigalg.MLDSA87, devSpec{device.ClassKeygen, sigalg.MLDSA65})
	ch, err := e.challenge(t, e.certs[0])
	if err != nil {
		t.Fatal(err)
	}
	req := e.prepare(t, 0, ch, sigalg.ECDSAP256) // the device downgrades
	_, err = e.migrate(t, e.certs[0], req)
	wantProblem(t, "ML-DSA-65 to ECDSA", err, "migration-not-allowed")
	if l, _ := e.p.Store.GetLineage(context.Background(), e.ids[0]); l.Successor != nil {
		t.Fatal("a refused downgrade recorded a successor")
	}

	closed := newMigrationEnv(t, "", devSpec{device.ClassKeygen, sigalg.ECDSAP256})
	_, err = closed.challenge(t, closed.certs[0])
	wantProblem(t, "challenge without an open migration", err, "migration-not-open")
	_, err = closed.migrate(t, closed.certs[0], migration.Request{ChallengeID: fmt.Sprintf("%032x", 1),
		Proof: &continuity.Proof{}, CSR: []byte{1}})
	if err == nil {
		t.Fatal("a migration without a challenge succeeded")
	}
	_, err = closed.challenge(t, nil)
	wantProblem(t, "challenge without a certificate", err, "not-onboarded")
}
