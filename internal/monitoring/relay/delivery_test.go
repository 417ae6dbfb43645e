package relay

import (
	"context"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/connector"
	"github.com/hallmark-iot/hallmark/internal/store"
)

func TestDeliversTheLogInOrderFromTheBeginning(t *testing.T) {
	t.Parallel()
	f := newFleet(t, 3)
	for i := range 3 {
		f.cycle(t, i)
	}
	want := f.events(t)
	rec := &receiver{}
	sink := newSink(t, rec)
	start(t, Config{Store: f.s, Sinks: []connector.EventSink{sink}, Start: StartBeginning})
	waitFor(t, "six events", received(rec, len(want)))
	got, ids, verified := rec.snapshot()
	if len(got) != len(want) {
		t.Fatalf("received %d requests, want %d (no retries)", len(got), len(want))
	}
	for i, e := range want {
		g := got[i]
		if verified[i] != nil {
			t.Fatalf("request %d: %v", i, verified[i])
		}
		wantID := connector.EventID(sink.Name(), e.Seq)
		if g.Seq != e.Seq || g.Type != string(e.Kind) || g.Device.Identity != e.Identity || g.Device.Product != "sensor-v1" ||
			g.Detail != e.Detail || !g.Time.Equal(e.Time) || g.ID != wantID || ids[i] != wantID {
			t.Fatalf("request %d = %+v (Webhook-Id %s), want event %+v with ID %s", i, g, ids[i], e, wantID)
		}
	}
	waitFor(t, "the cursor at the last event", func() bool {
		cur, err := f.s.EventCursor(t.Context(), sink.Name())
		return err == nil && cur == want[len(want)-1].Seq
	})
}

func TestNewSinkStartsAtTheEnd(t *testing.T) {
	t.Parallel()
	f := newFleet(t, 2)
	f.cycle(t, 0) // history the new sink is not told of
	rec := &receiver{}
	sink := newSink(t, rec)
	start(t, Config{Store: f.s, Sinks: []connector.EventSink{sink}}) // StartEnd by default
	waitFor(t, "the cursor to start", func() bool { _, err := f.s.EventCursor(t.Context(), sink.Name()); return err == nil })
	f.cycle(t, 1)
	waitFor(t, "two events", received(rec, 2))
	time.Sleep(50 * time.Millisecond) // five polls: nothing else comes
	got, _, _ := rec.snapshot()
	if len(got) != 2 || got[0].Device.Identity != f.devices[1] || got[0].Type != string(store.EventDecommissioned) ||
		got[1].Type != string(store.EventReprovisioned) {
		t.Fatalf("received %+v, want device 1's decommission and reprovision only", got)
	}
}

func TestRetryableFailureRetriesTheSameEventAndKeepsOrder(t *testing.T) {
	t.Parallel()
	f := newFleet(t, 1)
	f.cycle(t, 0)
	events := f.events(t)
	// 500, 429 and 503 for the first event, then success.
	rec := &receiver{script: []int{500, 429, 503}}
	m := &metrics{}
	sink := newSink(t, rec)
	start(t, Config{Store: f.s, Sinks: []connector.EventSink{sink}, Start: StartBeginning, Metrics: m})
	waitFor(t, "five requests", received(rec, 5))
	waitFor(t, "two deliveries", func() bool { return m.count(OutcomeDelivered) == 2 })
	got, ids, _ := rec.snapshot()
	for i := range 4 {
		if got[i].Seq != events[0].Seq || ids[i] != ids[0] {
			t.Fatalf("request %d: seq %d ID %s, want the first event again (seq %d, ID %s)", i, got[i].Seq, ids[i], events[0].Seq, ids[0])
		}
	}
	if got[4].Seq != events[1].Seq || ids[4] == ids[0] {
		t.Fatalf("request 4: seq %d, want the second event after the first was delivered", got[4].Seq)
	}
	if n := m.count(OutcomeRetry); n != 3 {
		t.Fatalf("retries counted %d, want 3", n)
	}
	waitFor(t, "nothing behind", func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		return m.behind[len(m.behind)-1] == 0
	})
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.behind[0] != 2 {
		t.Fatalf("events behind reported %v: want 2 first, 0 at the end", m.behind)
	}
}

func TestPermanentFailureIsSkipped(t *testing.T) {
	t.Parallel()
	f := newFleet(t, 1)
	f.cycle(t, 0)
	events := f.events(t)
	rec := &receiver{script: []int{400}}
	m := &metrics{}
	sink := newSink(t, rec)
	start(t, Config{Store: f.s, Sinks: []connector.EventSink{sink}, Start: StartBeginning, Metrics: m})
	waitFor(t, "the second event", received(rec, 2))
	waitFor(t, "the cursor past both", func() bool {
		cur, err := f.s.EventCursor(t.Context(), sink.Name())
		return err == nil && cur == events[1].Seq
	})
	got, _, _ := rec.snapshot()
	if got[0].Seq != events[0].Seq || got[1].Seq != events[1].Seq || len(got) != 2 {
		t.Fatalf("received seqs %d, %d (%d requests): want the refused event once, then the next", got[0].Seq, got[1].Seq, len(got))
	}
	if m.count(OutcomeFailed) != 1 || m.count(OutcomeDelivered) != 1 || m.count(OutcomeRetry) != 0 {
		t.Fatalf("outcomes %v, want one failed, one delivered", m.outcomes)
	}
}

