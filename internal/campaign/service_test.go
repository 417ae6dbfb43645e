package campaign

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/admin"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/migration"
	"github.com/hallmark-iot/hallmark/internal/ota"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
	"github.com/hallmark-iot/hallmark/internal/store/sqlite"
)

// The service on a real SQLite store. Devices are authenticated by the
// common name of their certificate (certAuth): the HTTPS tests in
// internal/app run the platform's real authentication; these look at
// what the service asks of the store.

var (
	_ migration.Authorizer = (*Service)(nil)
	_ migration.Completion = (*Service)(nil)
)

// certAuth accepts the identity a certificate names.
type certAuth struct{}

func (certAuth) AuthenticateDevice(_ context.Context, leaf *x509.Certificate, _, _ string) (identity.ID, error) {
	return identity.Parse(leaf.Subject.CommonName)
}

// countingStore counts the service's store calls.
type countingStore struct {
	Store
	calls atomic.Int64
}

func (c *countingStore) GetProduct(ctx context.Context, id string) (store.Product, error) {
	c.calls.Add(1)
	return c.Store.GetProduct(ctx, id)
}
func (c *countingStore) ListCampaigns(ctx context.Context, f store.CampaignFilter) ([]store.Campaign, error) {
	c.calls.Add(1)
	return c.Store.ListCampaigns(ctx, f)
}
func (c *countingStore) CampaignMembers(ctx context.Context, id string) ([]identity.ID, error) {
	c.calls.Add(1)
	return c.Store.CampaignMembers(ctx, id)
}
func (c *countingStore) GetCampaign(ctx context.Context, id string) (store.Campaign, error) {
	c.calls.Add(1)
	return c.Store.GetCampaign(ctx, id)
}
func (c *countingStore) GetCampaignDevice(ctx context.Context, cid string, id identity.ID) (store.CampaignDevice, error) {
	c.calls.Add(1)
	return c.Store.GetCampaignDevice(ctx, cid, id)
}
func (c *countingStore) OfferCampaignDevice(ctx context.Context, cid string, id identity.ID, at time.Time) (store.CampaignDevice, error) {
	c.calls.Add(1)
	return c.Store.OfferCampaignDevice(ctx, cid, id, at)
}
func (c *countingStore) DecideCampaign(ctx context.Context, cid string, id identity.ID, d store.CampaignDecider) (store.Campaign, store.CampaignDevice, error) {
	c.calls.Add(1)
	return c.Store.DecideCampaign(ctx, cid, id, d)
}

type env struct {
	st     *sqlite.Store
	count  *countingStore
	svc    *Service
	ids    []identity.ID
	leaves []*x509.Certificate
	image  string
	caller admin.Caller
}

func newEnv(tb testing.TB, n int) *env {
	tb.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, sqlite.Memory)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	now := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	station := store.Station{ID: identity.FromSPKI([]byte("station")), Name: "s", Algorithm: sigalg.Ed25519, PublicKey: []byte("station"), CreatedAt: now}
	must(tb, st.CreateStation(ctx, station))
	must(tb, st.CreateProduct(ctx, store.Product{ID: "meter", Name: "Meter", CertValidity: time.Hour, CloudEndpoint: "mqtts://x", CreatedAt: now}))
	e := &env{st: st}
	devices := make([]store.Device, n)
	for i := range devices {
		pub := []byte("device:" + strconv.Itoa(i))
		devices[i] = store.Device{Identity: identity.FromSPKI(pub), Algorithm: sigalg.ECDSAP256, PublicKey: pub, RootOfTrust: "keygen", Injection: "none"}
		e.ids = append(e.ids, devices[i].Identity)
		e.leaves = append(e.leaves, &x509.Certificate{Subject: pkix.Name{CommonName: devices[i].Identity.String()}})
	}
	if _, err := st.ImportBatch(ctx, store.Batch{ID: "b1", StationID: station.ID, ProductID: "meter", ImportedAt: now}, devices); err != nil {
		tb.Fatal(err)
	}
	for i, d := range devices {
		var serial [16]byte
		binary.BigEndian.PutUint64(serial[8:], uint64(i+1))
		must(tb, st.RecordOnboarding(ctx, store.Certificate{Serial: serial, Identity: d.Identity, NotBefore: now, NotAfter: now.Add(time.Hour),
			DER: []byte{1}, IssuedAt: now}, now))
	}
	digest := sha256.Sum256([]byte("image"))
	if _, _, err := st.PutFirmwareImage(ctx, store.FirmwareImage{Digest: digest, ProductID: "meter", Type: "app", Version: "2.0.0",
		Size: 10, UploadedAt: now, UploadedBy: "token:test"}); err != nil {
		tb.Fatal(err)
	}
	e.image = hex.EncodeToString(digest[:])
	e.count = &countingStore{Store: st}
	e.svc, err = New(Config{Store: e.count, Images: st, Devices: certAuth{}, RefreshEvery: time.Hour})
	if err != nil {
		tb.Fatal(err)
	}
	e.caller = admin.Caller{Token: store.Token{ID: "testtoken"}, Route: "/v1/admin/campaigns"}
	return e
}

