package app

import (
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/allocation"
	"github.com/hallmark-iot/hallmark/internal/cmp"
	"github.com/hallmark-iot/hallmark/internal/connector"
	"github.com/hallmark-iot/hallmark/internal/connector/webhook"
	"github.com/hallmark-iot/hallmark/internal/est"
	"github.com/hallmark-iot/hallmark/internal/httpapi"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/onboarding"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
)

const allocSecret = "allocation-secret-0123456789abcdef"

// allocService is a customer's allocation webhook: a real HTTPS server
// that verifies each request's signature (refusing a forged one) and
// answers what mode says for the identity.
type allocService struct {
	srv   *httptest.Server
	mu    sync.Mutex
	modes map[string]string // identity -> "offlist", "garbage", "oversized", "slow"; default: the second candidate
	asked []allocation.WebhookRequest
}

func newAllocService(t *testing.T) *allocService {
	a := &allocService{modes: map[string]string{}}
	a.srv = httptest.NewTLSServer(http.HandlerFunc(a.serve))
	t.Cleanup(a.srv.Close)
	return a
}

func (a *allocService) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<16))
	if err := webhook.Verify([]byte(allocSecret), r.Header, body, time.Now(), 0); err != nil {
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var req allocation.WebhookRequest
	if json.Unmarshal(body, &req) != nil || len(req.Candidates) < 2 {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	a.mu.Lock()
	a.asked = append(a.asked, req)
	mode := a.modes[req.Identity]
	a.mu.Unlock()
	switch mode {
	case "offlist":
		io.WriteString(w, `{"endpoint":"mqtts://attacker.example.net:8883"}`)
	case "garbage":
		io.WriteString(w, `{"endpoint":`)
	case "oversized":
		io.WriteString(w, `{"endpoint":"`+req.Candidates[1]+`","pad":"`+strings.Repeat("x", allocation.MaxAnswer)+`"}`)
	case "slow":
		select {
		case <-time.After(2 * time.Second):
		case <-r.Context().Done():
		}
	default:
		json.NewEncoder(w).Encode(allocation.WebhookAnswer{Endpoint: req.Candidates[1]})
	}
}

func (a *allocService) set(id identity.ID, mode string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.modes[id.String()] = mode
}

// registrations records the endpoint each device.registered event of the
// webhook connector carries.
type registrations struct {
	srv *httptest.Server
	mu  sync.Mutex
	got map[identity.ID]string
}

func newRegistrations(t *testing.T) *registrations {
	r := &registrations{got: map[identity.ID]string{}}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var ev webhook.Event
		body, _ := io.ReadAll(io.LimitReader(req.Body, 1<<20))
		if webhook.Verify([]byte(allocSecret), req.Header, body, time.Now(), 0) != nil || json.Unmarshal(body, &ev) != nil {
			http.Error(w, "refused", http.StatusUnauthorized)
			return
		}
		if ev.Type == webhook.EventRegistered {
			r.mu.Lock()
			r.got[ev.Device.Identity] = ev.Device.CloudEndpoint
			r.mu.Unlock()
		}
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *registrations) wait(t *testing.T, id identity.ID, want string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		r.mu.Lock()
		got, ok := r.got[id]
		r.mu.Unlock()
		if ok {
			if got != want {
				t.Fatalf("connector registered %s at %q, allocated %q", id.Short(), got, want)
			}
			return
		}
	}
	t.Fatalf("connector never registered %s", id.Short())
}

var (
	spreadEndpoints = []store.WeightedEndpoint{{URL: "mqtts://eu1.test:8883", Weight: 1},
		{URL: "mqtts://eu2.test:8883", Weight: 2}, {URL: "mqtts://eu3.test:8883", Weight: 3}}
	movedEndpoints = []store.WeightedEndpoint{{URL: "mqtts://us1.test:8883", Weight: 1}, {URL: "mqtts://us2.test:8883", Weight: 1}}
	hookEndpoints  = []store.WeightedEndpoint{{URL: "mqtts://red.test:8883", Weight: 1}, {URL: "mqtts://blue.test:8883", Weight: 1}}
)