func TestRestartResumesAfterTheCursor(t *testing.T) {
	t.Parallel()
	f := newFleet(t, 2)
	f.cycle(t, 0)
	rec := &receiver{}
	sink := newSink(t, rec)
	r, err := New(Config{Store: f.s, Sinks: []connector.EventSink{sink}, Start: StartBeginning, Poll: 10 * time.Millisecond})
	must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	waitFor(t, "two events", received(rec, 2))
	waitFor(t, "the cursor at the second", func() bool {
		cur, _ := f.s.EventCursor(t.Context(), sink.Name())
		return cur == f.events(t)[1].Seq
	})
	cancel()
	<-done
	// Down while events happen; the restarted relay (told to start at
	// the end, which applies only to a new sink) delivers them.
	f.cycle(t, 1)
	start(t, Config{Store: f.s, Sinks: []connector.EventSink{sink}, Start: StartEnd})
	waitFor(t, "four events", received(rec, 4))
	got, _, _ := rec.snapshot()
	all := f.events(t)
	for i := range got {
		if got[i].Seq != all[i].Seq {
			t.Fatalf("request %d: seq %d, want %d: each event once, in order", i, got[i].Seq, all[i].Seq)
		}
	}
}

func TestTwoRelaysShareOneCursor(t *testing.T) {
	t.Parallel()
	// Replicas on one database: each runs a relay for the same sink, and
	// the lease lets one deliver; each event is delivered once.
	f := newFleet(t, 4)
	rec := &receiver{}
	sink := newSink(t, rec)
	start(t, Config{Store: f.s, Sinks: []connector.EventSink{sink}, Start: StartBeginning, Holder: "replica-1"})
	start(t, Config{Store: f.s, Sinks: []connector.EventSink{sink}, Start: StartBeginning, Holder: "replica-2"})
	for i := range 4 {
		f.cycle(t, i)
	}
	all := f.events(t)
	waitFor(t, "the cursor at the last event", func() bool {
		cur, _ := f.s.EventCursor(t.Context(), sink.Name())
		return cur == all[len(all)-1].Seq
	})
	got, _, verified := rec.snapshot()
	if len(got) != len(all) {
		t.Fatalf("%d deliveries of %d events by two relays, want each once", len(got), len(all))
	}
	for i, g := range got {
		if verified[i] != nil || g.Seq != all[i].Seq {
			t.Fatalf("delivery %d: seq %d (verify: %v), want %d", i, g.Seq, verified[i], all[i].Seq)
		}
	}
}

func TestAnotherHoldersLeaseIsRespected(t *testing.T) {
	t.Parallel()
	f := newFleet(t, 1)
	rec := &receiver{}
	sink := newSink(t, rec)
	ctx := t.Context()
	// A relay in another process holds the sink for an hour.
	_, err := f.s.StartEventCursor(ctx, sink.Name(), true)
	must(t, err)
	now := time.Now()
	held, err := f.s.ClaimEventCursor(ctx, sink.Name(), "elsewhere", now, now.Add(time.Hour))
	if err != nil || !held {
		t.Fatalf("claim = %v, %v", held, err)
	}
	start(t, Config{Store: f.s, Sinks: []connector.EventSink{sink}})
	f.cycle(t, 0)
	time.Sleep(100 * time.Millisecond) // ten polls
	if got, _, _ := rec.snapshot(); len(got) != 0 {
		t.Fatalf("%d deliveries while another relay holds the sink", len(got))
	}
	// It gives the sink up (a clean stop): this relay takes over.
	now = time.Now()
	_, err = f.s.ClaimEventCursor(ctx, sink.Name(), "elsewhere", now, now)
	must(t, err)
	waitFor(t, "two events", received(rec, 2))
}

func TestWakeCutsThePollShort(t *testing.T) {
	t.Parallel()
	f := newFleet(t, 1)
	rec := &receiver{}
	sink := newSink(t, rec)
	r := start(t, Config{Store: f.s, Sinks: []connector.EventSink{sink}, Poll: time.Hour})
	waitFor(t, "the cursor to start", func() bool { _, err := f.s.EventCursor(t.Context(), sink.Name()); return err == nil })
	f.cycle(t, 0)
	r.Wake()
	// With an hour between polls, only the wake-up delivers these.
	waitFor(t, "two events", received(rec, 2))
}

func TestNewChecksConfig(t *testing.T) {
	t.Parallel()
	f := newFleet(t, 0)
	sink := newSink(t, &receiver{})
	for name, cfg := range map[string]Config{
		"no store":       {Sinks: []connector.EventSink{sink}},
		"two same names": {Store: f.s, Sinks: []connector.EventSink{sink, sink}},
		"bad start":      {Store: f.s, Start: "yesterday"},
		"nil sink":       {Store: f.s, Sinks: []connector.EventSink{nil}},
		"short lease":    {Store: f.s, Timeout: time.Second, Lease: 2 * time.Second},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
	if _, err := ParseStart("beginning"); err != nil {
		t.Fatal(err)
	}
	if s, err := ParseStart(""); err != nil || s != StartEnd {
		t.Fatalf(`ParseStart("") = %q, %v`, s, err)
	}
	if _, err := ParseStart("tomorrow"); err == nil {
		t.Fatal("ParseStart accepted an unknown start")
	}
}