func must(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}

// TestPollFromMemory: a device no open campaign targets is answered
// without a store call; a targeted one is offered its assignment once
// its wave is open.
func TestPollFromMemory(t *testing.T) {
	e := newEnv(t, 4)
	ctx := context.Background()
	c, err := e.svc.Create(ctx, e.caller, CreateRequest{Target: Target{Product: "meter", Devices: e.ids[:3]}, Image: e.image})
	must(t, err)
	before := e.count.calls.Load()
	for range 100 {
		a, wait, err := e.svc.Poll(ctx, e.leaves[3], "")
		if err != nil || a != nil || wait < DefaultPollIdle*4/5 || wait > DefaultPollIdle*6/5 {
			t.Fatalf("poll of an untargeted device: %+v, %v, %v", a, wait, err)
		}
	}
	if n := e.count.calls.Load() - before; n != 0 {
		t.Fatalf("100 polls of an untargeted device made %d store calls", n)
	}
	a, wait, err := e.svc.Poll(ctx, e.leaves[0], "")
	if err != nil || a == nil || a.CampaignID != c.Campaign.ID || a.Image.Digest != e.image || wait > DefaultPollActive*6/5 {
		t.Fatalf("poll of a targeted device: %+v, %v, %v", a, wait, err)
	}
}

// TestMigrationHooks: a device may migrate once its migration campaign's
// update booted, to the campaign's suite; the completion marks it
// migrated, which finishes it for its wave.
func TestMigrationHooks(t *testing.T) {
	e := newEnv(t, 2)
	ctx := context.Background()
	c, err := e.svc.Create(ctx, e.caller, CreateRequest{Target: Target{Product: "meter", Devices: e.ids[:1]}, Image: e.image,
		MigrateTo: sigalg.MLDSA65})
	must(t, err)
	id := c.Campaign.ID
	if _, err := e.svc.MigrationAllowed(ctx, e.ids[0]); !errors.Is(err, ErrNoMigration) {
		t.Fatalf("before the offer: %v", err)
	}
	a, _, err := e.svc.Poll(ctx, e.leaves[0], "")
	if err != nil || a == nil || a.Migration == nil || a.Migration.TargetAlgorithm != sigalg.MLDSA65 {
		t.Fatalf("assignment %+v, %v", a, err)
	}
	must(t, e.svc.Report(ctx, e.leaves[0], ota.Report{CampaignID: id, State: ota.StateInstalled}, ""))
	if _, err := e.svc.MigrationAllowed(ctx, e.ids[0]); !errors.Is(err, ErrNoMigration) {
		t.Fatalf("before the boot: %v", err)
	}
	must(t, e.svc.Report(ctx, e.leaves[0], ota.Report{CampaignID: id, State: ota.StateBooted}, ""))
	if alg, err := e.svc.MigrationAllowed(ctx, e.ids[0]); err != nil || alg != sigalg.MLDSA65 {
		t.Fatalf("after the boot: %q, %v", alg, err)
	}
	if _, err := e.svc.MigrationAllowed(ctx, e.ids[1]); !errors.Is(err, ErrNoMigration) {
		t.Fatalf("a device not targeted: %v", err)
	}
	if p, _ := e.svc.Get(ctx, e.caller, id); p.Campaign.State != store.CampaignRunning {
		t.Fatalf("booted does not finish a migration: %s", p.Campaign.State)
	}
	var e1 *admin.Error
	if err := e.svc.Report(ctx, e.leaves[0], ota.Report{CampaignID: id, State: ota.StateMigrated}, ""); !errors.As(err, &e1) || e1.Code != admin.CodeConflict {
		t.Fatalf("the old identity reporting migrated: %v", err)
	}
	// The migration service's write, then its completion hook.
	successor := e.migrate(t, 0)
	must(t, e.svc.MigrationCompleted(ctx, e.ids[0], successor))
	p, err := e.svc.Get(ctx, e.caller, id)
	if err != nil || p.Campaign.State != store.CampaignCompleted || p.Counts[ota.StateMigrated] != 1 {
		t.Fatalf("after the migration: %+v, %v", p, err)
	}
	must(t, e.svc.MigrationCompleted(ctx, e.ids[0], successor)) // again: nothing to do
	// The agent's own report, with its new certificate, is about its
	// predecessor, and changes nothing now.
	newLeaf := &x509.Certificate{Subject: pkix.Name{CommonName: successor.String()}}
	must(t, e.svc.Report(ctx, newLeaf, ota.Report{CampaignID: id, State: ota.StateMigrated}, ""))
	if _, err := e.svc.MigrationAllowed(ctx, e.ids[0]); !errors.Is(err, ErrNoMigration) {
		t.Fatalf("after the migration: %v", err)
	}
}

