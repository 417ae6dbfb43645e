package fleet

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/app"
	"github.com/hallmark-iot/hallmark/internal/httpapi"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/manifest"
	"github.com/hallmark-iot/hallmark/internal/onboarding"
	"github.com/hallmark-iot/hallmark/internal/onboarding/onboardpki"
	"github.com/hallmark-iot/hallmark/internal/onboarding/onboardstore"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

func lookup(t testing.TB, id sigalg.ID) sigalg.Suite {
	t.Helper()
	s, err := id.Suite()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func testFleet(t testing.TB, seedByte byte, suite sigalg.ID) *Fleet {
	t.Helper()
	f, err := New(bytes.Repeat([]byte{seedByte}, SeedSize), lookup(t, suite), nil)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestDevicesAreDeterministic(t *testing.T) {
	for _, suite := range []sigalg.ID{sigalg.ECDSAP256, sigalg.Ed25519, sigalg.MLDSA44} {
		t.Run(string(suite), func(t *testing.T) {
			a, b := testFleet(t, 1, suite), testFleet(t, 1, suite)
			other := testFleet(t, 2, suite)
			seen := map[identity.ID]uint64{}
			for _, i := range []uint64{0, 1, 2, 63, 64, 1 << 40} {
				da, err := a.Device(i)
				if err != nil {
					t.Fatal(err)
				}
				db, _ := b.Device(i)
				if da.Identity != db.Identity || !bytes.Equal(da.SPKI, db.SPKI) {
					t.Fatalf("device %d: two fleets of one seed disagree", i)
				}
				if want, _ := identity.FromPublicKey(mustKey(t, a.EnrolmentKey, i).Public()); want != da.Identity {
					t.Fatalf("device %d: identity is not its key's", i)
				}
				if prev, dup := seen[da.Identity]; dup {
					t.Fatalf("devices %d and %d share identity %s", prev, i, da.Identity)
				}
				seen[da.Identity] = i
				if do, _ := other.Device(i); do.Identity == da.Identity {
					t.Fatalf("device %d: another seed gives the same identity", i)
				}
				opID, _ := identity.FromPublicKey(mustKey(t, a.OperationalKey, i).Public())
				if opID == da.Identity {
					t.Fatalf("device %d: operational key is the enrolment key", i)
				}
			}
		})
	}
}

func mustKey(t *testing.T, derive func(uint64) (crypto.Signer, error), i uint64) crypto.Signer {
	t.Helper()
	k, err := derive(i)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestNewRefusesBadSeed(t *testing.T) {
	if _, err := New(make([]byte, 31), lookup(t, sigalg.Ed25519), nil); err == nil {
		t.Fatal("a 31-byte seed was accepted")
	}
}

func TestDeviceProofVerifies(t *testing.T) {
	f := testFleet(t, 3, sigalg.Ed25519)
	d, _ := f.Device(7)
	nonce := []byte("a nonce of sixteen bytes or more")
	id, sig, err := d.Prove("ctx", nonce)
	if err != nil || id != d.Identity {
		t.Fatalf("Prove: %v, %v", id, err)
	}
	pub, _ := sigalg.ParsePublicKey(d.SPKI)
	if err := f.Suite().Verify(pub, identity.ProofMessage("ctx", nonce, id), sig); err != nil {
		t.Fatal(err)
	}
}

func TestGenerateKeepsOrderAndStopsOnError(t *testing.T) {
	ctx := context.Background()
	var got []uint64
	build := func(i uint64) (uint64, error) { return i * 2, nil }
	err := Generate(ctx, 10, 1000, 3, build, func(v uint64) error { got = append(got, v); return nil })
	if err != nil || len(got) != 1000 {
		t.Fatalf("got %d items, %v", len(got), err)
	}
	for k, v := range got {
		if v != uint64(10+k)*2 {
			t.Fatalf("item %d is %d, want %d", k, v, (10+k)*2)
		}
	}
	boom := errors.New("boom")
	var emitted int
	err = Generate(ctx, 0, 100_000, 2, func(i uint64) (uint64, error) {
		if i == 500 {
			return 0, boom
		}
		return i, nil
	}, func(uint64) error { emitted++; return nil })
	if !errors.Is(err, boom) || emitted != 500 {
		t.Fatalf("build error: %v after %d items, want boom after 500", err, emitted)
	}
	err = Generate(ctx, 0, 100_000, 2, build, func(v uint64) error {
		if v == 20 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) {
		t.Fatalf("emit error: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := Generate(cctx, 0, 100_000, 2, build, func(uint64) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled context: %v", err)
	}
}

func TestHistogramQuantiles(t *testing.T) {
	h := newHistogram()
	for i := 1; i <= 1000; i++ {
		h.add(time.Duration(i) * time.Millisecond)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Millisecond}, {0.95, 950 * time.Millisecond}, {0.99, 990 * time.Millisecond}} {
		got := h.quantile(c.q)
		if got < c.want || float64(got) > float64(c.want)*1.0201 {
			t.Errorf("q%.2f = %v, want %v within 2 %%", c.q, got, c.want)
		}
	}
	other := newHistogram()
	other.add(2 * time.Second)
	h.merge(other)
	if s := h.summary(); s.Max != 2*time.Second || h.n != 1001 {
		t.Errorf("after merge: max %v, n %d", s.Max, h.n)
	}
}

func TestErrorKind(t *testing.T) {
	cases := map[string]error{
		"proof-rejected": &httpapi.Problem{Status: 401, Code: "proof-rejected"},
		"device-revoked": fmt.Errorf("onboard: proof: %w", onboarding.ErrRevoked), // in process
		"http-502":       &httpapi.StatusError{Method: "POST", Path: "/v1/onboard/proof", Status: 502, StatusText: "502 Bad Gateway"},
		"chain-invalid":  onboarding.ErrChainInvalid,
		"canceled":       context.Canceled,
		"timeout":        context.DeadlineExceeded,
		"other":          errors.New("x"),
	}
	for want, err := range cases {
		if got := ErrorKind(errors.Join(errors.New("wrapped"), err)); got != want {
			t.Errorf("ErrorKind(%v) = %q, want %q", err, got, want)
		}
	}
}

// stationKey is a station signing key for test manifests.
func stationKey(t testing.TB) crypto.Signer {
	t.Helper()
	k, err := lookup(t, sigalg.Ed25519).GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestManifestVerifies(t *testing.T) {
	f := testFleet(t, 4, sigalg.ECDSAP256)
	station := stationKey(t)
	var buf bytes.Buffer
	sum, err := WriteManifest(context.Background(), &buf, ManifestConfig{Fleet: f, First: 100, Count: 200, Batch: "fleet-test", Station: station, Workers: 3})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Devices != 200 || sum.Batch != "fleet-test" {
		t.Fatalf("summary %+v", sum)
	}
	var next uint64 = 100
	vs, err := manifest.Verify(context.Background(), &buf, station.Public(), func(rec manifest.Record) error {
		d, _ := f.Device(next)
		if rec.Identity != d.Identity || rec.RootOfTrust != manifest.Keygen || rec.Algorithm != sigalg.ECDSAP256 {
			t.Errorf("record %d: %s %s %s, want device %d %s", rec.Seq, rec.Identity, rec.RootOfTrust, rec.Algorithm, next, d.Identity)
		}
		next++
		return nil
	})
	if err != nil || !vs.Verified || vs.Count != 200 {
		t.Fatalf("Verify: %+v, %v", vs, err)
	}
	if _, err := WriteManifest(context.Background(), &bytes.Buffer{}, ManifestConfig{Fleet: f, Count: manifest.MaxRecords + 1, Batch: "b", Station: station}); err == nil {
		t.Fatal("a manifest over the record limit was started")
	}
}

// platform starts the real platform in-process with onboarding rate
// limits off, registers the station and a product, and returns it with an
// onboarding client trusting its roots.
func platform(t *testing.T, station crypto.Signer) (*app.Platform, *httpapi.Client, *onboarding.Client, [][]byte) {
	t.Helper()
	ctx := context.Background()
	p, err := app.Start(ctx, app.Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0", ServerName: "localhost",
		RatePerIdentity: -1, RatePerAddress: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	token, err := os.ReadFile(p.AdminTokenPath())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(p.CA.RootPEM())
	admin, err := httpapi.NewClient(p.URL(), strings.TrimSpace(string(token)), pool)
	if err != nil {
		t.Fatal(err)
	}
	stationPEM, _ := sigalg.EncodePublicKeyPEM(station.Public())
	if _, err := admin.CreateStation(ctx, httpapi.StationRequest{Name: "fleet", PublicKey: string(stationPEM)}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CreateProduct(ctx, httpapi.ProductRequest{ID: "sensor", Name: "Sensor", CertValidity: "720h", CloudEndpoint: "mqtts://broker.test:8883"}); err != nil {
		t.Fatal(err)
	}
	var roots [][]byte
	for rest := p.CA.RootPEM(); ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		roots = append(roots, b.Bytes)
	}
	client, err := httpapi.NewOnboardingClient(p.URL(), HTTPClient(pool, 8, 30*time.Second), onboardpki.CSRs{})
	if err != nil {
		t.Fatal(err)
	}
	return p, admin, client, roots
}

// TestOnboardImportedFleet onboards an imported fleet through a proxy
// that counts the TCP connections the platform is sent: one per device
// with Fresh connections, each a full handshake; a few shared ones with
// KeepAlive. The server's CPU is read from its metrics around each run.
func TestOnboardImportedFleet(t *testing.T) {
	ctx := context.Background()
	f := testFleet(t, 5, sigalg.ECDSAP256)
	station := stationKey(t)
	p, admin, client, roots := platform(t, station)
	var buf bytes.Buffer
	if _, err := WriteManifest(ctx, &buf, ManifestConfig{Fleet: f, Count: 130, Batch: "fleet-0-129", Station: station}); err != nil {
		t.Fatal(err)
	}
	if res, err := admin.ImportManifest(ctx, "sensor", &buf); err != nil || res.Imported != 130 {
		t.Fatalf("import: %+v, %v", res, err)
	}
	u, _ := url.Parse(p.URL())
	proxy := newCountingProxy(t, net.JoinHostPort("127.0.0.1", u.Port()))
	_, port, _ := net.SplitHostPort(proxy.ln.Addr().String())
	viaProxy := "https://" + net.JoinHostPort("localhost", port)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(p.CA.RootPEM())
	// Metrics straight from the platform, not counted by the proxy; this
	// process's CPU counted as an extra process's.
	meter := &CPUMeter{HTTP: HTTPClient(pool, 1, 30*time.Second), Server: p.URL(), ExtraPIDs: []int{os.Getpid()}}

	prog := &Progress{}
	rep, accepted := onboardThrough(t, proxy, meter, viaProxy, pool,
		OnboardConfig{Fleet: f, Count: 100, Concurrency: 8, Roots: roots, Progress: prog}, Fresh)
	if rep.Onboarded != 100 || rep.Failed != 0 || rep.Attempted != 100 || len(rep.Errors) != 0 || !rep.Verified {
		t.Fatalf("report: %+v", rep)
	}
	if accepted != 100 || rep.Dials == nil || rep.Dials.Handshakes != 100 || rep.Dials.Resumed != 0 {
		t.Fatalf("fresh: the platform accepted %d connections, the devices made %+v; want 100 full handshakes", accepted, rep.Dials)
	}
	rep2, accepted := onboardThrough(t, proxy, meter, viaProxy, pool,
		OnboardConfig{Fleet: f, First: 100, Count: 30, Concurrency: 3, Roots: roots}, KeepAlive)
	// Three at a time; the transport may dial one more while a finished
	// connection is on its way back to its pool.
	if accepted < 1 || accepted > 6 || rep2.Dials.Handshakes != accepted || rep2.Dials.Resumed != 0 {
		t.Fatalf("keep-alive: %d connections accepted, %+v, for 30 devices 3 at a time", accepted, rep2.Dials)
	}
	if _, err := NewClients(viaProxy, pool, "sometimes", 1, time.Second); err == nil {
		t.Fatal("an unknown connections mode was accepted")
	}
	if prog.Done.Load() != 100 || prog.Failed.Load() != 0 {
		t.Fatalf("progress: %d done, %d failed", prog.Done.Load(), prog.Failed.Load())
	}
	if l := rep.Latency; l.P50 <= 0 || l.P50 > l.P95 || l.P95 > l.P99 || l.P99 > l.Max || rep.Throughput <= 0 {
		t.Fatalf("latency %+v, throughput %v", l, rep.Throughput)
	}
	d, _ := f.Device(99)
	if got, err := admin.GetDevice(ctx, d.Identity); err != nil || got.State != "onboarded" {
		t.Fatalf("device 99 on the platform: %+v, %v", got, err)
	}

	// Devices the platform never imported are all refused, by kind.
	rep, err := Onboard(ctx, OnboardConfig{Fleet: f, First: 1000, Count: 20, Client: client, Concurrency: 4, Roots: roots})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Onboarded != 0 || rep.Failed != 20 || rep.Errors["proof-rejected"] != 20 || len(rep.Errors) != 1 {
		t.Fatalf("unknown devices: %+v", rep)
	}

	// A chain that does not verify to the roots given is counted too.
	rep, err = Onboard(ctx, OnboardConfig{Fleet: f, Count: 10, Client: client, Concurrency: 2, Roots: [][]byte{roots[0][:len(roots[0])-1]}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Errors["chain-invalid"] != 10 {
		t.Fatalf("bad roots: %+v", rep)
	}
}

// inProcess is a client of p's onboarding service in this process, as
// the platform builds it, with rate limits off.
func inProcess(t *testing.T, p *app.Platform) *onboarding.Client {
	t.Helper()
	svc, err := onboarding.NewService(onboarding.Config{State: onboardstore.New(onboardstore.Config{Store: p.Store}),
		Issuer: onboardpki.NewIssuer(p.CA, nil), ServerName: "localhost", PerIdentity: -1, PerAddress: -1})
	if err != nil {
		t.Fatal(err)
	}
	return &onboarding.Client{Transport: onboarding.InProcess{Service: svc, Source: "127.0.0.1"}, ServerName: "localhost",
		CSRs: onboardpki.CSRs{}}
}

// TestOnboardInProcess runs the load generator with the real client
// against the platform's onboarding service in memory: the same
// onboardings, and refusals counted by the codes HTTPS would carry.
func TestOnboardInProcess(t *testing.T) {
	ctx := context.Background()
	f := testFleet(t, 6, sigalg.Ed25519)
	station := stationKey(t)
	p, admin, _, roots := platform(t, station)
	var buf bytes.Buffer
	if _, err := WriteManifest(ctx, &buf, ManifestConfig{Fleet: f, Count: 50, Batch: "fleet-in-process", Station: station}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.ImportManifest(ctx, "sensor", &buf); err != nil {
		t.Fatal(err)
	}
	client := inProcess(t, p)
	rep, err := Onboard(ctx, OnboardConfig{Fleet: f, Count: 50, Client: client, Concurrency: 4, Roots: roots})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Onboarded != 50 || rep.Failed != 0 || !rep.Verified {
		t.Fatalf("report: %+v", rep)
	}
	d, _ := f.Device(49)
	if _, err := admin.RevokeDevice(ctx, d.Identity, "lost"); err != nil {
		t.Fatal(err)
	}
	rep, err = Onboard(ctx, OnboardConfig{Fleet: f, First: 49, Count: 3, Client: client, Concurrency: 1, Roots: roots})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Errors["device-revoked"] != 1 || rep.Errors["proof-rejected"] != 2 || rep.Onboarded != 0 {
		t.Fatalf("a revoked and two unknown devices: %+v", rep)
	}
}

func TestCeiling(t *testing.T) {
	c, err := MeasureCeiling(context.Background(), CeilingConfig{
		Suite: lookup(t, sigalg.Ed25519), CASuite: lookup(t, sigalg.ECDSAP256), Duration: 50 * time.Millisecond, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	if c.Server <= 0 || c.Client <= 0 || c.Shared <= 0 || c.Shared >= c.Server || c.Shared >= c.Client || c.Workers != 2 {
		t.Fatalf("ceiling %+v", c)
	}
	if c.Suite != sigalg.Ed25519 || c.CASuite != sigalg.ECDSAP256 || c.OpSuite != sigalg.ECDSAP256 {
		t.Fatalf("suites %+v", c)
	}
	// The server side of full handshakes, as the platform's listener
	// makes them, measured in the same run.
	if c.ServerCPU <= 0 || c.ClientCPU <= 0 || c.Handshakes <= 0 || c.HandshakeCPU <= 0 || c.HandshakeWaits <= 0 {
		t.Fatalf("CPU times %+v", c)
	}
	if h := c.Handshake; h.KeyExchange != "X25519MLKEM768" || h.Certificate != string(sigalg.ECDSAP256) || h.ChainLength != 2 {
		t.Fatalf("handshake %+v", h)
	}
	if c.FloorFresh() != c.HandshakeCPU+c.ServerCPU || c.FloorKeepAlive() != c.ServerCPU ||
		c.Floor(Fresh) != c.FloorFresh() || c.Floor(KeepAlive) != c.FloorKeepAlive() {
		t.Fatalf("floors %v, %v", c.FloorFresh(), c.FloorKeepAlive())
	}
}
