package app

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/connector"
	"github.com/hallmark-iot/hallmark/internal/connector/mosquitto"
	"github.com/hallmark-iot/hallmark/internal/connector/mosquittotest"
	"github.com/hallmark-iot/hallmark/internal/connector/webhook"
	"github.com/hallmark-iot/hallmark/internal/httpapi"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// cloudEnv is a platform data directory with its CA, and a Mosquitto that
// trusts that CA.
type cloudEnv struct {
	dir     string
	broker  *mosquittotest.Broker
	roots   *x509.CertPool
	rootPEM []byte
}

// newCloudEnv makes the CA with a first start of the platform, then starts
// a broker trusting it, as an operator would.
func newCloudEnv(t *testing.T) *cloudEnv {
	t.Helper()
	e := &cloudEnv{dir: newDataDir(t)}
	p, err := Start(t.Context(), Config{DataDir: e.dir, Listen: "127.0.0.1:0", ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	server, err := p.CA.IssueServer(t.Context(), []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	trust := p.CA.DeviceTrustPEM()
	e.rootPEM = p.CA.RootPEM()
	p.Close()
	e.broker = mosquittotest.Start(t, mosquittotest.Options{CAPEM: trust, ServerCert: server})
	e.roots = x509.NewCertPool()
	e.roots.AppendCertsFromPEM(e.rootPEM)
	return e
}

func (e *cloudEnv) mqttConnector(t *testing.T) *mosquitto.Connector {
	t.Helper()
	c, err := mosquitto.New(mosquitto.Config{BrokerURL: e.broker.AdminURL(), TLS: &tls.Config{RootCAs: e.roots, MinVersion: tls.VersionTLS13},
		AdminUser: e.broker.AdminUser, AdminPassword: e.broker.AdminPassword})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// fastWorker retries quickly, so outages end within a test. Its empty
// claims are 100 ms apart, not less: each is a write transaction, and four
// workers claiming every 20 ms cost seconds of CPU under the race detector.
var fastWorker = connector.WorkerConfig{Poll: 100 * time.Millisecond, Lease: 3 * time.Second,
	BackoffBase: 50 * time.Millisecond, BackoffCap: 300 * time.Millisecond}

func (e *cloudEnv) start(t *testing.T, conns ...connector.Connector) *Platform {
	t.Helper()
	p, err := Start(t.Context(), Config{DataDir: e.dir, Listen: "127.0.0.1:0", ServerName: "localhost",
		Connectors: conns, Worker: fastWorker})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// waitCloud polls the admin API until every device's cloud state is want.
func waitCloud(t *testing.T, admin *httpapi.Client, ids []identity.ID, want string) map[identity.ID]httpapi.Device {
	t.Helper()
	wrong := func(d httpapi.Device) string {
		return fmt.Sprintf("cloud state %s (last error %q), want %s", d.Cloud.State, d.Cloud.LastError, want)
	}
	return waitDevices(t, admin, ids, 60*time.Second, func(d httpapi.Device) (bool, string) {
		if d.Cloud.State == store.CloudFailed {
			return false, wrong(d)
		}
		return d.Cloud.State == want, ""
	}, wrong)
}

// waitDevices polls the admin API until done holds for every device, and
// fails the test when done reports a problem or, with timedOut's message,
// when the time runs out.
func waitDevices(t *testing.T, admin *httpapi.Client, ids []identity.ID, limit time.Duration,
	done func(httpapi.Device) (ok bool, problem string), timedOut func(httpapi.Device) string) map[identity.ID]httpapi.Device {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), limit)
	defer cancel()
	out := map[identity.ID]httpapi.Device{}
	for _, id := range ids {
		for {
			d, err := admin.GetDevice(ctx, id)
			if err != nil {
				t.Fatalf("device %s: %v", id.Short(), err)
			}
			ok, problem := done(d)
			if problem != "" {
				t.Fatalf("device %s: %s", id.Short(), problem)
			}
			if ok {
				out[id] = d
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("device %s: %s", id.Short(), timedOut(d))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return out
}

// dynsecClients lists the device clients in the broker's saved state.
func (e *cloudEnv) dynsecClients(t *testing.T) map[string]int {
	t.Helper()
	data, err := os.ReadFile(e.broker.DynsecFile())
	if err != nil {
		t.Fatal(err)
	}
	var state struct {
		Clients []struct {
			Username string `json:"username"`
		} `json:"clients"`
		Roles []struct {
			Rolename string `json:"rolename"`
		} `json:"roles"`
	}
	if err := json.Unmarshal(data, &state); err != nil {
		t.Fatalf("dynsec file: %v", err)
	}
	out := map[string]int{}
	for _, c := range state.Clients {
		if c.Username != e.broker.AdminUser {
			out["client:"+c.Username]++
		}
	}
	for _, r := range state.Roles {
		if strings.HasPrefix(r.Rolename, mosquitto.RolePrefix) {
			out["role:"+strings.TrimPrefix(r.Rolename, mosquitto.RolePrefix)]++
		}
	}
	return out
}

// checkExactlyRegistered checks the broker holds one client and one role
// for each of ids and nothing else: no registration applied twice, none
// lost.
func (e *cloudEnv) checkExactlyRegistered(t *testing.T, ids []identity.ID) {
	t.Helper()
	// Mosquitto saves its state file after each change; give it a moment.
	var got map[string]int
	for range 50 {
		if got = e.dynsecClients(t); len(got) == 2*len(ids) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(got) != 2*len(ids) {
		t.Fatalf("broker holds %d device clients and roles, want %d: %v", len(got), 2*len(ids), got)
	}
	for _, id := range ids {
		if got["client:"+id.String()] != 1 || got["role:"+id.String()] != 1 {
			t.Fatalf("broker state for %s: %v", id.Short(), got)
		}
	}
}

func (e *cloudEnv) checkPublishing(t *testing.T, ids []identity.ID, certs []*tls.Certificate) {
	t.Helper()
	for i, id := range ids {
		own := "devices/" + id.String() + "/status"
		if err := mosquitto.Publish(t.Context(), e.broker.DeviceURL(), *certs[i], e.roots, own, []byte("up")); err != nil {
			t.Fatalf("device %s publishing to its own topic: %v", id.Short(), err)
		}
		other := "devices/" + ids[(i+1)%len(ids)].String() + "/status"
		if err := mosquitto.Publish(t.Context(), e.broker.DeviceURL(), *certs[i], e.roots, other, []byte("spoof")); !errors.Is(err, mosquitto.ErrNotAuthorized) {
			t.Fatalf("device %s publishing to another device's topic: %v, want refused", id.Short(), err)
		}
	}
}

// TestBrokerDownDuringOnboarding stops the broker, onboards devices (which
// succeeds), sees their registration jobs wait and retry, starts the broker
// again and sees every device registered once and publishing; then revokes
// one and sees it deregistered and refused.
func TestBrokerDownDuringOnboarding(t *testing.T) {
	t.Parallel()
	e := newCloudEnv(t)
	p := e.start(t, e.mqttConnector(t))
	f := newFleet(t, sigalg.ECDSAP256, sigalg.Ed25519, sigalg.MLDSA65, sigalg.MLDSA44)
	admin := adminClient(t, p)
	f.register(t, admin)

	e.broker.Stop()
	certs := make([]*tls.Certificate, len(f.devices))
	for i, d := range f.devices {
		var err error
		if _, certs[i], err = onboard(t, p, d, f.ids[i]); err != nil {
			t.Fatalf("onboarding with the broker down: %v", err)
		}
	}
	// Every job waits, having failed at least once.
	waitDevices(t, admin, f.ids, 30*time.Second, func(d httpapi.Device) (bool, string) {
		if d.State != "onboarded" || d.Cloud.State == store.CloudActive || d.Cloud.State == store.CloudFailed {
			return false, fmt.Sprintf("%s, cloud %s while the broker is down", d.State, d.Cloud.State)
		}
		return d.Cloud.State == store.CloudPending && d.Cloud.LastError != "", ""
	}, func(d httpapi.Device) string { return fmt.Sprintf("no failed attempt recorded: %+v", d.Cloud) })

	e.broker.Restart()
	registered := waitCloud(t, admin, f.ids, store.CloudActive)
	for id, d := range registered {
		if len(d.Cloud.Jobs) != 1 || d.Cloud.Jobs[0].State != "done" || d.Cloud.Jobs[0].Attempts < 2 {
			t.Errorf("device %s jobs: %+v; want one done job after at least one failed attempt", id.Short(), d.Cloud.Jobs)
		}
	}
	e.checkExactlyRegistered(t, f.ids)
	e.checkPublishing(t, f.ids, certs)
	// The device list shows the same state, read in one query per page.
	list, err := admin.ListDevices(t.Context(), httpapi.DeviceQuery{})
	if err != nil || len(list.Devices) != len(f.ids) {
		t.Fatalf("ListDevices = %d devices, %v", len(list.Devices), err)
	}
	for _, d := range list.Devices {
		if d.Cloud.State != store.CloudActive || len(d.Cloud.Jobs) != 0 {
			t.Errorf("listed device %s: cloud %+v, want registered without jobs", d.Identity.Short(), d.Cloud)
		}
	}

	// Revocation deregisters: the broker forgets the device.
	if _, err := admin.RevokeDevice(t.Context(), f.ids[0], "stolen"); err != nil {
		t.Fatal(err)
	}
	waitCloud(t, admin, f.ids[:1], store.CloudDeregistered)
	e.checkExactlyRegistered(t, f.ids[1:])
	err = mosquitto.Publish(t.Context(), e.broker.DeviceURL(), *certs[0], e.roots, "devices/"+f.ids[0].String()+"/status", []byte("up"))
	if !errors.Is(err, mosquitto.ErrNotAuthorized) {
		t.Fatalf("a revoked device published: %v", err)
	}
}

// webhookReceiver is a customer endpoint: it verifies signatures, applies
// each event once (deduplicating on its ID) and can be told to fail.
type webhookReceiver struct {
	secret []byte
	mu     sync.Mutex
	fail   bool
	posts  map[string]int // deliveries by event ID
	events map[string]webhook.Event
	srv    *httptest.Server
}

func newWebhookReceiver(t *testing.T) *webhookReceiver {
	r := &webhookReceiver{secret: []byte("a receiver's shared secret"), posts: map[string]int{}, events: map[string]webhook.Event{}, fail: true}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		if err := webhook.Verify(r.secret, req.Header, body, time.Now(), 5*time.Minute); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		var ev webhook.Event
		if err := json.Unmarshal(body, &ev); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if ev.Type != webhook.EventRegistered && ev.Type != webhook.EventDeregistered {
			return // a device event from the event relay: relay_test.go checks those
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.fail {
			http.Error(w, "maintenance", http.StatusServiceUnavailable)
			return
		}
		r.posts[ev.ID]++
		r.events[ev.ID] = ev
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *webhookReceiver) setFailing(fail bool) {
	r.mu.Lock()
	r.fail = fail
	r.mu.Unlock()
}

// TestServerKilledWithJobsPending runs `hallmark serve` as a real process
// with both connectors while the broker is down and the webhook receiver
// fails, onboards devices, kills the process with SIGKILL, brings the
// services back and starts the platform again: every job completes, each
// device is registered once with the broker and its event applied once.
func TestServerKilledWithJobsPending(t *testing.T) {
	t.Parallel()
	e := newCloudEnv(t)
	receiver := newWebhookReceiver(t)
	rootFile := filepath.Join(t.TempDir(), "root.pem")
	if err := os.WriteFile(rootFile, e.rootPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	e.broker.Stop()
	srv := startServe(t, []string{"serve", "--data-dir", e.dir, "--listen", "127.0.0.1:0", "--log-level", "warn",
		"--mqtt-admin-url", e.broker.AdminURL(), "--mqtt-admin-user", e.broker.AdminUser, "--mqtt-ca-file", rootFile,
		"--webhook-url", receiver.srv.URL, "--job-lease", "2s", "--job-backoff-max", "1s"},
		"HALLMARK_MQTT_ADMIN_PASSWORD="+e.broker.AdminPassword, "HALLMARK_WEBHOOK_SECRET="+string(receiver.secret))
	url := srv.url

	f := newFleet(t, sigalg.ECDSAP256, sigalg.Ed25519, sigalg.MLDSA65)
	admin := adminClientAt(t, url, filepath.Join(e.dir, AdminTokenFile), e.rootPEM)
	f.register(t, admin)
	certs := make([]*tls.Certificate, len(f.devices))
	for i, d := range f.devices {
		var err error
		if _, certs[i], err = onboardAt(t, url, e.rootPEM, d, f.ids[i]); err != nil {
			t.Fatalf("onboarding: %v", err)
		}
	}
	// Both connectors' jobs have failed at least once: they wait.
	waitDevices(t, admin, f.ids, 30*time.Second, func(d httpapi.Device) (bool, string) {
		failedBoth := len(d.Cloud.Jobs) == 2
		for _, j := range d.Cloud.Jobs {
			failedBoth = failedBoth && j.State != "done" && j.Attempts >= 1
		}
		return failedBoth, ""
	}, func(d httpapi.Device) string { return fmt.Sprintf("jobs %+v", d.Cloud.Jobs) })
	srv.kill()

	// The services come back, then the platform.
	e.broker.Restart()
	receiver.setFailing(false)
	secret := receiver.secret
	hook, err := webhook.New(webhook.Config{URL: receiver.srv.URL, Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	p := e.start(t, e.mqttConnector(t), hook)
	admin = adminClient(t, p)
	registered := waitCloud(t, admin, f.ids, store.CloudActive)
	for id, d := range registered {
		if len(d.Cloud.Jobs) != 2 {
			t.Errorf("device %s has %d jobs, want one per connector: %+v", id.Short(), len(d.Cloud.Jobs), d.Cloud.Jobs)
		}
		for _, j := range d.Cloud.Jobs {
			if j.State != "done" {
				t.Errorf("device %s job %d: %s", id.Short(), j.ID, j.State)
			}
		}
	}
	e.checkExactlyRegistered(t, f.ids)
	e.checkPublishing(t, f.ids, certs)
	receiver.mu.Lock()
	defer receiver.mu.Unlock()
	byDevice := map[identity.ID]int{}
	for id, ev := range receiver.events {
		if ev.Type != webhook.EventRegistered {
			t.Errorf("event %s: type %s", id, ev.Type)
		}
		byDevice[ev.Device.Identity]++
	}
	for _, id := range f.ids {
		if byDevice[id] != 1 {
			t.Errorf("device %s: %d distinct registration events applied, want 1", id.Short(), byDevice[id])
		}
	}
	if len(byDevice) != len(f.ids) {
		t.Errorf("events for %d devices, want %d", len(byDevice), len(f.ids))
	}
	t.Logf("webhook deliveries by event (a redelivery after the kill carries the same ID): %v", receiver.posts)
}

// hallmarkBinary is built once per test run, for tests that run the real
// process.
var (
	buildOnce   sync.Once
	binaryPath  string
	binaryError error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binaryPath != "" {
		os.RemoveAll(filepath.Dir(binaryPath))
	}
	os.Exit(code)
}

func hallmarkBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "hallmark-bin-")
		if err != nil {
			binaryError = err
			return
		}
		binaryPath = filepath.Join(dir, "hallmark")
		if out, err := exec.Command("go", "build", "-o", binaryPath, "../../cmd/hallmark").CombinedOutput(); err != nil {
			binaryError = fmt.Errorf("build hallmark: %v\n%s", err, out)
		}
	})
	if binaryError != nil {
		t.Fatal(binaryError)
	}
	return binaryPath
}

// serveProcess is a `hallmark serve` process.
type serveProcess struct {
	t      *testing.T
	cmd    *exec.Cmd
	url    string
	stderr *lockedBuffer
	done   bool
}

// startServe runs hallmark with args and extra environment, waits for it to
// print its URL, and kills it when the test ends.
func startServe(t *testing.T, args []string, env ...string) *serveProcess {
	t.Helper()
	cmd := exec.Command(hallmarkBinary(t), args...)
	cmd.Env = append(os.Environ(), env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &serveProcess{t: t, cmd: cmd, stderr: &lockedBuffer{}}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.kill)
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		p.kill()
		t.Fatalf("hallmark serve: %v\n%s", err, p.stderr.String())
	}
	var tokenFile string
	if _, err := fmt.Sscanf(line, "hallmark serving at %s (admin token in %s", &p.url, &tokenFile); err != nil {
		t.Fatalf("hallmark serve printed %q", line)
	}
	return p
}

// kill ends the process with SIGKILL: no shutdown code runs.
func (p *serveProcess) kill() {
	if p.done {
		return
	}
	p.done = true
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.cmd.Wait()
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
