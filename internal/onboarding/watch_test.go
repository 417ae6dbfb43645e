package onboarding_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/device"
	"github.com/hallmark-iot/hallmark/internal/onboarding"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// watchRecorder keeps what onboarding tells its Watch.
type watchRecorder struct {
	mu   sync.Mutex
	seen []onboarding.Onboarding
}

func (w *watchRecorder) Onboarded(_ context.Context, o onboarding.Onboarding) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.seen = append(w.seen, o)
}

// TestWatchToldOfOnboardings: the Watch hears of each successful
// onboarding, with its source and whether the device was onboarded
// already; a refused proof and a reprovisioned device's fresh onboarding
// are told apart.
func TestWatchToldOfOnboardings(t *testing.T) {
	p := newPlatform(t, sigalg.ECDSAP256)
	w := &watchRecorder{}
	cfg := p.config(func() time.Time { return *p.now.Load() }, -1, -1)
	cfg.Watch = w
	svc, err := onboarding.NewService(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p.svc = svc
	ctx := context.Background()
	d, id := p.newDevice(t, device.ClassPUF, sigalg.Ed25519)
	other, _ := p.newDevice(t, device.ClassPUF, sigalg.Ed25519)
	if _, err := svc.Prove(ctx, proof(t, other, id, p.challenge(t, id), serverName), "198.51.100.1"); err == nil {
		t.Fatal("a proof by another device's key was accepted")
	}
	for _, source := range []string{"192.0.2.1", "192.0.2.2"} {
		if _, err := svc.Prove(ctx, proof(t, d, id, p.challenge(t, id), serverName), source); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p.store.TransitionDevice(ctx, id, store.TransitionRequest{Transition: store.TransitionDecommission, Reason: "eol", At: *p.now.Load()}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.store.TransitionDevice(ctx, id, store.TransitionRequest{Transition: store.TransitionReprovision, Reason: "refurbished", At: *p.now.Load()}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Prove(ctx, proof(t, d, id, p.challenge(t, id), serverName), "192.0.2.3"); err != nil {
		t.Fatal(err)
	}
	want := []struct {
		source string
		again  bool
	}{{"192.0.2.1", false}, {"192.0.2.2", true}, {"192.0.2.3", false}}
	if len(w.seen) != len(want) {
		t.Fatalf("watch told %+v, want %d onboardings", w.seen, len(want))
	}
	for i, o := range w.seen {
		if o.Identity != id || o.Source != want[i].source || o.Again != want[i].again || o.At.IsZero() {
			t.Errorf("onboarding %d: %+v, want source %s, again %v", i, o, want[i].source, want[i].again)
		}
	}
}
