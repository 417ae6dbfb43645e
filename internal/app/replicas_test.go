package app

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/pki"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
	"github.com/hallmark-iot/hallmark/internal/store/postgres/pgtest"
)

// roundRobin sends each request to the next replica, so a device's
// challenge comes from one replica and its proof goes to another.
type roundRobin struct {
	hosts []string
	next  atomic.Int64
	base  http.RoundTripper
}

func (r *roundRobin) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.URL.Host = r.hosts[int(r.next.Add(1))%len(r.hosts)]
	req.Host = ""
	return r.base.RoundTrip(req)
}

// TestThreeReplicas starts three `hallmark serve` processes at once on one
// fresh PostgreSQL database and one data directory (the first creates the
// CA and the bootstrap token, the others find them), imports a manifest at
// one, onboards every device with each request sent to the next replica,
// and checks: no error, one certificate per device and no serial twice,
// every registration job done once, every webhook event delivered once.
func TestThreeReplicas(t *testing.T) {
	t.Parallel()
	database := pgtest.NewDatabase(t)
	dir := t.TempDir()
	seedCAKeys(t, dir)
	receiver := newWebhookReceiver(t)
	receiver.setFailing(false)
	var replicas []*serveProcess
	var wg sync.WaitGroup
	var mu sync.Mutex
	for range 3 {
		wg.Go(func() {
			p := startServe(t, []string{"serve", "--data-dir", dir, "--database", database, "--listen", "127.0.0.1:0",
				"--log-level", "warn", "--rate-per-identity", "-1", "--rate-per-address", "-1",
				"--webhook-url", receiver.srv.URL, "--job-lease", "5s"},
				"HALLMARK_WEBHOOK_SECRET="+string(receiver.secret))
			mu.Lock()
			replicas = append(replicas, p)
			mu.Unlock()
		})
	}
	wg.Wait()
	rootPEM, err := os.ReadFile(filepath.Join(dir, CADir, pki.FileRoot))
	if err != nil {
		t.Fatal(err)
	}
	var hosts []string
	for _, r := range replicas {
		u, _ := url.Parse(r.url)
		hosts = append(hosts, u.Host)
	}

	algs := make([]sigalg.ID, 24)
	for i := range algs {
		algs[i] = []sigalg.ID{sigalg.ECDSAP256, sigalg.Ed25519, sigalg.MLDSA65}[i%3]
	}
	f := newFleet(t, algs...)
	f.register(t, adminClientAt(t, replicas[0].url, filepath.Join(dir, AdminTokenFile), rootPEM))

	transport := tlsClientFor(rootPEM, nil).Transport
	client := deviceClient(replicas[0].url, &http.Client{Transport: &roundRobin{hosts: hosts, base: transport}})
	errs := make(chan error, len(f.devices))
	sem := make(chan struct{}, 6)
	for i, d := range f.devices {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			op, err := d.OperationalKey(sigalg.ECDSAP256)
			if err != nil {
				errs <- err
				return
			}
			_, err = client.OnboardWithKey(context.Background(), d, f.ids[i], op)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("onboarding across replicas: %v", err)
		}
	}

	admin := adminClientAt(t, replicas[2].url, filepath.Join(dir, AdminTokenFile), rootPEM)
	devices := waitCloud(t, admin, f.ids, store.CloudActive)
	serials := map[string]identity.ID{}
	workers := map[string]int{}
	for id, d := range devices {
		if len(d.Certificates) != 1 {
			t.Errorf("device %s has %d certificates, want 1", id.Short(), len(d.Certificates))
		}
		for _, c := range d.Certificates {
			if other, dup := serials[c.Serial]; dup {
				t.Errorf("serial %s issued to %s and %s", c.Serial, other.Short(), id.Short())
			}
			serials[c.Serial] = id
		}
		if len(d.Cloud.Jobs) != 1 || d.Cloud.Jobs[0].State != "done" || d.Cloud.Jobs[0].Attempts != 1 {
			t.Errorf("device %s jobs: %+v, want one done in one attempt", id.Short(), d.Cloud.Jobs)
		}
		for _, j := range d.Cloud.Jobs {
			// host/pid/random/n: the process is host/pid/random.
			workers[j.Worker[:strings.LastIndex(j.Worker, "/")]]++
		}
	}
	receiver.mu.Lock()
	defer receiver.mu.Unlock()
	if len(receiver.events) != len(f.ids) {
		t.Errorf("%d distinct events, want %d", len(receiver.events), len(f.ids))
	}
	for id, n := range receiver.posts {
		if n != 1 {
			t.Errorf("event %s delivered %d times", id, n)
		}
	}
	t.Logf("jobs run per replica process: %v", workers)
}
