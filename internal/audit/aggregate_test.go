package audit

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hallmark-iot/hallmark/internal/store"
)

// memoryLog is an audit log in memory.
type memoryLog struct {
	mu     sync.Mutex
	events []store.AuditEvent
}

func (m *memoryLog) AppendAudit(_ context.Context, e store.AuditEvent) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.events = append(m.events, e)
	return int64(len(m.events)), nil
}

func (m *memoryLog) all() []store.AuditEvent {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]store.AuditEvent(nil), m.events...)
}

var t0 = time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)

func newTestAggregator(t *testing.T, maxSources int) (*Aggregator, *memoryLog, *prometheus.Registry, *time.Time) {
	t.Helper()
	log, reg, now := &memoryLog{}, prometheus.NewRegistry(), t0
	a, err := New(Config{Store: log, Metrics: reg, MaxSources: maxSources, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	return a, log, reg, &now
}

func TestAggregatorBoundsAFlood(t *testing.T) {
	ctx := context.Background()
	a, log, reg, now := newTestAggregator(t, 0)
	wrong := Refusal{Interface: "admin", Action: "device.list", Reason: "unknown-token", Source: "203.0.113.9", Actor: "token:abcdefgh12"}
	for range 1000 {
		a.Refuse(ctx, wrong)
		*now = now.Add(time.Millisecond)
	}
	locked := Refusal{Interface: "admin", Action: "device.list", Reason: "locked-out", Source: "203.0.113.9", SummaryOnly: true}
	for range 500 {
		a.Refuse(ctx, locked)
	}
	// One event so far: the first refusal, as it was.
	events := log.all()
	if len(events) != 1 || events[0].Actor != "token:abcdefgh12" || events[0].Detail != "unknown-token" ||
		events[0].RemoteAddr != "203.0.113.9" || events[0].Outcome != "denied" || !events[0].Time.Equal(t0) {
		t.Fatalf("before the flush: %+v", events)
	}
	a.Flush(ctx)
	events = log.all()
	if len(events) != 3 {
		t.Fatalf("after the flush: %d events: %+v", len(events), events)
	}
	first, last := t0.Format(timeLayout), t0.Add(999*time.Millisecond).Format(timeLayout)
	want := []string{
		"unknown-token: 1000 refused from " + first + " to " + last + " (the first logged on its own)",
		"locked-out: 500 refused from " + now.Format(timeLayout) + " to " + now.Format(timeLayout),
	}
	for i, ev := range events[1:] {
		if ev.Detail != want[i] || ev.Actor != "anonymous" || ev.Subject != "address:203.0.113.9" || ev.Action != "device.list" {
			t.Errorf("summary %d: %+v, want detail %q", i, ev, want[i])
		}
	}
	if got := refusedCount(t, reg); got["admin/unknown-token"] != 1000 || got["admin/locked-out"] != 500 || len(got) != 2 {
		t.Errorf("hallmark_refused_requests_total: %v", got)
	}
	// A flush with nothing new writes nothing; the next interval starts
	// with its own first event.
	a.Flush(ctx)
	a.Refuse(ctx, wrong)
	a.Refuse(ctx, wrong)
	if n := len(log.all()); n != 4 {
		t.Fatalf("%d events, want 4", n)
	}
}

func TestAggregatorMemoryBound(t *testing.T) {
	ctx := context.Background()
	a, log, _, _ := newTestAggregator(t, 10)
	for i := range 500 {
		a.Refuse(ctx, Refusal{Interface: "onboarding", Action: "device.onboard", Reason: "proof-rejected", Source: fmt.Sprintf("2001:db8::%x", i)})
	}
	if n := len(a.tallies) + len(a.overflow); n != 11 {
		t.Fatalf("%d keys tallied, want 10 and the overflow", n)
	}
	// Only the keys that fit were written on their own.
	if n := len(log.all()); n != 10 {
		t.Fatalf("%d events before the flush", n)
	}
	a.Flush(ctx)
	events := log.all()
	if len(events) != 11 {
		t.Fatalf("%d events after the flush, want 11", len(events))
	}
	other := events[10]
	if other.Subject != OtherSources || other.RemoteAddr != "" || !strings.HasPrefix(other.Detail, "proof-rejected: 490 refused") {
		t.Fatalf("overflow summary %+v", other)
	}
}

func TestAggregatorEscapes(t *testing.T) {
	ctx := context.Background()
	a, log, _, _ := newTestAggregator(t, 0)
	a.Refuse(ctx, Refusal{Interface: "admin", Action: "x\x1b[2J", Reason: "r", Source: "1.2.3.4\nforged",
		Actor: "token:x\x1b[2J", Subject: "device:\u202eevil"})
	ev := log.all()[0]
	// Actor and subject are not the identifiers they claim to be: they
	// are replaced, not merely escaped; other text is escaped.
	if ev.RemoteAddr != InvalidSource || ev.Actor != Invalid || ev.Subject != "device:"+Invalid || ev.Action != `x\x1b[2J` {
		t.Fatalf("event %+v", ev)
	}
}

// TestRunFlushesOnStop: the summaries of the last interval are written
// when the loop's context ends.
func TestRunFlushesOnStop(t *testing.T) {
	a, log, _, _ := newTestAggregator(t, 0)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- a.Run(ctx) }()
	for range 3 {
		a.Refuse(ctx, Refusal{Interface: "onboarding", Action: "device.onboard", Reason: "rate-limited", Source: "192.0.2.1", SummaryOnly: true})
	}
	if n := len(log.all()); n != 0 {
		t.Fatalf("summary-only refusals wrote %d events at once", n)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	events := log.all()
	if len(events) != 1 || !strings.HasPrefix(events[0].Detail, "rate-limited: 3 refused") {
		t.Fatalf("after stop: %+v", events)
	}
}

// refusedCount reads hallmark_refused_requests_total by interface/reason.
func refusedCount(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "hallmark_refused_requests_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			out[labels["interface"]+"/"+labels["reason"]] = m.GetCounter().GetValue()
		}
	}
	return out
}
