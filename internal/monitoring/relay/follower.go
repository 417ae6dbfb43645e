package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hallmark-iot/hallmark/internal/connector"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// follower delivers the log to one sink. Its cursor is the store's, as
// this process last read or moved it.
type follower struct {
	cfg     *Config
	sink    connector.EventSink
	wake    chan struct{}
	log     *slog.Logger
	started bool
	cursor  int64
	// holding says whether this relay holds the sink's lease, until
	// heldUntil.
	holding   bool
	heldUntil time.Time
}

// run follows the log until ctx ends, then gives the sink up. A failing
// store is retried with the same backoff as a failing sink.
func (f *follower) run(ctx context.Context) {
	defer f.release()
	failures := 0
	for ctx.Err() == nil {
		more, err := f.step(ctx)
		wait := f.cfg.Poll
		switch {
		case err != nil && ctx.Err() == nil:
			failures++
			wait = max(connector.BackoffWith(failures, f.cfg.BackoffBase, f.cfg.BackoffCap), f.cfg.Poll)
			f.log.Warn("event relay", "err", err, "retry_in", wait)
		case more:
			failures, wait = 0, 0
		default:
			failures = 0
		}
		if !f.sleep(ctx, wait, true) {
			return
		}
	}
}

// step delivers one page of the log after the cursor, if this relay holds
// the sink, and reports whether there may be more at once.
func (f *follower) step(ctx context.Context) (more bool, err error) {
	name := f.sink.Name()
	if !f.started {
		if f.cursor, err = f.cfg.Store.StartEventCursor(ctx, name, f.cfg.Start == StartEnd); err != nil {
			return false, err
		}
		f.started = true
		f.log.Info("event relay started", "after_seq", f.cursor, "holder", f.cfg.Holder)
	}
	if held, err := f.hold(ctx); !held {
		return false, err
	}
	// Another relay may have held the sink since this one last did.
	if f.cursor, err = f.cfg.Store.EventCursor(ctx, name); err != nil {
		return false, err
	}
	events, err := f.cfg.Store.ListEvents(ctx, store.EventFilter{AfterSeq: f.cursor, Limit: f.cfg.Page})
	if err != nil {
		return false, err
	}
	for i, e := range events {
		f.behind(events[i:])
		ev, err := f.event(ctx, e)
		if err != nil {
			return false, err
		}
		if delivered, err := f.deliver(ctx, ev); !delivered {
			return false, err // the event is delivered again, by this relay or the next holder
		}
		moved, err := f.cfg.Store.AdvanceEventCursor(ctx, name, f.cursor, e.Seq)
		if err != nil {
			// The cursor stays: the event is delivered again, at least once.
			return false, fmt.Errorf("advance cursor to %d: %w", e.Seq, err)
		}
		if !moved {
			// Another relay moved it (this one's lease ran out during a
			// delivery): the next step reads where it is.
			f.log.Info("event cursor moved by another relay", "seq", e.Seq)
			return true, nil
		}
		f.cursor = e.Seq
	}
	f.behind(nil)
	return len(events) == f.cfg.Page, nil
}

// hold claims or renews the sink's lease when less than half of it is
// left, and reports whether this relay holds it.
func (f *follower) hold(ctx context.Context) (bool, error) {
	now := f.cfg.Now()
	if f.holding && now.Before(f.heldUntil.Add(-f.cfg.Lease/2)) {
		return true, nil
	}
	until := now.Add(f.cfg.Lease)
	held, err := f.cfg.Store.ClaimEventCursor(ctx, f.sink.Name(), f.cfg.Holder, now, until)
	if err != nil {
		f.holding = false
		return false, fmt.Errorf("claim the sink: %w", err)
	}
	if held != f.holding {
		f.log.Info("event relay lease", "held", held, "holder", f.cfg.Holder)
	}
	f.holding, f.heldUntil = held, until
	if !held {
		f.behind(nil) // the holder reports what is behind
	}
	return held, nil
}

// release gives the sink up at once, so a restarted process or another
// replica need not wait for the lease to run out.
func (f *follower) release() {
	if !f.holding {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	now := f.cfg.Now()
	if _, err := f.cfg.Store.ClaimEventCursor(ctx, f.sink.Name(), f.cfg.Holder, now, now); err != nil {
		f.log.Warn("event relay: give the sink up", "err", err)
	}
	f.holding = false
}

// event is what the sink is told of e: the device's product is looked up
// (an unknown device has none).
func (f *follower) event(ctx context.Context, e store.DeviceEvent) (connector.Event, error) {
	ev := connector.Event{ID: connector.EventID(f.sink.Name(), e.Seq), Seq: e.Seq, Kind: string(e.Kind),
		Time: e.Time, Identity: e.Identity, Serial: e.Serial, Detail: e.Detail}
	d, err := f.cfg.Store.GetDevice(ctx, e.Identity)
	switch {
	case err == nil:
		ev.ProductID = d.ProductID
	case !errors.Is(err, store.ErrNotFound):
		return ev, fmt.Errorf("event %d: %w", e.Seq, err)
	}
	return ev, nil
}

// deliver publishes ev until it is delivered or fails for good, and
// reports whether the cursor may move past it: false if ctx ended or the
// lease was lost first.
func (f *follower) deliver(ctx context.Context, ev connector.Event) (bool, error) {
	name := f.sink.Name()
	for attempt := 1; ; attempt++ {
		if held, err := f.hold(ctx); !held {
			return false, err
		}
		actx, cancel := context.WithTimeout(ctx, f.cfg.Timeout)
		err := f.sink.Publish(actx, ev)
		cancel()
		switch {
		case err == nil:
			f.cfg.Metrics.ObserveDelivery(name, OutcomeDelivered)
			return true, nil
		case ctx.Err() != nil:
			return false, nil
		case errors.Is(err, connector.ErrPermanent):
			f.cfg.Metrics.ObserveDelivery(name, OutcomeFailed)
			f.log.Error("event not delivered, skipped", "seq", ev.Seq, "kind", ev.Kind, "id", ev.ID, "attempt", attempt, "err", err)
			return true, nil
		}
		f.cfg.Metrics.ObserveDelivery(name, OutcomeRetry)
		wait := connector.BackoffWith(attempt, f.cfg.BackoffBase, f.cfg.BackoffCap)
		f.log.Warn("event delivery will retry", "seq", ev.Seq, "kind", ev.Kind, "id", ev.ID, "attempt", attempt, "retry_in", wait, "err", err)
		// A backoff longer than the lease renews it on the way (hold,
		// each quarter lease), so the sink stays with this relay.
		for wait > 0 {
			chunk := min(wait, f.cfg.Lease/4)
			if !f.sleep(ctx, chunk, false) {
				return false, nil
			}
			wait -= chunk
			if held, err := f.hold(ctx); !held {
				return false, err
			}
		}
	}
}

// behind reports the events still to deliver, pending[0] the oldest.
func (f *follower) behind(pending []store.DeviceEvent) {
	var age time.Duration
	if len(pending) > 0 {
		age = max(f.cfg.Now().Sub(pending[0].Time), 0)
	}
	f.cfg.Metrics.SetBehind(f.sink.Name(), len(pending), age)
}

// sleep waits d, or less if woken (when wakeable), and reports false if
// ctx ended. A retry's backoff is not cut short by a wake-up: a new event
// does not make a failing receiver better.
func (f *follower) sleep(ctx context.Context, d time.Duration, wakeable bool) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	wake := f.wake
	if !wakeable {
		wake = nil
	}
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
	case <-wake:
	}
	return true
}
