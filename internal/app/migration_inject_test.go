package app

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/device"
	"github.com/hallmark-iot/hallmark/internal/firmware"
	"github.com/hallmark-iot/hallmark/internal/httpapi"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/manifest"
	"github.com/hallmark-iot/hallmark/internal/migration"
	"github.com/hallmark-iot/hallmark/internal/onboarding"
	"github.com/hallmark-iot/hallmark/internal/onboarding/onboardpki"
	"github.com/hallmark-iot/hallmark/internal/ota"
	"github.com/hallmark-iot/hallmark/internal/ota/otatest"
	"github.com/hallmark-iot/hallmark/internal/sealing"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// Inject-class chips migrating over the air (docs/migration.md,
// "Inject-class chips"): the update agent on a chip whose key was
// injected in the factory, sealed to its transport key, receives its new
// ML-DSA key from the platform's key store sealed the same way, proves
// continuity and commits. The update's assignment and image come from
// otatest's stand-in (the test is about the migration); the migration and
// onboarding routes are the real platform's, over HTTPS.

// syncBuffer is a log sink the platform's goroutines write concurrently.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}

type injectEnv struct {
	p       *Platform
	dataDir string
	log     *syncBuffer
	vendor  *otatest.Vendor
	updates *otatest.Platform
	state   string
	old     identity.ID
}

// newInjectEnv starts a platform open to ML-DSA-65 migrations and makes
// one inject chip (ECDSA P-256, encrypted channel) as a station would:
// its key generated outside, sealed to its transport key, recorded in a
// manifest; then onboards it and saves it with its credentials.
func newInjectEnv(t *testing.T) *injectEnv {
	t.Helper()
	return newInjectEnvWith(t, newDataDir(t), func(*Config) {})
}

