package app

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/connector"
	"github.com/hallmark-iot/hallmark/internal/connector/webhook"
	"github.com/hallmark-iot/hallmark/internal/monitoring/relay"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// Device events delivered to the customer's systems (docs/lifecycle.md,
// "Events to your systems"), as an operator sees them: a platform with
// webhooks pointing at HTTPS receivers that verify what they get.

// eventReceiver is a customer's webhook endpoint over HTTPS. It verifies
// each request with its secret and keeps the device events (registration
// events, which the connector's jobs post to the same URL, are answered
// and set aside); it answers 500 to the first fail[type] deliveries of a
// type, and 401 to a request that fails verification.
type eventReceiver struct {
	secret []byte
	srv    *httptest.Server
	mu     sync.Mutex
	fail   map[string]int
	got    []receivedEvent
}

type receivedEvent struct {
	webhook.DeviceEvent
	header string // Webhook-Id
	at     time.Time
	status int
	verify error
}

func newEventReceiver(t *testing.T, secret string, fail map[string]int) *eventReceiver {
	r := &eventReceiver{secret: []byte(secret), fail: fail}
	r.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(req.Body, 64<<10))
		verr := webhook.Verify(r.secret, req.Header, body, time.Now(), 0)
		var ev webhook.DeviceEvent
		if err := json.Unmarshal(body, &ev); err != nil || ev.Seq == 0 {
			w.WriteHeader(http.StatusNoContent) // a registration event
			return
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		status := http.StatusOK
		switch {
		case verr != nil:
			status = http.StatusUnauthorized
		case r.fail[ev.Type] > 0:
			r.fail[ev.Type]--
			status = http.StatusInternalServerError
		}
		r.got = append(r.got, receivedEvent{DeviceEvent: ev, header: req.Header.Get(webhook.HeaderID), at: time.Now(), status: status, verify: verr})
		w.WriteHeader(status)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *eventReceiver) events() []receivedEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// hook is a webhook connector named name that signs with secret and posts
// to r.
func (r *eventReceiver) hook(t *testing.T, name, secret string) *webhook.Connector {
	c, err := webhook.New(webhook.Config{Name: name, URL: r.srv.URL, Secret: []byte(secret), Client: r.srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestDeviceEventsReachTheWebhookSignedAndInOrder(t *testing.T) {
	t.Parallel()
	const secret = "the receiver's shared secret"
	good := newEventReceiver(t, secret, map[string]int{"device.suspended": 1}) // 500, then 200
	bad := newEventReceiver(t, "a secret the platform was never told", nil)
	p, err := Start(context.Background(), Config{DataDir: newDataDir(t), Listen: "127.0.0.1:0", ServerName: "localhost",
		CASuite: sigalg.ECDSAP256, Connectors: []connector.Connector{good.hook(t, "webhook", secret), bad.hook(t, "webhook-b", secret)},
		// An hour between polls: the admin transitions' wake-up hint is
		// what delivers their events (and the onboarding's before them).
		// From the beginning: the log may have the onboarding before the
		// relay's first read.
		Events: EventsConfig{Start: relay.StartBeginning, Poll: time.Hour, BackoffBase: 20 * time.Millisecond, BackoffCap: 100 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	admin := adminClient(t, p)
	f := newFleet(t, sigalg.Ed25519)
	f.register(t, admin)
	if _, _, err := onboard(t, p, f.devices[0], f.ids[0]); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	sent := map[string]time.Time{}
	for _, tr := range []struct{ transition, event string }{
		{"suspend", "device.suspended"}, {"resume", "device.resumed"}, {"revoke", "device.revoked"},
	} {
		if _, err := admin.TransitionDevice(ctx, f.ids[0], tr.transition, "ticket "+tr.transition); err != nil {
			t.Fatalf("%s: %v", tr.transition, err)
		}
		sent[tr.event] = time.Now()
	}
	want := []string{"device.onboarded", "device.suspended", "device.suspended", "device.resumed", "device.revoked"}
	got := waitEvents(t, good, len(want))
	var types []string
	for _, e := range got {
		types = append(types, e.Type)
		if e.verify != nil || e.Device.Identity != f.ids[0] || e.Device.Product != "meter" || e.ID != e.header ||
			e.ID != connector.EventID("webhook", e.Seq) {
			t.Errorf("delivery %+v (verify: %v)", e.DeviceEvent, e.verify)
		}
	}
	if !slices.Equal(types, want) {
		t.Fatalf("deliveries %v, want %v: each in order, the refused one again before the next", types, want)
	}
	if got[1].status != http.StatusInternalServerError || got[2].ID != got[1].ID || got[2].status != http.StatusOK {
		t.Fatalf("the suspension: %+v then %+v, want a 500 then the same ID again, accepted", got[1], got[2])
	}
	if got[1].Detail != "ticket suspend" || got[1].Seq <= got[0].Seq || got[3].Seq <= got[1].Seq || got[4].Seq <= got[3].Seq {
		t.Fatalf("deliveries %+v: want the reason as detail, seqs increasing", got)
	}
	for _, e := range []receivedEvent{got[2], got[3], got[4]} {
		t.Logf("%s: delivered %v after the admin API answered (woken; no poll)", e.Type, e.at.Sub(sent[e.Type]).Round(time.Millisecond))
	}

	// The receiver with another secret refuses every event: 401 is for
	// good, so each is tried once, counted and skipped.
	refused := waitEvents(t, bad, 4)
	for _, e := range refused {
		if !errors.Is(e.verify, webhook.ErrInvalidSignature) || e.status != http.StatusUnauthorized {
			t.Errorf("the bad secret's receiver: %s verify %v status %d, want ErrInvalidSignature and 401", e.Type, e.verify, e.status)
		}
		if e.ID == connector.EventID("webhook", e.Seq) {
			t.Errorf("two sinks share the ID %s", e.ID)
		}
	}
	// The counters move once the receivers have answered: wait for them.
	lines := []string{
		`hallmark_event_deliveries_total{outcome="delivered",sink="webhook"} 4`,
		`hallmark_event_deliveries_total{outcome="retry",sink="webhook"} 1`,
		`hallmark_event_deliveries_total{outcome="failed",sink="webhook-b"} 4`,
		`hallmark_event_relay_behind{sink="webhook"} 0`,
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		metrics := scrapeMetrics(t, p)
		missing := slices.DeleteFunc(slices.Clone(lines), func(l string) bool { return strings.Contains(metrics, l+"\n") })
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics lack %q", missing)
		}
	}
}

// waitEvents waits for n device event deliveries to r and returns them.
func waitEvents(t *testing.T, r *eventReceiver, n int) []receivedEvent {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := r.events()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d device events delivered, want %d: %+v", len(got), n, got)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
