package onboarding_test

import (
	"context"
	"encoding/hex"
	"sync"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/audit"
	"github.com/hallmark-iot/hallmark/internal/device"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/onboarding"
	"github.com/hallmark-iot/hallmark/internal/onboarding/onboardstore"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// refusalLog records what a Service hands to its Refusals.
type refusalLog struct {
	mu   sync.Mutex
	seen []audit.Refusal
}

func (l *refusalLog) Refuse(_ context.Context, r audit.Refusal) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seen = append(l.seen, r)
}

// TestRefusalsGoToTheAggregator: with Refusals configured, every refused
// proof and every refused challenge goes there, none to the audit log,
// and those refused by a rate limit are summary-only.
func TestRefusalsGoToTheAggregator(t *testing.T) {
	p := newPlatform(t, sigalg.ECDSAP256)
	ctx := context.Background()
	log := &refusalLog{}
	cfg := p.config(nil, -1, 12) // a burst of 4
	cfg.Refusals = onboardstore.Refusals{Aggregator: log}
	svc, err := onboarding.NewService(cfg)
	if err != nil {
		t.Fatal(err)
	}
	d, id := p.newDevice(t, device.ClassKeygen, sigalg.Ed25519)
	unknown := onboarding.ProofRequest{ChallengeID: hex.EncodeToString(make([]byte, onboarding.ChallengeIDSize)), Identity: id, CSR: []byte{1}, Signature: []byte{1}}
	before, _ := p.store.ListAudit(ctx, store.AuditFilter{Limit: 1000})
	for range 6 {
		svc.Prove(ctx, unknown, "192.0.2.1")
	}
	for range 3 {
		svc.Challenge(ctx, onboarding.ChallengeRequest{Identity: identity.ID{9}}, "192.0.2.1")
	}
	after, _ := p.store.ListAudit(ctx, store.AuditFilter{Limit: 1000})
	if len(after) != len(before) {
		t.Fatalf("refusals wrote %d audit events themselves", len(after)-len(before))
	}
	want := []struct {
		action, reason string
		summaryOnly    bool
	}{
		{"device.onboard", "challenge-unknown", false}, {"device.onboard", "challenge-unknown", false},
		{"device.onboard", "challenge-unknown", false}, {"device.onboard", "challenge-unknown", false},
		{"device.onboard", "rate-limited", true}, {"device.onboard", "rate-limited", true},
		{"device.challenge", "rate-limited", true}, {"device.challenge", "rate-limited", true}, {"device.challenge", "rate-limited", true},
	}
	if len(log.seen) != len(want) {
		t.Fatalf("%d refusals recorded, want %d: %+v", len(log.seen), len(want), log.seen)
	}
	for i, w := range want {
		r := log.seen[i]
		if r.Interface != "onboarding" || r.Action != w.action || r.Reason != w.reason || r.SummaryOnly != w.summaryOnly || r.Source != "192.0.2.1" {
			t.Errorf("refusal %d: %+v, want %+v", i, r, w)
		}
	}
	// A success is not a refusal, and stays one event in its transaction.
	cfg = p.config(nil, 0, 0)
	cfg.Refusals = onboardstore.Refusals{Aggregator: log}
	ok, err := onboarding.NewService(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ch, err := ok.Challenge(ctx, onboarding.ChallengeRequest{Identity: id}, "192.0.2.2")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ok.Prove(ctx, proof(t, d, id, ch, serverName), "192.0.2.2"); err != nil {
		t.Fatal(err)
	}
	if len(log.seen) != len(want) {
		t.Fatalf("a success was recorded as a refusal: %+v", log.seen[len(want):])
	}
}
