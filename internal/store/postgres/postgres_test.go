package postgres

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
	"github.com/hallmark-iot/hallmark/internal/store/postgres/pgtest"
	"github.com/hallmark-iot/hallmark/internal/store/storetest"
)

// The tests need a PostgreSQL server on which they may create and drop
// databases; HALLMARK_TEST_POSTGRES names it (see pgtest).
func serverURL() string { return pgtest.ServerURL() }

func newDatabase(t testing.TB) string { return pgtest.NewDatabase(t) }

// openNew opens a Store on a new database.
func openNew(t testing.TB) *Store {
	t.Helper()
	return openURL(t, newDatabase(t))
}

func openURL(t testing.TB, u string) *Store {
	t.Helper()
	s, err := Open(t.Context(), u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// The cases run beside each other: each spends about a second waiting on
// the server to create and drop its own database, so one after another
// they took most of this package's time; TestMain lets more than
// GOMAXPROCS of them wait at once. Each database is a copy of one migrated
// once per test binary, so Open finds every migration applied, as on a
// restart; the tests that open a new database (openNew) cover migrating.
func TestContract(t *testing.T) {
	template, err := migratedTemplate()
	if err != nil {
		t.Fatal(err)
	}
	storetest.RunParallel(t, func(t *testing.T) store.Store { return openURL(t, pgtest.NewDatabaseFrom(t, template)) })
}

var (
	templateOnce sync.Once
	templateName string // set once created, so that TestMain drops it
	templateErr  error
)

// migratedTemplate returns the name of a database with every migration
// applied and nothing else, made once per test binary. Nothing stays
// connected to it, as a database copied from must have no sessions.
func migratedTemplate() (string, error) {
	templateOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		admin, err := pgx.Connect(ctx, serverURL())
		if err != nil {
			templateErr = fmt.Errorf("migrated template: %w", err)
			return
		}
		defer admin.Close(context.Background())
		var b [8]byte
		rand.Read(b[:])
		name := "hallmark_test_template_" + hex.EncodeToString(b[:])
		if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
			templateErr = fmt.Errorf("migrated template: %w", err)
			return
		}
		templateName = name
		u, err := url.Parse(serverURL())
		if err != nil {
			templateErr = err
			return
		}
		u.Path = "/" + name
		s, err := Open(ctx, u.String())
		if err != nil {
			templateErr = fmt.Errorf("migrated template: %w", err)
			return
		}
		s.Close()
	})
	if templateErr != nil {
		return "", templateErr
	}
	return templateName, nil
}

// dropTemplate drops the database migratedTemplate made, if it made one.
func dropTemplate() error {
	if templateName == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin, err := pgx.Connect(ctx, serverURL())
	if err != nil {
		return err
	}
	defer admin.Close(context.Background())
	_, err = admin.Exec(ctx, "DROP DATABASE IF EXISTS "+templateName+" WITH (FORCE)")
	return err
}

// contractParallel is how many contract cases wait on the server at once
// unless -test.parallel says otherwise: enough to keep a 2-core server
// busy, few enough that their pools (up to four connections each, and one
// to create and drop the database) stay well inside PostgreSQL's default
// 100 connections beside the other packages' tests.
const contractParallel = 8

func TestMain(m *testing.M) {
	flag.Parse()
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "test.parallel" })
	if !explicit && runtime.GOMAXPROCS(0) < contractParallel {
		if err := flag.Set("test.parallel", strconv.Itoa(contractParallel)); err != nil {
			panic(err)
		}
	}
	code := m.Run()
	if err := dropTemplate(); err != nil {
		fmt.Fprintf(os.Stderr, "drop the migrated template database %s: %v\n", templateName, err)
		code = max(code, 1)
	}
	os.Exit(code)
}

func BenchmarkStore(b *testing.B) {
	storetest.Benchmark(b, func(b *testing.B) store.Store { return openNew(b) })
}

