// Package storetest owns the contract every registry backend must meet: a
// test suite (Run) and benchmarks (Benchmark) written against the
// interfaces of internal/store only, so the SQLite and PostgreSQL backends
// are held to the same behaviour.
//
// Beyond what the interface comments say, the suite pins down the choices
// a caller can see: list orders, page limits, which fields an import takes
// from the batch, idempotent revocation, time precision (microseconds,
// returned in UTC) and that concurrent writes never fail for being
// concurrent. docs/store.md lists them.
package storetest

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"reflect"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// Run runs the contract suite. open must return a new, empty, migrated
// store for each call; the suite closes it (Close may then be called a
// second time, which must not panic).
func Run(t *testing.T, open func(t *testing.T) store.Store) { run(t, open, false) }

// RunParallel runs the contract suite as Run does, its cases beside each
// other (t.Parallel, up to -test.parallel at once). It is for a backend
// whose cases spend their time waiting on a server (PostgreSQL: creating
// and dropping a database per case), not on this process's CPU.
// Each case has a store of its own, so they share nothing but the server.
func RunParallel(t *testing.T, open func(t *testing.T) store.Store) { run(t, open, true) }

func run(t *testing.T, open func(t *testing.T) store.Store, parallel bool) {
	for _, c := range []struct {
		name string
		test func(t *testing.T, f *fixture)
	}{
		{"Stations", testStations},
		{"Products", testProducts},
		{"Tokens", testTokens},
		{"ImportBatch", testImportBatch},
		{"ImportBatchRefusals", testImportRefusals},
		{"ImportBatchLarge", testImportBatchLarge},
		{"ImportBatchStream", testImportBatchStream},
		{"ListDevices", testListDevices},
		{"GetDeviceOfSuite", testGetDeviceOfSuite},
		{"RevokeDevice", testRevokeDevice},
		{"Transitions", testTransitions},
		{"LifecycleCertificates", testLifecycleCertificates},
		{"ListRevokedCertificates", testListRevokedCertificates},
		{"RevokeCertificate", testRevokeCertificate},
		{"TransitionRace", testTransitionRace},
		{"Challenges", testChallenges},
		{"ConsumeChallengeConcurrently", testConsumeConcurrently},
		{"DeleteExpiredChallenges", testDeleteExpiredChallenges},
		{"RecordOnboarding", testRecordOnboarding},
		{"GetChallenge", testGetChallenge},
		{"CompleteOnboarding", testCompleteOnboarding},
		{"Certificates", testCertificates},
		{"Supersession", testSupersession},
		{"OperationalKeyUnique", testOperationalKeyUnique},
		{"OperationalKeyRace", testOperationalKeyRace},
		{"RenewalLimit", testRenewalLimit},
		{"RenewalLimitRace", testRenewalLimitRace},
		{"RenewalWindowProduct", testRenewalWindowProduct},
		{"RenewalWindow", testRenewalWindow},
		{"RenewalGrant", testRenewalGrant},
		{"RenewalGrantRace", testRenewalGrantRace},
		{"RevokeSuperseded", testRevokeSuperseded},
		{"RevokeSupersededConcurrently", testRevokeSupersededConcurrently},
		{"Audit", testAudit},
		{"AuditTimeAndLimits", testAuditTimeAndLimits},
		{"AuditChain", testAuditChain}, {"AuditChainPrune", testAuditChainPrune}, {"AuditChainConcurrently", testAuditChainConcurrently},
		{"TimePrecision", testTimePrecision},
		{"ConcurrentWrites", testConcurrentWrites},
		{"PingClose", testPingClose},
		{"JobsOutbox", testJobsOutbox},
		{"LatestJobs", testLatestJobs},
		{"ClaimJobs", testClaimJobs},
		{"ClaimJobsConcurrently", testClaimConcurrently},
		{"StatusReports", testStatusReports}, {"DeviceEvents", testDeviceEvents}, {"ExpirySweep", testExpirySweep}, {"SilenceSweep", testSilenceSweep}, {"CountMonitoring", testCountMonitoring},
		{"ProductPolicy", testProductPolicy}, {"StatusRecorded", testStatusRecorded}, {"FirmwareOutdated", testFirmwareOutdated}, {"CloneNotices", testCloneNotices}, {"OnboardingSource", testOnboardingSource}, {"FailedProofs", testFailedProofs}, {"SilencePerProduct", testSilencePerProduct},
		{"EventCursors", testEventCursors}, {"EventCursorsConcurrently", testEventCursorsConcurrently}, {"EventCursorLease", testEventCursorLease}, {"EventCursorLeaseConcurrently", testEventCursorLeaseConcurrently},
		{"MigrationChallenges", testMigrationChallenges}, {"CompleteMigration", testCompleteMigration}, {"MigrationRefusals", testMigrationRefusals},
		{"ProductIssuingCA", testProductIssuingCA},
		{"ProductRequireLocked", testProductRequireLocked}, {"DeviceLocks", testDeviceLocks},
		{"FirmwarePolicy", testFirmwarePolicy}, {"FirmwareImages", testFirmwareImages}, {"ListFirmwareImages", testListFirmwareImages}, {"PutFirmwareConcurrently", testPutFirmwareConcurrently},
		{"Campaigns", testCampaigns}, {"CampaignOffer", testCampaignOffer}, {"CampaignDecide", testCampaignDecide}, {"CampaignDecideConcurrently", testCampaignDecideConcurrently},
		{"CampaignOpenDevicesUnique", testCampaignOpenDevicesUnique}, {"CampaignCreateConcurrently", testCampaignCreateConcurrently},
		{"AllocationPolicy", testAllocationPolicy}, {"AllocateEndpoint", testAllocateEndpoint},
		{"ConsoleSessions", testConsoleSessions}, {"ListBatches", testListBatches},
		{"ConsoleDeviceFilters", testConsoleDeviceFilters}, {"FleetSummary", testFleetSummary},
	} {
		t.Run(c.name, func(t *testing.T) {
			if parallel {
				t.Parallel()
			}
			c.test(t, newFixture(t, open))
		})
	}
}