// credentialsEndpoint is the endpoint the native credentials route hands
// the device whose certificate c presents.
func credentialsEndpoint(t *testing.T, p *Platform, c *http.Client) string {
	t.Helper()
	resp, err := c.Get(p.URL() + "/v1/device/credentials")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var creds onboarding.Credentials
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&creds) != nil {
		t.Fatalf("credentials: %d", resp.StatusCode)
	}
	return creds.CloudEndpoint
}

// requireUnallocated checks that a refused device holds no certificate and
// no endpoint: it can retry and get the policy's choice then.
func requireUnallocated(t *testing.T, p *Platform, id identity.ID) {
	t.Helper()
	d, err := p.Store.GetDevice(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	if d.CloudEndpoint != "" || d.State != store.StateRegistered {
		t.Fatalf("a refused device is %s with endpoint %q", d.State, d.CloudEndpoint)
	}
}

func TestAllocationOverTheDoors(t *testing.T) {
	t.Parallel()
	svc := newAllocService(t)
	regs := newRegistrations(t)
	hook, err := webhook.New(webhook.Config{URL: regs.srv.URL, Secret: []byte(allocSecret)})
	if err != nil {
		t.Fatal(err)
	}
	p, err := Start(t.Context(), Config{DataDir: newDataDir(t), Listen: "127.0.0.1:0", ServerName: "localhost", CASuite: sigalg.ECDSAP256,
		Connectors: []connector.Connector{hook}, Worker: fastWorker,
		Allocation: allocation.Config{Client: svc.srv.Client(), Timeout: 300 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	ctx := t.Context()
	admin := adminClient(t, p)

	// EST devices in product meter (static until changed).
	estDevs := estFleet(t, p, estP256(t), estP256(t))
	hookOnMeter := httpapi.AllocationRequest{Allocation: "webhook", Endpoints: spreadEndpoints, WebhookURL: svc.srv.URL, WebhookSecret: allocSecret}
	if _, err := admin.SetAllocation(ctx, "meter", hookOnMeter); err != nil {
		t.Fatal(err)
	}
	// The EST door: a webhook answering garbage is a temporary refusal
	// (503, Retry-After) and records nothing.
	svc.set(estDevs[1].id, "garbage")
	c := dialEST(t, p, &estDevs[1].cert)
	status, h, body := c.do(t, "POST", "/.well-known/est/simpleenroll", est.MediaPKCS10, estCSR(t, estP256(t), estDevs[1].id.String(), c.binding(t)))
	if status != http.StatusServiceUnavailable || h.Get("Retry-After") != "10" {
		t.Fatalf("EST with a failing webhook: %d Retry-After %q %s", status, h.Get("Retry-After"), body)
	}
	requireUnallocated(t, p, estDevs[1].id)

	// Hash policy over three endpoints, set over the admin API.
	prod, err := admin.SetAllocation(ctx, "meter", httpapi.AllocationRequest{Allocation: "hash", Endpoints: spreadEndpoints})
	if err != nil || prod.Allocation.Kind != "hash" || len(prod.Allocation.Endpoints) != 3 || prod.CloudEndpoint != spreadEndpoints[0].URL {
		t.Fatalf("set-allocation hash: %+v, %v", prod, err)
	}
	for i, dev := range estDevs {
		want := allocation.Rendezvous(dev.id, spreadEndpoints)
		_, opCert := estEnrol(t, p, dev, "/.well-known/est/simpleenroll")
		if got := credentialsEndpoint(t, p, tlsClient(p, opCert)); got != want {
			t.Fatalf("EST device %s: endpoint %q, hash policy says %q", dev.id.Short(), got, want)
		}
		if i > 0 {
			continue // one re-enrolment shows it; each costs a handshake and a signature
		}
		rc := dialEST(t, p, opCert)
		op2 := estP256(t)
		status, _, body := rc.do(t, "POST", "/.well-known/est/simplereenroll", est.MediaPKCS10, estCSR(t, op2, dev.id.String(), rc.binding(t)))
		if status != http.StatusOK {
			t.Fatalf("simplereenroll: %d %s", status, body)
		}
		reCert := tlsCertOf(estCertsOf(t, body), op2)
		if got := credentialsEndpoint(t, p, tlsClient(p, reCert)); got != want {
			t.Fatalf("EST device %s after re-enrolment: endpoint %q, allocated %q", dev.id.Short(), got, want)
		}
	}
	regs.wait(t, estDevs[0].id, allocation.Rendezvous(estDevs[0].id, spreadEndpoints))

	// Native devices of the same product.
	f := newFleetBatch(t, "alloc-native", sigalg.ECDSAP256, sigalg.ECDSAP256)
	importInto(t, admin, f, "meter")
	want := allocation.Rendezvous(f.ids[0], spreadEndpoints)
	creds, cert, err := onboard(t, p, f.devices[0], f.ids[0])
	if err != nil || creds.CloudEndpoint != want {
		t.Fatalf("native onboarding: %v, endpoint %v, want %q", err, creds, want)
	}
	if got := credentialsEndpoint(t, p, tlsClient(p, cert)); got != want {
		t.Fatalf("credentials: %q, allocated %q", got, want)
	}
	regs.wait(t, f.ids[0], want)
	// A policy change moves only devices not yet allocated: device 0
	// onboards again and keeps its endpoint, device 1 gets the new policy's.
	if _, err := admin.SetAllocation(ctx, "meter", httpapi.AllocationRequest{Allocation: "hash", Endpoints: movedEndpoints}); err != nil {
		t.Fatal(err)
	}
	if creds, _, err := onboard(t, p, f.devices[0], f.ids[0]); err != nil || creds.CloudEndpoint != allocation.Rendezvous(f.ids[0], spreadEndpoints) {
		t.Fatalf("onboarding again after a policy change: %v, %+v", err, creds)
	}
	if creds, _, err := onboard(t, p, f.devices[1], f.ids[1]); err != nil || creds.CloudEndpoint != allocation.Rendezvous(f.ids[1], movedEndpoints) {
		t.Fatalf("first onboarding after a policy change: %v, %+v", err, creds)
	}

	// A webhook-policy product, created with its policy.
	g := newFleetBatch(t, "alloc-hook", sigalg.ECDSAP256, sigalg.ECDSAP256)
	if _, err := admin.CreateProduct(ctx, httpapi.ProductRequest{ID: "routed", Name: "Routed", CertValidity: "720h",
		Allocation: "webhook", Endpoints: hookEndpoints, WebhookURL: svc.srv.URL, WebhookSecret: allocSecret}); err != nil {
		t.Fatal(err)
	}
	importInto(t, admin, g, "routed")
	creds, cert, err = onboard(t, p, g.devices[0], g.ids[0])
	if err != nil || creds.CloudEndpoint != hookEndpoints[1].URL {
		t.Fatalf("webhook policy: %v, %+v", err, creds)
	}
	if got := credentialsEndpoint(t, p, tlsClient(p, cert)); got != hookEndpoints[1].URL {
		t.Fatalf("credentials of a webhook-allocated device: %q", got)
	}
	regs.wait(t, g.ids[0], hookEndpoints[1].URL)
	svc.mu.Lock()
	last := svc.asked[len(svc.asked)-1]
	svc.mu.Unlock()
	if last.Identity != g.ids[0].String() || last.Product != "routed" || last.Batch != "alloc-hook" || last.Suite != string(sigalg.ECDSAP256) ||
		last.Class != "keygen" || strings.Join(last.Candidates, " ") != hookEndpoints[0].URL+" "+hookEndpoints[1].URL {
		t.Fatalf("the webhook was asked %+v", last)
	}

	// Attacks on the native door: a webhook answering off the list,
	// garbage, too much or too late refuses for now and records nothing;
	// the device retries and succeeds once the webhook answers properly.
	for _, mode := range []string{"offlist", "garbage", "oversized", "slow"} {
		svc.set(g.ids[1], mode)
		_, _, err := onboard(t, p, g.devices[1], g.ids[1])
		var prob *httpapi.Problem
		if !errors.As(err, &prob) || prob.Code != "allocation-unavailable" || prob.Status != http.StatusServiceUnavailable ||
			prob.RetryAfter != onboarding.AllocationRetryAfter || !errors.Is(err, onboarding.ErrAllocationUnavailable) {
			t.Fatalf("webhook %s: %v (%+v)", mode, err, prob)
		}
		requireUnallocated(t, p, g.ids[1])
	}
	svc.set(g.ids[1], "")
	if creds, _, err := onboard(t, p, g.devices[1], g.ids[1]); err != nil || creds.CloudEndpoint != hookEndpoints[1].URL {
		t.Fatalf("retry after the webhook recovered: %v, %+v", err, creds)
	}
}

// Bad allocation input over the admin API: a problem naming the member,
// and nothing created or changed; the secret is never returned.
func TestAllocationAdminRefusals(t *testing.T) {
	t.Parallel()
	p := start(t, newDataDir(t), sigalg.ECDSAP256)
	ctx := t.Context()
	admin := adminClient(t, p)
	good := httpapi.ProductRequest{ID: "routed", Name: "Routed", CertValidity: "720h", Allocation: "webhook",
		Endpoints: hookEndpoints, WebhookURL: "https://alloc.test/choose", WebhookSecret: allocSecret}
	for name, change := range map[string]func(*httpapi.ProductRequest){
		"unknown kind": func(r *httpapi.ProductRequest) { r.Allocation = "random" },
		"short secret": func(r *httpapi.ProductRequest) { r.WebhookSecret = "short" },
		"plain http":   func(r *httpapi.ProductRequest) { r.WebhookURL = "http://alloc.test/choose" },
		"no endpoints": func(r *httpapi.ProductRequest) { r.Endpoints = nil },
		"bad endpoint": func(r *httpapi.ProductRequest) {
			r.Endpoints = []store.WeightedEndpoint{{URL: "ftp://x.test", Weight: 1}}
		},
		"heavy weight": func(r *httpapi.ProductRequest) {
			r.Endpoints = []store.WeightedEndpoint{{URL: "mqtts://x.test", Weight: 1001}}
		},
		"hash with webhook": func(r *httpapi.ProductRequest) { r.Allocation = "hash" },
		"other endpoint":    func(r *httpapi.ProductRequest) { r.CloudEndpoint = "mqtts://elsewhere.test:8883" },
	} {
		req := good
		change(&req)
		_, err := admin.CreateProduct(ctx, req)
		if !isProblem(err, "malformed-request") || strings.Contains(err.Error(), allocSecret) {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if _, err := admin.GetProduct(ctx, "routed"); !isProblem(err, "not-found") {
		t.Fatalf("a refused product exists: %v", err)
	}
	created, err := admin.CreateProduct(ctx, good)
	if err != nil || !created.Allocation.WebhookSecretSet || created.Allocation.Kind != "webhook" {
		t.Fatalf("create: %+v, %v", created, err)
	}
	raw, _ := json.Marshal(created)
	if bytes.Contains(raw, []byte(allocSecret)) {
		t.Fatal("the product answer carries the webhook secret")
	}
	if _, err := admin.SetAllocation(ctx, "routed", httpapi.AllocationRequest{Allocation: "static", Endpoints: hookEndpoints}); !isProblem(err, "malformed-request") {
		t.Fatalf("static with two endpoints: %v", err)
	}
	if _, err := admin.SetAllocation(ctx, "nope", httpapi.AllocationRequest{Allocation: "hash", Endpoints: hookEndpoints}); !isProblem(err, "not-found") {
		t.Fatalf("unknown product: %v", err)
	}
	after, err := admin.GetProduct(ctx, "routed")
	if err != nil || after.Allocation.Kind != "webhook" || after.Allocation.WebhookURL != good.WebhookURL {
		t.Fatalf("after refused changes: %+v, %v", after, err)
	}
}

// importInto registers f's station and imports its manifest into product.
func importInto(t *testing.T, admin *httpapi.Client, f *fleet, product string) {
	t.Helper()
	if _, err := admin.CreateStation(t.Context(), httpapi.StationRequest{Name: "line-" + product, PublicKey: string(f.stationPEM)}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.ImportManifest(context.Background(), product, bytes.NewReader(f.manifest)); err != nil {
		t.Fatal(err)
	}
}

func tlsCertOf(chain [][]byte, key crypto.Signer) *tls.Certificate {
	return &tls.Certificate{Certificate: chain, PrivateKey: key}
}

// The CMP door (OpenSSL's client): ir allocates by the product's policy,
// kur keeps the endpoint, and a failing webhook refuses with nothing
// recorded.
func TestAllocationCMP(t *testing.T) {
	t.Parallel()
	svc := newAllocService(t)
	p, err := Start(t.Context(), Config{DataDir: newDataDir(t), Listen: "127.0.0.1:0", ServerName: "localhost", CASuite: sigalg.ECDSAP256,
		Allocation: allocation.Config{Client: svc.srv.Client(), Timeout: 300 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	admin := adminClient(t, p)
	dir := cmpDir(t, p)
	ids := cmpRegister(t, admin, cmpKey(t, dir, "enrolment", true), cmpKey(t, dir, "enrolment2", true))
	cmpKey(t, dir, "operational", false)
	cmpKey(t, dir, "operational2", false)
	run := func(args ...string) (string, bool) {
		return cmpOpenSSL(t, dir, append(cmpServer(p, cmp.Path), args...)...)
	}
	endpointOf := func(certFile, keyFile string) string {
		t.Helper()
		certPEM, err1 := os.ReadFile(filepath.Join(dir, certFile))
		chainPEM, err2 := os.ReadFile(filepath.Join(dir, "chain.pem"))
		keyPEM, err3 := os.ReadFile(filepath.Join(dir, keyFile))
		if err := errors.Join(err1, err2, err3); err != nil {
			t.Fatal(err)
		}
		cert, err := tls.X509KeyPair(append(certPEM, chainPEM...), keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		return credentialsEndpoint(t, p, tlsClient(p, &cert))
	}

	if _, err := admin.SetAllocation(t.Context(), "meter", httpapi.AllocationRequest{Allocation: "webhook", Endpoints: spreadEndpoints,
		WebhookURL: svc.srv.URL, WebhookSecret: allocSecret}); err != nil {
		t.Fatal(err)
	}
	svc.set(ids[1], "offlist")
	out, ok := run("-cmd", "ir", "-key", "enrolment2.key", "-cert", "enrolment2.crt", "-extracerts", "enrolment2.crt",
		"-newkey", "operational2.key", "-subject", "/CN=device", "-implicit_confirm", "-certout", "refused.pem")
	if ok {
		t.Fatalf("ir with a webhook answering off the list succeeded:\n%s", out)
	}
	requireUnallocated(t, p, ids[1])

	if _, err := admin.SetAllocation(t.Context(), "meter", httpapi.AllocationRequest{Allocation: "hash", Endpoints: spreadEndpoints}); err != nil {
		t.Fatal(err)
	}
	want := allocation.Rendezvous(ids[0], spreadEndpoints)
	out, ok = run("-cmd", "ir", "-key", "enrolment.key", "-cert", "enrolment.crt", "-extracerts", "enrolment.crt",
		"-newkey", "operational.key", "-subject", "/CN=device", "-implicit_confirm", "-certout", "device.pem", "-chainout", "chain.pem")
	if !ok {
		t.Fatalf("ir: %s", out)
	}
	if got := endpointOf("device.pem", "operational.key"); got != want {
		t.Fatalf("CMP ir: endpoint %q, hash policy says %q", got, want)
	}
	// A later policy does not move it: kur renews at the same endpoint.
	if _, err := admin.SetAllocation(t.Context(), "meter", httpapi.AllocationRequest{Allocation: "hash", Endpoints: movedEndpoints}); err != nil {
		t.Fatal(err)
	}
	out, ok = run("-cmd", "kur", "-key", "operational.key", "-cert", "device.pem", "-extracerts", "chain.pem",
		"-newkey", "operational2.key", "-implicit_confirm", "-certout", "renewed.pem", "-chainout", "chain.pem")
	if !ok {
		t.Fatalf("kur: %s", out)
	}
	if got := endpointOf("renewed.pem", "operational2.key"); got != want {
		t.Fatalf("CMP kur: endpoint %q, allocated %q", got, want)
	}
}