// BenchmarkImportBatch1M imports a million ECDSA P-256 devices in one
// call, the size a factory's largest manifests reach.
func BenchmarkImportBatch1M(b *testing.B) {
	const n = 1_000_000
	devices := fakeDevices("1m", n, 91)
	for b.Loop() {
		b.StopTimer()
		s := openNew(b)
		st, p := registerStationProduct(b, s)
		b.StartTimer()
		res, err := s.ImportBatch(b.Context(), store.Batch{ID: "1m", StationID: st, ProductID: p, ImportedAt: time.Now()}, devices)
		if err != nil || res.Imported != n {
			b.Fatalf("ImportBatch = %+v, %v", res, err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "devices/s")
}

// fakeDevices makes n devices with keys of keySize deterministic bytes.
func fakeDevices(seed string, n, keySize int) []store.Device {
	devices := make([]store.Device, n)
	for i := range devices {
		pub := make([]byte, 0, keySize+sha256.Size)
		var ctr [16]byte
		binary.BigEndian.PutUint64(ctr[:8], uint64(i))
		for j := uint64(0); len(pub) < keySize; j++ {
			binary.BigEndian.PutUint64(ctr[8:], j)
			h := sha256.Sum256(append([]byte(seed), ctr[:]...))
			pub = append(pub, h[:]...)
		}
		pub = pub[:keySize]
		devices[i] = store.Device{Identity: identity.FromSPKI(pub), Algorithm: sigalg.ECDSAP256,
			PublicKey: pub, RootOfTrust: "keygen", Injection: "none"}
	}
	return devices
}

func registerStationProduct(t testing.TB, s *Store) (identity.ID, string) {
	t.Helper()
	ctx := t.Context()
	st := store.Station{ID: identity.ID{1}, Name: "s", Algorithm: sigalg.Ed25519, PublicKey: []byte{1}, CreatedAt: time.Now()}
	p := store.Product{ID: "p", Name: "p", CreatedAt: time.Now()}
	if err := errors.Join(s.CreateStation(ctx, st), s.CreateProduct(ctx, p)); err != nil {
		t.Fatal(err)
	}
	return st.ID, p.ID
}

// registerDevices imports n devices in one batch and returns their
// identities.
func registerDevices(t *testing.T, s *Store, n int) []identity.ID {
	t.Helper()
	st, p := registerStationProduct(t, s)
	devices := fakeDevices("reg", n, 44)
	res, err := s.ImportBatch(t.Context(), store.Batch{ID: "b", StationID: st, ProductID: p, ImportedAt: time.Now()}, devices)
	if err != nil || res.Imported != n {
		t.Fatalf("ImportBatch = %+v, %v", res, err)
	}
	ids := make([]identity.ID, n)
	for i, d := range devices {
		ids[i] = d.Identity
	}
	return ids
}

// TestTwoReplicas runs two Stores (two pools, as two server replicas
// would have) on one database: a challenge created through one is
// consumed through either exactly once, and four claimers over both
// stores drain the job queue with no job claimed twice.
func TestTwoReplicas(t *testing.T) {
	u := newDatabase(t)
	replicas := [2]*Store{openURL(t, u), openURL(t, u)}
	ctx := t.Context()
	const rounds, racers = 20, 8
	devices := registerDevices(t, replicas[0], 200)

	t.Run("challenges", func(t *testing.T) {
		expires := time.Now().Add(time.Hour)
		wins := make([]atomic.Int32, rounds)
		errs := make(chan error, rounds*racers)
		var wg sync.WaitGroup
		for r := range rounds {
			c := store.Challenge{ID: [16]byte{byte(r + 1)}, Identity: devices[r], IssuedAt: time.Now(), ExpiresAt: expires}
			if err := replicas[r%2].CreateChallenge(ctx, c); err != nil {
				t.Fatal(err)
			}
			for i := range racers {
				s := replicas[(r+i)%2]
				wg.Go(func() {
					_, err := s.ConsumeChallenge(ctx, c.ID, time.Now())
					if err == nil {
						wins[r].Add(1)
					} else if !errors.Is(err, store.ErrChallengeUsed) {
						errs <- err
					}
				})
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		for r := range wins {
			if n := wins[r].Load(); n != 1 {
				t.Errorf("challenge %d consumed %d times through two replicas, want once", r, n)
			}
		}
	})

	t.Run("jobs", func(t *testing.T) {
		enqueued := time.Now()
		for i, id := range devices {
			cert := store.Certificate{Serial: [16]byte{0xc0, byte(i), byte(i >> 8)}, Identity: id, DER: []byte{0x30}}
			job := store.Job{Kind: store.JobRegister, Connector: "c"}
			if err := replicas[i%2].RecordOnboarding(ctx, cert, enqueued, job); err != nil {
				t.Fatal(err)
			}
		}
		var mu sync.Mutex
		claimed := map[int64]string{}
		errs := make(chan error, 4)
		var wg sync.WaitGroup
		for w := range 4 {
			s := replicas[w%2]
			worker := fmt.Sprint("replica", w%2, "-worker", w)
			wg.Go(func() {
				for {
					got, err := s.ClaimJobs(ctx, worker, enqueued.Add(time.Second), time.Hour, 7)
					if err != nil || len(got) == 0 {
						errs <- err
						return
					}
					mu.Lock()
					for _, j := range got {
						if other, dup := claimed[j.ID]; dup {
							mu.Unlock()
							errs <- fmt.Errorf("job %d claimed by %s and %s", j.ID, other, worker)
							return
						}
						claimed[j.ID] = worker
					}
					mu.Unlock()
					for _, j := range got {
						if err := s.CompleteJob(ctx, j.ID, time.Now()); err != nil {
							errs <- err
							return
						}
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if len(claimed) != len(devices) {
			t.Fatalf("claimed %d distinct jobs, want %d", len(claimed), len(devices))
		}
		done, err := replicas[1].ListJobs(ctx, store.JobFilter{State: store.JobDone, Limit: 1000})
		if err != nil || len(done) != len(devices) {
			t.Fatalf("%d jobs done (%v), want %d", len(done), err, len(devices))
		}
		for _, j := range done {
			if j.Attempts != 1 {
				t.Errorf("job %d: %d attempts, want 1", j.ID, j.Attempts)
			}
		}
	})
}

// TestConcurrentOpen starts several replicas at once on a new database:
// each must open it, and the migrations must have run exactly once (a
// second run would fail on CREATE TABLE and fail that replica's Open).
func TestConcurrentOpen(t *testing.T) {
	u := newDatabase(t)
	const replicas = 6
	stores := make([]*Store, replicas)
	errs := make([]error, replicas)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range replicas {
		wg.Go(func() {
			<-start
			stores[i], errs[i] = Open(t.Context(), u)
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("replica %d: %v", i, err)
			continue
		}
		defer stores[i].Close()
	}
	if t.Failed() {
		return
	}
	ms, err := loadMigrations(migrationFiles, migrationsDir)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := stores[0].pool.Query(t.Context(), `SELECT version, name FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var v int
		var name string
		if err := rows.Scan(&v, &name); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%04d_%s", v, name))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, m := range ms {
		want = append(want, fmt.Sprintf("%04d_%s", m.Version, m.Name))
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("schema_migrations = %v, want %v", got, want)
	}
}

// TestReopen: opening a migrated database applies nothing and keeps the
// data; a database migrated by a newer binary is refused.
func TestReopen(t *testing.T) {
	u := newDatabase(t)
	s := openURL(t, u)
	if _, err := s.AppendAudit(t.Context(), store.AuditEvent{Actor: "system", Action: "first"}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openURL(t, u)
	events, err := s.ListAudit(t.Context(), store.AuditFilter{})
	if err != nil || len(events) != 1 {
		t.Fatalf("after reopening: %+v, %v; want the one event", events, err)
	}
	if _, err := s.pool.Exec(t.Context(), `INSERT INTO schema_migrations (version, name) VALUES (999, 'future')`); err != nil {
		t.Fatal(err)
	}
	if s2, err := Open(t.Context(), u); !errors.Is(err, ErrSchemaTooNew) {
		if err == nil {
			s2.Close()
		}
		t.Fatalf("Open of a newer schema: %v, want ErrSchemaTooNew", err)
	}
}

// TestAuditAppendOnly: the schema itself refuses to change the audit log,
// whoever asks.
func TestAuditAppendOnly(t *testing.T) {
	s := openNew(t)
	if _, err := s.AppendAudit(t.Context(), store.AuditEvent{Actor: "system", Action: "test"}); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`UPDATE audit_events SET outcome = 'ok'`, `DELETE FROM audit_events`, `TRUNCATE audit_events`} {
		if _, err := s.pool.Exec(t.Context(), q); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: %v, want the append-only refusal", q, err)
		}
	}
	if err := s.Settle(t.Context()); err != nil {
		t.Fatal(err)
	}
	events, err := s.ListAudit(t.Context(), store.AuditFilter{})
	if err != nil || len(events) != 1 || events[0].Outcome != "" {
		t.Errorf("audit log after refused changes: %+v, %v", events, err)
	}
}

// TestOpenErrorsHidePassword: whatever fails, the password in the URL
// never appears in the error.
func TestOpenErrorsHidePassword(t *testing.T) {
	const pw = "s3cr3t-Pa55"
	server, err := url.Parse(serverURL())
	if err != nil {
		t.Fatal(err)
	}
	withPassword := func(u url.URL, db string) string {
		u.User = url.UserPassword(u.User.Username(), pw)
		u.Path = "/" + db
		return u.String()
	}
	refused := *server
	refused.Host = "127.0.0.1:1" // nothing listens on port 1
	for name, u := range map[string]string{
		"unknown database":   withPassword(*server, "hallmark_no_such_database"),
		"connection refused": withPassword(refused, "x"),
		"bad option":         withPassword(*server, "x") + "&pool_max_conns=lots",
		"password option":    "postgres://postgres@127.0.0.1:1/x?password=" + pw,
		"unparseable":        "postgres://postgres:" + pw + "@127.0.0.1:5432:99/x",
		"unparseable port":   "postgres://postgres:" + pw + "@127.0.0.1:port/x",
		"not a URL":          "host=127.0.0.1 password=" + pw,
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			s, err := Open(ctx, u)
			if err == nil {
				s.Close()
				t.Fatalf("Open(%s) succeeded", name)
			}
			if strings.Contains(err.Error(), pw) {
				t.Errorf("error shows the password: %v", err)
			}
			if !strings.HasPrefix(err.Error(), "postgres: open: ") {
				t.Errorf("error %q lacks its context", err)
			}
		})
	}
}

// TestPoolSize: the pool defaults to max(4, 2·GOMAXPROCS) connections,
// and pool_max_conns in the URL overrides it.
func TestPoolSize(t *testing.T) {
	u := newDatabase(t)
	if got, want := openURL(t, u).pool.Config().MaxConns, int32(max(4, 2*runtime.GOMAXPROCS(0))); got != want {
		t.Errorf("default MaxConns = %d, want %d", got, want)
	}
	if got := openURL(t, u+"&pool_max_conns=3").pool.Config().MaxConns; got != 3 {
		t.Errorf("MaxConns with pool_max_conns=3 = %d", got)
	}
}

// TestImportOrderOfDuplicates pins down the order of mixed duplicates:
// each at the position where it first is one, in input order.
func TestImportOrderOfDuplicates(t *testing.T) {
	s := openNew(t)
	st, p := registerStationProduct(t, s)
	ds := fakeDevices("dups", 6, 44)
	ctx := t.Context()
	if _, err := s.ImportBatch(ctx, store.Batch{ID: "old", StationID: st, ProductID: p}, ds[:2]); err != nil {
		t.Fatal(err)
	}
	// ds[2] repeats at 4, ds[1] is taken (at 3), ds[5] repeats at 6.
	input := []store.Device{ds[2], ds[3], ds[4], ds[1], ds[2], ds[5], ds[5], ds[1]}
	res, err := s.ImportBatch(ctx, store.Batch{ID: "new", StationID: st, ProductID: p}, input)
	if err != nil {
		t.Fatal(err)
	}
	want := []identity.ID{ds[1].Identity, ds[2].Identity, ds[5].Identity}
	if fmt.Sprint(res.Duplicates) != fmt.Sprint(want) || res.Imported != 0 {
		t.Errorf("ImportBatch = %+v, want duplicates %v", res, want)
	}
}

// TestConcurrentImports imports the same batch through two replicas at
// once, and two batches sharing devices: one import wins each, the other
// reports AlreadyImported or the shared devices, and no error escapes.
func TestConcurrentImports(t *testing.T) {
	u := newDatabase(t)
	a, b := openURL(t, u), openURL(t, u)
	st, p := registerStationProduct(t, a)
	ctx := t.Context()
	devices := fakeDevices("same", 3000, 91)
	batch := store.Batch{ID: "same", StationID: st, ProductID: p, ManifestDigest: [32]byte{1}}
	var res [2]store.ImportResult
	var errs [2]error
	var wg sync.WaitGroup
	for i, s := range []*Store{a, b} {
		wg.Go(func() { res[i], errs[i] = s.ImportBatch(ctx, batch, devices) })
	}
	wg.Wait()
	if errors.Join(errs[:]...) != nil {
		t.Fatal(errs)
	}
	if res[0].AlreadyImported == res[1].AlreadyImported || res[0].Imported+res[1].Imported != len(devices) {
		t.Fatalf("same batch imported twice at once: %+v", res)
	}

	shared := fakeDevices("shared", 2000, 91)
	for i, s := range []*Store{a, b} {
		own := fakeDevices(fmt.Sprint("own", i), 500, 91)
		b := store.Batch{ID: fmt.Sprint("shared-", i), StationID: st, ProductID: p}
		wg.Go(func() { res[i], errs[i] = s.ImportBatch(ctx, b, append(own, shared...)) })
	}
	wg.Wait()
	if errors.Join(errs[:]...) != nil {
		t.Fatal(errs)
	}
	won, lost := res[0], res[1]
	if won.Imported == 0 {
		won, lost = lost, won
	}
	if won.Imported != 2500 || lost.Imported != 0 || len(lost.Duplicates) != len(shared) {
		t.Fatalf("overlapping imports: %d imported and %d duplicates, %d imported and %d duplicates",
			won.Imported, len(won.Duplicates), lost.Imported, len(lost.Duplicates))
	}
}

// TestAuditCommitOrder: the log shows events in commit order and only
// once no running transaction can commit an event before them, so a reader
// paging with AfterSeq never skips one, although sequence numbers are
// drawn before commit and appends take no lock.
func TestAuditCommitOrder(t *testing.T) {
	u := newDatabase(t)
	s := openURL(t, u)
	ctx := t.Context()
	begin := func() pgx.Tx {
		conn, err := pgx.Connect(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close(context.Background()) })
		tx, err := conn.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return tx
	}
	list := func(after int64) []int64 {
		t.Helper()
		events, err := s.ListAudit(ctx, store.AuditFilter{AfterSeq: after})
		if err != nil {
			t.Fatal(err)
		}
		var seqs []int64
		for _, e := range events {
			seqs = append(seqs, e.Seq)
		}
		return seqs
	}
	// until lists after until it is want: other tests' transactions on
	// the shared server hold back what shows, for as long as they run.
	until := func(after int64, want ...int64) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			got := list(after)
			if slices.Equal(got, want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("after %d: %v, want %v", after, got, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// y takes its transaction ID first; x then draws the lower number;
	// y draws the higher one and commits while x runs.
	y := begin()
	if _, err := y.Exec(ctx, `SELECT pg_current_xact_id()`); err != nil {
		t.Fatal(err)
	}
	x := begin()
	low, err := appendAudit(ctx, x, store.AuditEvent{Actor: "system", Action: "x"})
	if err != nil {
		t.Fatal(err)
	}
	high, err := appendAudit(ctx, y, store.AuditEvent{Actor: "system", Action: "y"})
	if err != nil {
		t.Fatal(err)
	}
	if err := y.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	// y's event shows: no transaction older than y runs. A reader who
	// pages past it must still get x's event once x commits.
	until(0, high)
	if got := list(high); len(got) != 0 {
		t.Fatalf("after %d while x runs: %v, want none", high, got)
	}
	// An append committed while x runs waits for x to end before it shows.
	later, err := s.AppendAudit(ctx, store.AuditEvent{Actor: "system", Action: "later"})
	if err != nil {
		t.Fatal(err)
	}
	if got := list(high); len(got) != 0 {
		t.Fatalf("after %d while x runs: %v, want none", high, got)
	}
	if err := x.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	until(high, low, later)
	until(0, high, low, later)
}