// fixture is a fresh store with one station and one product in it.
// settler is a store whose ordered logs (audit, device events) show a
// write only once every transaction older than it has ended (PostgreSQL:
// a transaction anywhere in the cluster holds them back). Settle waits
// for that; the suite calls it before reading back what it just wrote, as
// tests on one shared server run beside other transactions.
type settler interface {
	Settle(ctx context.Context) error
}

// settle waits until what this goroutine wrote shows in the ordered logs.
func (f *fixture) settle(t *testing.T) {
	t.Helper()
	if s, ok := f.s.(settler); ok {
		ctx, cancel := context.WithTimeout(f.ctx, 30*time.Second)
		defer cancel()
		must(t, s.Settle(ctx))
	}
}

type fixture struct {
	s       store.Store
	ctx     context.Context
	station store.Station
	product store.Product
}

// base is the suite's clock: microsecond precision, deliberately not UTC,
// so a backend that keeps the zone or drops microseconds fails.
var base = time.Date(2026, 11, 25, 10, 30, 0, 123456000, time.FixedZone("CET", 3600))

func at(d time.Duration) time.Time { return base.Add(d) }

func newFixture[TB testing.TB](t TB, open func(t TB) store.Store) *fixture {
	s := open(t)
	t.Cleanup(func() { s.Close() })
	f := &fixture{s: s, ctx: t.Context()}
	f.station = newStation("station-1")
	f.product = store.Product{
		ID: "sensor-v1", Name: "Sensor v1", CertValidity: 365 * 24 * time.Hour,
		CloudEndpoint: "mqtts://broker.example.com:8883", CreatedAt: at(0),
	}
	must(t, s.CreateStation(f.ctx, f.station))
	must(t, s.CreateProduct(f.ctx, f.product))
	return f
}

func newStation(name string) store.Station {
	pub := fakeKey("station:"+name, 91)
	return store.Station{
		ID: identity.FromSPKI(pub), Name: name, Algorithm: sigalg.ECDSAP256,
		PublicKey: pub, CreatedAt: at(time.Minute),
	}
}

// fakeKey is n deterministic bytes standing in for a DER SPKI: the store
// never parses keys, and real ones would make the suite slow.
func fakeKey(seed string, n int) []byte {
	out := make([]byte, 0, n+sha256.Size)
	var ctr [8]byte
	for i := uint64(0); len(out) < n; i++ {
		binary.BigEndian.PutUint64(ctr[:], i)
		h := sha256.Sum256(append([]byte(seed), ctr[:]...))
		out = append(out, h[:]...)
	}
	return out[:n]
}

type deviceClass struct {
	alg       sigalg.ID
	keySize   int
	root, inj string
}

// Device classes the fixtures cycle through, with realistic key sizes.
var classes = []deviceClass{
	{sigalg.ECDSAP256, 91, "puf", "none"},
	{sigalg.Ed25519, 44, "keygen", "none"},
	{sigalg.MLDSA65, 1974, "inject", "encrypted"},
}

// makeDevices makes n devices whose identities are SHA-256 of their keys,
// cycling through the device classes. Only the fields a manifest supplies
// are set.
func makeDevices(seed string, n int) []store.Device {
	return makeDevicesOf(seed, n, classes)
}