// newInjectEnvWith is newInjectEnv on dataDir with cfg changed by edit.
func newInjectEnvWith(t *testing.T, dataDir string, edit func(*Config)) *injectEnv {
	t.Helper()
	e := &injectEnv{dataDir: dataDir, log: &syncBuffer{}, vendor: otatest.NewVendor(t, 1), updates: otatest.New(),
		state: filepath.Join(t.TempDir(), "chip.json")}
	cfg := Config{DataDir: e.dataDir, Listen: "127.0.0.1:0", ServerName: "localhost",
		CASuite: sigalg.ECDSAP256, Migration: MigrationConfig{OpenTo: sigalg.MLDSA65},
		Log: slog.New(slog.NewTextHandler(e.log, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	edit(&cfg)
	p, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	e.p = p

	d, err := device.New(device.Config{Class: device.ClassInject, Algorithm: sigalg.ECDSAP256, RootKeyHashes: e.vendor.Hashes, EncryptedChannel: true})
	if err != nil {
		t.Fatal(err)
	}
	suite, _ := sigalg.ECDSAP256.Suite()
	key, _ := suite.GenerateKey(rand.Reader)
	der, _ := sigalg.MarshalPrivateKey(key)
	transport, err := d.TransportKey()
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := transport.Wrap(der)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.InjectKey(sealed, true); err != nil {
		t.Fatal(err)
	}
	ief, _ := firmware.New(firmware.Metadata{Type: firmware.TypeIEF}, device.IEFPayload())
	ief.Sign(e.vendor.Keys[0])
	iefBin, _ := ief.MarshalBinary()
	if err := d.Program(iefBin); err != nil {
		t.Fatal(err)
	}
	if err := d.Boot(); err != nil {
		t.Fatal(err)
	}
	nonce := make([]byte, 32)
	rand.Read(nonce)
	enr, err := d.Enrol(nonce)
	if err != nil {
		t.Fatal(err)
	}
	ed, _ := sigalg.Lookup("ed25519")
	stationKey, _ := ed.GenerateKey(rand.Reader)
	f := &fleet{}
	f.stationPEM, _ = sigalg.EncodePublicKeyPEM(stationKey.Public())
	var buf bytes.Buffer
	w, err := manifest.NewWriter(&buf, manifest.Header{Batch: "batch-1"}, stationKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Add(context.Background(), manifest.Record{Identity: enr.Identity, Algorithm: sigalg.ECDSAP256, SPKI: enr.PublicKey,
		RootOfTrust: manifest.Inject, Injection: manifest.Encrypted, Time: time.Now(), Nonce: nonce, Proof: enr.Proof}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f.manifest = buf.Bytes()
	f.register(t, adminClient(t, p))
	e.old = enr.Identity

	if err := d.Program(e.vendor.Image(t, otatest.ImageSpec{Counter: 1, Payload: "app one"})); err != nil {
		t.Fatal(err)
	}
	if err := d.Boot(); err != nil {
		t.Fatal(err)
	}
	creds, _, err := onboard(t, p, d, enr.Identity)
	if err != nil {
		t.Fatal(err)
	}
	d.SetCredentials(device.Credentials{CertificateChain: creds.CertificateChain, TrustBundle: creds.TrustBundle,
		CloudEndpoint: creds.CloudEndpoint, OperationalAlg: sigalg.ECDSAP256})
	if err := d.Save(e.state); err != nil {
		t.Fatal(err)
	}
	// The campaign's assignment: firmware 2.0.2, then ML-DSA-65.
	a := e.updates.Offer("cmp_inject", e.vendor.Image(t, otatest.ImageSpec{Counter: 2, Payload: "app two"}), otatest.Version(2), 2)
	a.Migration = &ota.MigrationOrder{TargetAlgorithm: sigalg.MLDSA65}
	e.updates.SetAssignment(&a)
	return e
}

// agent loads the chip from its state file, as a chip powering up does,
// with the real platform's migration routes under its current
// certificate and its onboarding routes without one.
func (e *injectEnv) agent(t *testing.T, wrap func(ota.MigrationTransport) ota.MigrationTransport) (*ota.Agent, *bytes.Buffer) {
	t.Helper()
	d, err := device.Load(e.state, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Boot(); err != nil {
		t.Fatal(err)
	}
	held := d.Credentials()
	op, err := d.OperationalKey(held.OperationalAlg)
	if err != nil {
		t.Fatal(err)
	}
	cert := &tls.Certificate{PrivateKey: op}
	for _, c := range held.CertificateChain {
		block, _ := pem.Decode([]byte(c))
		cert.Certificate = append(cert.Certificate, block.Bytes)
	}
	tr, err := httpapi.NewOTATransport(e.p.URL(), tlsClient(e.p, cert))
	if err != nil {
		t.Fatal(err)
	}
	var mt ota.MigrationTransport = tr
	if wrap != nil {
		mt = wrap(mt)
	}
	out := &bytes.Buffer{}
	return &ota.Agent{Device: d, StatePath: e.state, Transport: e.updates, Migrator: mt, CSRs: onboardpki.CSRs{},
		Onboarding: deviceClient(e.p.URL(), tlsClient(e.p, nil)), Out: out,
		Reconnect: func(*device.Device) (ota.Transport, error) { return e.updates, nil }}, out
}

// migrated checks the platform's records after the chip's migration: the
// old identity migrated to the chip's new one, which is onboarded, an
// inject chip's successor, and audited as holding a platform-made key.
func (e *injectEnv) migrated(t *testing.T) identity.ID {
	t.Helper()
	ctx := context.Background()
	d, err := device.Load(e.state, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Boot(); err != nil {
		t.Fatal(err)
	}
	newID, _ := d.Identity()
	if d.Algorithm() != sigalg.MLDSA65 || newID == e.old {
		t.Fatalf("chip is %s %s after migrating", d.Algorithm(), newID)
	}
	if _, err := d.PendingMigration(); !errors.Is(err, device.ErrNoMigration) {
		t.Fatalf("chip still has a pending migration: %v", err)
	}
	admin := adminClient(t, e.p)
	oldDev, err := admin.GetDevice(ctx, e.old)
	if err != nil || oldDev.State != "migrated" {
		t.Fatalf("old identity: %+v, %v", oldDev, err)
	}
	newDev, err := admin.GetDevice(ctx, newID)
	if err != nil || newDev.State != "onboarded" || newDev.Algorithm != string(sigalg.MLDSA65) ||
		newDev.RootOfTrust != "inject" || newDev.Injection != "encrypted" {
		t.Fatalf("successor: %+v, %v", newDev, err)
	}
	lin, err := e.p.Store.GetLineage(ctx, newID)
	if err != nil || lin.Predecessor == nil || lin.Predecessor.Predecessor != e.old {
		t.Fatalf("lineage of the successor: %+v, %v", lin, err)
	}
	list, err := admin.ListAudit(ctx, httpapi.AuditQuery{Action: migration.ActionMigrate, Subject: e.old.String()})
	if err != nil || len(list.Events) != 1 || list.Events[0].Outcome != "ok" ||
		!strings.Contains(list.Events[0].Detail, migration.InjectedKeyNote) || !strings.Contains(list.Events[0].Detail, newID.String()) {
		t.Fatalf("device.migrate audit: %+v, %v", list, err)
	}
	sealedKeys, err := admin.ListAudit(ctx, httpapi.AuditQuery{Action: migration.ActionKeySealed, Subject: e.old.String()})
	if err != nil || len(sealedKeys.Events) == 0 || !strings.Contains(sealedKeys.Events[len(sealedKeys.Events)-1].Detail, newID.String()) {
		t.Fatalf("key-sealed audit: %+v, %v", sealedKeys, err)
	}
	return newID
}

// TestInjectChipMigratesOverTheAir: the agent sends its transport key
// signed by its injected ECDSA key, receives an ML-DSA-65 key sealed to
// it, proves continuity and commits; the new key's private half is
// nowhere in the platform's data directory or its log.
func TestInjectChipMigratesOverTheAir(t *testing.T) {
	t.Parallel()
	e := newInjectEnv(t)
	a, out := e.agent(t, nil)
	res, err := a.Step(context.Background())
	if err != nil {
		t.Fatalf("step: %v\n%s", err, out)
	}
	if res.Outcome == nil || res.Outcome.State != ota.StateMigrated {
		t.Fatalf("outcome %+v\n%s", res.Outcome, out)
	}
	if !strings.Contains(out.String(), "received sealed from the platform") {
		t.Errorf("agent did not take a sealed key:\n%s", out)
	}
	e.migrated(t)
	e.platformNeverHeld(t)
}

// platformNeverHeld looks for the chip's new private key, in the forms
// it could have been written in, in every file of the platform's data
// directory (database, WAL, key store) and in its log.
func (e *injectEnv) platformNeverHeld(t *testing.T) {
	t.Helper()
	raw, err := os.ReadFile(e.state)
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		KeyStore struct {
			EnrolmentKey []byte `json:"enrolment_key"`
		} `json:"protected_key_store"`
	}
	if err := json.Unmarshal(raw, &st); err != nil || len(st.KeyStore.EnrolmentKey) < 48 {
		t.Fatalf("chip state: %v (key of %d bytes)", err, len(st.KeyStore.EnrolmentKey))
	}
	if _, suite, err := sigalg.ParsePrivateKeyWithSuite(st.KeyStore.EnrolmentKey); err != nil || suite.ID() != sigalg.MLDSA65 {
		t.Fatalf("chip's enrolment key: %v", err)
	}
	der := st.KeyStore.EnrolmentKey
	secret := der[len(der)-32:] // the seed (or the end of the expanded key)
	var needles [][]byte
	for _, s := range [][]byte{der, secret} {
		needles = append(needles, s, []byte(hex.EncodeToString(s)), []byte(base64.StdEncoding.EncodeToString(s)))
	}
	look := func(where string, data []byte) {
		for _, n := range needles {
			if bytes.Contains(data, n) {
				t.Errorf("the chip's new private key is in %s", where)
				return
			}
		}
	}
	look("the platform's log", e.log.Bytes())
	if len(e.log.Bytes()) == 0 {
		t.Error("the platform logged nothing: the log check proves nothing")
	}
	files := 0
	err = filepath.WalkDir(e.dataDir, func(path string, de os.DirEntry, err error) error {
		if err != nil || de.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		look(path, data)
		return nil
	})
	if err != nil || files == 0 {
		t.Fatalf("data directory: %v (%d files)", err, files)
	}
}

// dropAnswer passes the migration to the platform and then loses its
// answer, as a chip that loses power between the platform's commit and
// its own save does.
type dropAnswer struct {
	ota.MigrationTransport
	committed bool
}

var errPowerLost = errors.New("power lost before the answer was saved")

func (d *dropAnswer) Migrate(ctx context.Context, req migration.Request) (*onboarding.Credentials, error) {
	creds, err := d.MigrationTransport.Migrate(ctx, req)
	if err != nil {
		return nil, err
	}
	d.committed = creds != nil
	return nil, errPowerLost
}

// TestMigrationRecoversAfterLostAnswer: the platform commits the
// migration, the chip dies before saving its answer. Powered up again it
// holds the pending key and the old credentials; the platform refuses the
// old identity as migrated, and the agent onboards the new identity with
// the pending key, commits, and reports migrated.
func TestMigrationRecoversAfterLostAnswer(t *testing.T) {
	t.Parallel()
	e := newInjectEnv(t)
	var drop *dropAnswer
	a, out := e.agent(t, func(m ota.MigrationTransport) ota.MigrationTransport {
		drop = &dropAnswer{MigrationTransport: m}
		return drop
	})
	if _, err := a.Step(context.Background()); !errors.Is(err, errPowerLost) || !drop.committed {
		t.Fatalf("step = %v (committed %v), want the lost answer\n%s", err, drop.committed, out)
	}
	// What survived the power cut: the pending key, the old credentials.
	d, err := device.Load(e.state, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Boot(); err != nil {
		t.Fatal(err)
	}
	pending, err := d.PendingMigration()
	if err != nil {
		t.Fatalf("pending key lost: %v", err)
	}
	if id, _ := d.Identity(); id != e.old {
		t.Fatalf("chip committed before saving its answer: %s", id)
	}
	if dev, err := adminClient(t, e.p).GetDevice(context.Background(), e.old); err != nil || dev.State != "migrated" {
		t.Fatalf("platform did not commit: %+v, %v", dev, err)
	}

	a, out = e.agent(t, nil)
	res, err := a.Step(context.Background())
	if err != nil {
		t.Fatalf("step after power-up: %v\n%s", err, out)
	}
	if res.Outcome == nil || res.Outcome.State != ota.StateMigrated || !strings.Contains(out.String(), "recovering") {
		t.Fatalf("outcome %+v\n%s", res.Outcome, out)
	}
	if got := e.migrated(t); got != pending.Identity {
		t.Fatalf("chip is %s, pending key was %s", got, pending.Identity)
	}
	if _, err := os.Stat(ota.JournalPath(e.state)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("journal left behind: %v", err)
	}
	// Same source address: re-onboarding the successor is no clone alarm.
	events, err := e.p.Store.ListEvents(context.Background(), store.EventFilter{Limit: 100})
	if err != nil || len(events) == 0 {
		t.Fatalf("events: %d, %v", len(events), err)
	}
	for _, ev := range events {
		if ev.Kind == store.EventCloneSuspected {
			t.Errorf("recovery raised %s", ev.Kind)
		}
	}
}

// TestInjectTransportKeySubstituted: a relay that puts its own transport
// key in the chip's request cannot produce the old key's signature over
// it; the platform refuses before generating anything.
func TestInjectTransportKeySubstituted(t *testing.T) {
	t.Parallel()
	e := newInjectEnv(t)
	d, err := device.Load(e.state, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Boot(); err != nil {
		t.Fatal(err)
	}
	own, _ := d.TransportKey()
	ownRaw := sealing.MarshalPublicKey(own)
	_, sig, err := d.Prove(migration.TransportKeyContext, migration.TransportKeyMessage("localhost", ownRaw))
	if err != nil {
		t.Fatal(err)
	}
	relay, _ := sealing.GenerateKey(sealing.DefaultKEM)
	a, _ := e.agent(t, nil)
	ctx := context.Background()
	for name, req := range map[string]migration.ChallengeRequest{
		"relay's key, chip's signature": {TransportKey: sealing.MarshalPublicKey(relay.Public()), TransportKeySignature: sig},
		"signed for another platform": {TransportKey: ownRaw, TransportKeySignature: func() []byte {
			_, s, _ := d.Prove(migration.TransportKeyContext, migration.TransportKeyMessage("elsewhere.example", ownRaw))
			return s
		}()},
		"no transport key": {},
	} {
		if _, err := a.Migrator.MigrationChallenge(ctx, req); !isProblem(err, "transport-key-rejected") {
			t.Errorf("%s: %v, want transport-key-rejected", name, err)
		}
	}
	list, err := adminClient(t, e.p).ListAudit(ctx, httpapi.AuditQuery{Action: migration.ActionKeySealed})
	if err != nil || len(list.Events) != 0 {
		t.Fatalf("a key was sealed for a refused request: %+v, %v", list, err)
	}
	// The chip's own, correctly signed, is answered with a sealed key
	// that only it opens, naming the key in the nonce.
	resp, err := a.Migrator.MigrationChallenge(ctx, migration.ChallengeRequest{TransportKey: ownRaw, TransportKeySignature: sig})
	if err != nil {
		t.Fatal(err)
	}
	named, ok := resp.SealedKeyIdentity()
	if !ok || resp.TargetAlgorithm != sigalg.MLDSA65 {
		t.Fatalf("challenge %+v", resp)
	}
	if _, err := sealing.Open(relay, []byte(migration.KeyWrapInfo), nil, resp.SealedKey); err == nil {
		t.Fatal("another transport key opens the sealed key")
	}
	m, err := d.BeginInjectedMigration(resp.SealedKey)
	if err != nil || m.Identity != named || m.Algorithm != sigalg.MLDSA65 {
		t.Fatalf("chip opened %+v, %v; challenge names %s", m, err, named)
	}
}
