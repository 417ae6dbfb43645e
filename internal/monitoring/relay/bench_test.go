package relay

import (
	"context"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/connector"
	"github.com/hallmark-iot/hallmark/internal/connector/webhook"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// BenchmarkTransitionToDelivery measures the delay from a committed
// transition to its event's arrival at an HTTPS webhook receiver, with
// the default poll interval, and with a wake-up hint after the
// transition. Each transition happens at a random moment of the poll
// cycle, as an operator's would; ns/op is the mean delay.
//
//	go test -run '^$' -bench TransitionToDelivery -benchtime 20x ./internal/monitoring/relay/
func BenchmarkTransitionToDelivery(b *testing.B) {
	for _, wake := range []bool{false, true} {
		name := "poll-1s"
		if wake {
			name = "poll-1s+wake"
		}
		b.Run(name, func(b *testing.B) { benchDelay(b, wake) })
	}
}

func benchDelay(b *testing.B, wake bool) {
	f := newFleet(b, 1)
	arrived := make(chan struct{}, 1)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		arrived <- struct{}{}
	}))
	defer srv.Close()
	sink, err := webhook.New(webhook.Config{URL: srv.URL, Secret: secret, Client: srv.Client()})
	if err != nil {
		b.Fatal(err)
	}
	r, err := New(Config{Store: f.s, Sinks: []connector.EventSink{sink}})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	for { // the sink's cursor starts at the end of the log
		if _, err := f.s.EventCursor(ctx, sink.Name()); err == nil {
			break
		}
		time.Sleep(time.Millisecond)
	}
	states := []store.Transition{store.TransitionDecommission, store.TransitionReprovision}
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		time.Sleep(rand.N(DefaultPoll))
		b.StartTimer()
		f.clock = f.clock.Add(time.Second)
		if _, err := f.s.TransitionDevice(ctx, f.devices[0], store.TransitionRequest{Transition: states[i%2], Reason: "bench", At: f.clock}); err != nil {
			b.Fatal(err)
		}
		if wake {
			r.Wake()
		}
		<-arrived
	}
}

// BenchmarkCatchUp measures how fast a sink catches up with a backlog:
// each op is one event delivered to an HTTPS receiver (one POST on a
// kept-alive connection, one product lookup, one cursor advance).
//
//	go test -run '^$' -bench CatchUp -benchtime 2000x ./internal/monitoring/relay/
func BenchmarkCatchUp(b *testing.B) {
	f := newFleet(b, 1)
	for i := 0; i < b.N; i += 2 {
		f.cycle(b, 0)
	}
	total := 0
	for after := int64(0); ; {
		page, err := f.s.ListEvents(b.Context(), store.EventFilter{AfterSeq: after, Limit: store.MaxPageSize})
		must(b, err)
		if len(page) == 0 {
			break
		}
		total, after = total+len(page), page[len(page)-1].Seq
	}
	var got atomic.Int64
	srv := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { got.Add(1) }))
	defer srv.Close()
	sink, err := webhook.New(webhook.Config{URL: srv.URL, Secret: secret, Client: srv.Client()})
	must(b, err)
	r, err := New(Config{Store: f.s, Sinks: []connector.EventSink{sink}, Start: StartBeginning})
	must(b, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	b.ResetTimer()
	go func() { r.Run(ctx); close(done) }()
	for got.Load() < int64(total) {
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	cancel()
	<-done
	b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "events/s")
}