func makeDevicesOf(seed string, n int, classes []deviceClass) []store.Device {
	devices := make([]store.Device, n)
	for i := range devices {
		c := classes[i%len(classes)]
		pub := fakeKey(seed+":"+strconv.Itoa(i), c.keySize)
		devices[i] = store.Device{
			Identity: identity.FromSPKI(pub), Algorithm: c.alg, PublicKey: pub,
			RootOfTrust: c.root, Injection: c.inj,
		}
	}
	return devices
}

func (f *fixture) batch(id string, digestSeed string) store.Batch {
	return store.Batch{
		ID: id, StationID: f.station.ID, ProductID: f.product.ID,
		ManifestDigest: sha256.Sum256([]byte(digestSeed)), ImportedAt: at(time.Hour),
	}
}

// imported is what GetDevice must return for d after importing it in b.
func imported(d store.Device, b store.Batch) store.Device {
	d.BatchID, d.StationID, d.ProductID = b.ID, b.StationID, b.ProductID
	d.State = store.StateRegistered
	d.CreatedAt = b.ImportedAt
	return d
}

// mustImport imports devices in a new batch and checks the result.
func (f *fixture) mustImport(t testing.TB, b store.Batch, devices []store.Device) {
	t.Helper()
	res, err := f.s.ImportBatch(f.ctx, b, devices)
	if err != nil || res.Imported != len(devices) || res.AlreadyImported || len(res.Duplicates) != 0 {
		t.Fatalf("ImportBatch(%q, %d devices) = %+v, %v; want all imported", b.ID, len(devices), res, err)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantErr(t testing.TB, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: err = %v, want %v", what, err, want)
	}
}

// equal compares a record read back with the one expected, after checking
// every time in got is in UTC. want's times may be in any zone.
func equal[T any](t testing.TB, what string, got, want T) {
	t.Helper()
	if loc := nonUTC(reflect.ValueOf(got)); loc != "" {
		t.Errorf("%s: time in zone %s, want UTC", what, loc)
	}
	g, w := normalize(reflect.ValueOf(got)), normalize(reflect.ValueOf(want))
	if !reflect.DeepEqual(g, w) {
		t.Errorf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

var timeType = reflect.TypeFor[time.Time]()

// nonUTC returns the name of the first non-UTC, non-zero time in v.
func nonUTC(v reflect.Value) string {
	switch {
	case v.Type() == timeType:
		if t := v.Interface().(time.Time); !t.IsZero() && t.Location() != time.UTC {
			return t.Location().String()
		}
	case v.Kind() == reflect.Struct:
		for i := range v.NumField() {
			if loc := nonUTC(v.Field(i)); loc != "" {
				return loc
			}
		}
	case v.Kind() == reflect.Slice && !plain(v.Type().Elem()):
		for i := range v.Len() {
			if loc := nonUTC(v.Index(i)); loc != "" {
				return loc
			}
		}
	}
	return ""
}

// normalize returns a copy of v with times in UTC and empty slices nil,
// the two differences DeepEqual must not see.
func normalize(v reflect.Value) any {
	out := reflect.New(v.Type()).Elem()
	normalizeInto(out, v)
	return out.Interface()
}

func normalizeInto(dst, src reflect.Value) {
	switch {
	case src.Type() == timeType:
		if t := src.Interface().(time.Time); !t.IsZero() {
			dst.Set(reflect.ValueOf(t.UTC()))
		}
	case src.Kind() == reflect.Struct:
		for i := range src.NumField() {
			normalizeInto(dst.Field(i), src.Field(i))
		}
	case src.Kind() == reflect.Slice:
		if src.Len() == 0 {
			return
		}
		if plain(src.Type().Elem()) {
			dst.Set(src)
			return
		}
		dst.Set(reflect.MakeSlice(src.Type(), src.Len(), src.Len()))
		for i := range src.Len() {
			normalizeInto(dst.Index(i), src.Index(i))
		}
	default:
		dst.Set(src)
	}
}

// plain reports a type holding neither times nor slices, which normalize
// copies as it is (byte slices, above all, element by element is slow).
func plain(t reflect.Type) bool {
	switch {
	case t == timeType || t.Kind() == reflect.Slice:
		return false
	case t.Kind() == reflect.Struct:
		for i := range t.NumField() {
			if !plain(t.Field(i).Type) {
				return false
			}
		}
	}
	return true
}

// race makes n calls of call at once, released together, and returns
// their errors by index.
func race(n int, call func(i int) error) []error {
	start := make(chan struct{})
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = call(i)
		})
	}
	close(start)
	wg.Wait()
	return errs
}

// wins counts the calls of a race that succeeded; any error other than
// lost (the loser's expected answer) fails t.
func wins(t *testing.T, errs []error, lost error, what string) int {
	t.Helper()
	n := 0
	for _, err := range errs {
		switch {
		case err == nil:
			n++
		case !errors.Is(err, lost):
			t.Errorf("%s: %v, want success or %v", what, err, lost)
		}
	}
	return n
}