// TestMigratedReportFirst: the successor's report may reach the platform
// before the completion hook; the hook then finds nothing to do.
func TestMigratedReportFirst(t *testing.T) {
	e := newEnv(t, 1)
	ctx := context.Background()
	c, err := e.svc.Create(ctx, e.caller, CreateRequest{Target: Target{Product: "meter"}, Image: e.image, MigrateTo: sigalg.MLDSA87})
	must(t, err)
	e.svc.Poll(ctx, e.leaves[0], "")
	must(t, e.svc.Report(ctx, e.leaves[0], ota.Report{CampaignID: c.Campaign.ID, State: ota.StateBooted}, ""))
	successor := e.migrate(t, 0)
	newLeaf := &x509.Certificate{Subject: pkix.Name{CommonName: successor.String()}}
	must(t, e.svc.Report(ctx, newLeaf, ota.Report{CampaignID: c.Campaign.ID, State: ota.StateMigrated}, ""))
	must(t, e.svc.MigrationCompleted(ctx, e.ids[0], successor))
	p, err := e.svc.Get(ctx, e.caller, c.Campaign.ID)
	if err != nil || p.Campaign.State != store.CampaignCompleted || p.Counts[ota.StateMigrated] != 1 {
		t.Fatalf("after the migration: %+v, %v", p, err)
	}
}

// migrate records device i's migration to a new identity in the store,
// as the migration service does.
func (e *env) migrate(t *testing.T, i int) identity.ID {
	t.Helper()
	pub := []byte("successor:" + strconv.Itoa(i))
	succ := identity.FromSPKI(pub)
	var serial [16]byte
	binary.BigEndian.PutUint64(serial[:8], uint64(i+1))
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	var ch [16]byte
	ch[0] = byte(i + 1)
	if _, err := e.st.CompleteMigration(context.Background(), store.Migration{Old: e.ids[i], New: succ, NewAlgorithm: sigalg.MLDSA65,
		NewPublicKey: pub, ChallengeID: ch, At: now, Certificate: store.Certificate{Serial: serial, Identity: succ, NotBefore: now,
			NotAfter: now.Add(time.Hour), DER: []byte{2}, IssuedAt: now},
		Audit: store.AuditEvent{Actor: "device:" + e.ids[i].String(), Action: "device.migrate", Subject: e.ids[i].String(), Outcome: "ok"}}); err != nil {
		t.Fatal(err)
	}
	return succ
}

// BenchmarkPoll measures polls through the service: by devices no
// campaign targets (answered from memory) and by targeted devices whose
// assignment is open (one store read each), with the store calls per
// poll. Authentication, a store read of its own on the HTTPS route for a
// targeted device, is not in these figures.
func BenchmarkPoll(b *testing.B) {
	for _, targeted := range []bool{false, true} {
		name := "untargeted"
		if targeted {
			name = "targeted"
		}
		b.Run(name, func(b *testing.B) {
			e := newEnv(b, 2000)
			ctx := context.Background()
			_, err := e.svc.Create(ctx, e.caller, CreateRequest{Target: Target{Product: "meter", Devices: e.ids[:1000]}, Image: e.image})
			must(b, err)
			leaves := e.leaves[1000:]
			if targeted {
				leaves = e.leaves[:1000]
				for _, l := range leaves { // offered once: later polls read
					e.svc.Poll(ctx, l, "")
				}
			}
			before := e.count.calls.Load()
			var i atomic.Int64
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, _, err := e.svc.Poll(ctx, leaves[int(i.Add(1))%len(leaves)], ""); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "polls/s")
			b.ReportMetric(float64(e.count.calls.Load()-before)/float64(b.N), "store-calls/poll")
		})
	}
}
