package app

import (
	"context"
	"database/sql"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hallmark-iot/hallmark/internal/admin"
	"github.com/hallmark-iot/hallmark/internal/console"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
	"github.com/hallmark-iot/hallmark/internal/store/postgres"
	"github.com/hallmark-iot/hallmark/internal/store/postgres/pgtest"
	"github.com/hallmark-iot/hallmark/internal/store/sqlite"
	"github.com/hallmark-iot/hallmark/internal/store/storetest"
	"github.com/hallmark-iot/hallmark/internal/store/storetest/fleetseed"
)

// BenchmarkConsolePages1M measures the server time of the console's
// overview and device pages with 1,000,000 devices registered
// (storetest.SeedConsoleFleet), on SQLite and on PostgreSQL; it runs only
// when -bench names it. A real platform serves them, signed in through
// POST /console/signin with the admin token, but each request goes
// straight to the platform's HTTP handler (middleware included) with an
// httptest recorder: ns/op is the server's time for a page, without TLS,
// the network or a client.
func BenchmarkConsolePages1M(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) {
		dir := newDataDir(b)
		s, err := sqlite.Open(b.Context(), filepath.Join(dir, DatabaseFile))
		if err != nil {
			b.Fatal(err)
		}
		fleet := storetest.SeedConsoleFleet(b, s, func(b *testing.B, _ store.Store) {
			// The store's own connections are its business: the bulk
			// step writes through one of its own, to the same file.
			db, err := sql.Open("sqlite", filepath.Join(dir, DatabaseFile))
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			fleetseed.OnboardSQLite(b, db)
		})
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		benchConsolePages(b, Config{DataDir: dir}, fleet)
	})
	b.Run("postgres", func(b *testing.B) {
		database := pgtest.NewDatabase(b)
		s, err := postgres.Open(b.Context(), database)
		if err != nil {
			b.Fatal(err)
		}
		fleet := storetest.SeedConsoleFleet(b, s, func(b *testing.B, _ store.Store) {
			conn, err := pgx.Connect(b.Context(), database)
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close(context.Background())
			fleetseed.OnboardPostgres(b, conn)
		})
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		dir := b.TempDir()
		seedCAKeys(b, dir)
		benchConsolePages(b, Config{DataDir: dir, Database: database}, fleet)
	})
}

// benchConsolePages starts a platform on the seeded registry cfg names,
// its clock at the fleet's (storetest.ConsoleBenchNow), and times each
// page.
func benchConsolePages(b *testing.B, cfg Config, fleet storetest.ConsoleFleet) {
	clock := &testClock{}
	clock.advance(time.Until(storetest.ConsoleBenchNow))
	cfg.Listen, cfg.ServerName, cfg.CASuite, cfg.Now = "127.0.0.1:0", "localhost", sigalg.ECDSAP256, clock.now
	p, err := Start(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Close() })
	c := &consoleBenchClient{b: b, h: p.server.Handler}
	raw, err := os.ReadFile(p.AdminTokenPath())
	if err != nil {
		b.Fatal(err)
	}
	c.signIn(strings.TrimSpace(string(raw)))

	// An identity in the middle of the fleet to page after, and an
	// onboarded device (certificate, job, status report) to show.
	middle, err := p.Store.ListDevices(b.Context(), store.DeviceFilter{After: identity.ID{0x80}, Limit: 1})
	if err != nil || len(middle) != 1 {
		b.Fatalf("a device after 80…: %v, %v", middle, err)
	}
	onboarded, err := p.Store.ListDevices(b.Context(), store.DeviceFilter{State: store.StateOnboarded, After: identity.ID{0x80}, Limit: 1})
	if err != nil || len(onboarded) != 1 {
		b.Fatalf("an onboarded device after 80…: %v, %v", onboarded, err)
	}

	b.Run("summary", func(b *testing.B) {
		// What a refresh of the overview's summary costs, in the
		// background since no view waits for it but the first after a
		// start (admin.Console.FleetSummary).
		within, silence := admin.DefaultExpiringWithin, admin.DefaultSilentAfter
		for b.Loop() {
			if _, err := p.Store.FleetSummary(b.Context(), clock.now(), within, silence); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/op")
	})
	b.Run("overview-stale", func(b *testing.B) {
		for b.Loop() {
			// Past the summary's TTL on every view: each one gets the
			// summary it finds and starts a refresh in the background,
			// whose CPU the next views share the machine with.
			clock.advance(admin.DefaultSummaryTTL + time.Second)
			c.get(b, "/console/", `id="devices-by-state"`)
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/op")
	})
	b.Run("overview-cached", func(b *testing.B) {
		c.get(b, "/console/", `id="devices-by-state"`) // the summary, fresh for the TTL
		for b.Loop() {
			c.get(b, "/console/", `id="devices-by-state"`)
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/op")
	})
	for _, page := range []struct{ name, query string }{
		{"devices-first", ""},
		{"devices-deep", "after=" + middle[0].Identity.String()},
		{"devices-state", "state=onboarded"},
		{"devices-product", "product=" + fleet.Gateway.ID},
		{"devices-class", "class=keygen"},
		{"devices-suite", "suite=" + url.QueryEscape(string(sigalg.MLDSA65))},
		{"devices-cloud-failed", "cloud=" + store.CloudFailed},
		{"devices-q4", "q=" + fleet.Mid.String()[:4]},
	} {
		b.Run(page.name, func(b *testing.B) {
			for b.Loop() {
				c.get(b, "/console/devices?"+page.query, `id="devices"`)
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/op")
		})
	}
	b.Run("device", func(b *testing.B) {
		id := onboarded[0].Identity.String()
		for b.Loop() {
			c.get(b, "/console/devices/"+id, id)
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/op")
	})
}

// consoleBenchClient sends console requests to a platform's handler in
// process, with the session cookie of its sign-in.
type consoleBenchClient struct {
	b      *testing.B
	h      http.Handler
	cookie *http.Cookie
}

func (c *consoleBenchClient) signIn(token string) {
	req := httptest.NewRequest(http.MethodPost, "https://localhost/console/signin", strings.NewReader(url.Values{"token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	c.h.ServeHTTP(rec, req)
	for _, k := range rec.Result().Cookies() {
		if k.Name == console.CookieName {
			c.cookie = k
		}
	}
	if rec.Code != http.StatusSeeOther || c.cookie == nil {
		c.b.Fatalf("sign-in: %d %.300s", rec.Code, rec.Body)
	}
}

// get fetches a page and checks it is one: status 200 and want in the
// body.
func (c *consoleBenchClient) get(b *testing.B, path, want string) {
	req := httptest.NewRequest(http.MethodGet, "https://localhost"+path, nil)
	req.AddCookie(&http.Cookie{Name: c.cookie.Name, Value: c.cookie.Value})
	rec := httptest.NewRecorder()
	c.h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), want) {
		b.Fatalf("GET %s: %d %.300s", path, rec.Code, rec.Body)
	}
}
