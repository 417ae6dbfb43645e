package storetest

import (
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/store"
)

// The event cursor contract: a cursor starts at the start or the end of
// the log once, and moves only by compare-and-set, so relays in replicas
// sharing one database never move it backwards.

func testEventCursors(t *testing.T, f *fixture) {
	_, err := f.s.EventCursor(f.ctx, "never")
	wantErr(t, "EventCursor of an unknown cursor", err, store.ErrNotFound)
	_, err = f.s.AdvanceEventCursor(f.ctx, "never", 0, 1)
	wantErr(t, "AdvanceEventCursor of an unknown cursor", err, store.ErrNotFound)
	for _, name := range []string{"", strings.Repeat("x", store.MaxCursorName+1)} {
		if _, err := f.s.StartEventCursor(f.ctx, name, false); err == nil {
			t.Fatalf("StartEventCursor(%d-byte name) succeeded", len(name))
		}
	}
	long := strings.Repeat("x", store.MaxCursorName)
	got, err := f.s.StartEventCursor(f.ctx, long, true)
	must(t, err)
	equal(t, "a cursor started at the end of an empty log", got, int64(0))

	d := f.deviceIn(t, "cursors", store.StateSuspended) // onboarded, renewed, suspended
	f.settle(t)
	all, err := f.s.ListEvents(f.ctx, store.EventFilter{})
	must(t, err)
	if len(all) != 3 {
		t.Fatalf("log has %d events, want 3", len(all))
	}
	last := all[len(all)-1].Seq
	atEnd, err := f.s.StartEventCursor(f.ctx, "sink-end", true)
	must(t, err)
	equal(t, "a cursor started at the end", atEnd, last)
	atStart, err := f.s.StartEventCursor(f.ctx, "sink-start", false)
	must(t, err)
	equal(t, "a cursor started at the start", atStart, int64(0))
	// Starting again finds the cursor where it is, whatever atEnd says.
	again, err := f.s.StartEventCursor(f.ctx, "sink-start", true)
	must(t, err)
	equal(t, "a cursor started twice", again, int64(0))

	// From the end, a follower sees only what happens next.
	_, err = f.s.TransitionDevice(f.ctx, d.id, store.TransitionRequest{Transition: store.TransitionResume, Reason: "fine", At: at(11 * time.Hour)})
	must(t, err)
	equal(t, "events after the end cursor", kinds(eventsAfter(t, f, atEnd, 1)), []store.EventKind{store.EventResumed})

	moved, err := f.s.AdvanceEventCursor(f.ctx, "sink-start", 0, all[0].Seq)
	must(t, err)
	equal(t, "advance from where the cursor is", moved, true)
	moved, err = f.s.AdvanceEventCursor(f.ctx, "sink-start", 0, all[1].Seq)
	must(t, err)
	equal(t, "advance from where the cursor was", moved, false)
	cur, err := f.s.EventCursor(f.ctx, "sink-start")
	must(t, err)
	equal(t, "the cursor after a lost advance", cur, all[0].Seq)
	cur, err = f.s.EventCursor(f.ctx, "sink-end")
	must(t, err)
	equal(t, "another sink's cursor", cur, atEnd)
}

func testEventCursorsConcurrently(t *testing.T, f *fixture) {
	f.deviceIn(t, "cursors-race", store.StateOnboarded)
	const n = 8
	var wg sync.WaitGroup
	starts := make([]int64, n)
	wins := make([]bool, n)
	errs := make([]error, 2*n)
	for i := range n {
		// Half start at the end, half at the start: one of them creates
		// the cursor, and every call returns what it created.
		wg.Go(func() { starts[i], errs[i] = f.s.StartEventCursor(f.ctx, "race", i%2 == 0) })
	}
	wg.Wait()
	for i := range n {
		must(t, errs[i])
		equal(t, "concurrent starts agree", starts[i], starts[0])
	}
	for i := range n {
		wg.Go(func() { wins[i], errs[n+i] = f.s.AdvanceEventCursor(f.ctx, "race", starts[0], starts[0]+int64(i)+1) })
	}
	wg.Wait()
	winner := -1
	for i := range n {
		must(t, errs[n+i])
		if wins[i] {
			if winner >= 0 {
				t.Fatalf("advances %d and %d both moved the cursor from %d", winner, i, starts[0])
			}
			winner = i
		}
	}
	if winner < 0 {
		t.Fatal("no concurrent advance moved the cursor")
	}
	cur, err := f.s.EventCursor(f.ctx, "race")
	must(t, err)
	equal(t, "the cursor after concurrent advances", cur, starts[0]+int64(winner)+1)
}

func testEventCursorLease(t *testing.T, f *fixture) {
	_, err := f.s.ClaimEventCursor(f.ctx, "never", "a", at(0), at(time.Minute))
	wantErr(t, "ClaimEventCursor of an unknown cursor", err, store.ErrNotFound)
	_, err = f.s.StartEventCursor(f.ctx, "sink", false)
	must(t, err)
	if _, err := f.s.ClaimEventCursor(f.ctx, "sink", "", at(0), at(time.Minute)); err == nil {
		t.Fatal("a claim without a holder succeeded")
	}
	const lease = 30 * time.Second
	for i, c := range []struct {
		holder string
		now    time.Duration
		until  time.Duration
		want   bool
	}{
		{"a", 0, lease, true}, // free: a takes it
		{"b", 10 * time.Second, 10*time.Second + lease, false}, // a's lease runs
		{"a", 20 * time.Second, 20*time.Second + lease, true},  // a renews
		{"b", 49 * time.Second, 49*time.Second + lease, false}, // a's renewed lease runs to 50s
		{"b", 50 * time.Second, 50*time.Second + lease, true},  // expired: b takes it
		{"a", 51 * time.Second, 51*time.Second + lease, false},
		{"b", 52 * time.Second, 52 * time.Second, true}, // b gives it up
		{"a", 52 * time.Second, 52*time.Second + lease, true},
	} {
		held, err := f.s.ClaimEventCursor(f.ctx, "sink", c.holder, at(c.now), at(c.until))
		must(t, err)
		if held != c.want {
			t.Fatalf("claim %d by %s at %v: held %v, want %v", i, c.holder, c.now, held, c.want)
		}
	}
	// A claim leaves the position alone.
	cur, err := f.s.EventCursor(f.ctx, "sink")
	must(t, err)
	equal(t, "the cursor after claims", cur, int64(0))
}

func testEventCursorLeaseConcurrently(t *testing.T, f *fixture) {
	_, err := f.s.StartEventCursor(f.ctx, "sink", false)
	must(t, err)
	const n = 8
	var wg sync.WaitGroup
	held := make([]bool, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			held[i], errs[i] = f.s.ClaimEventCursor(f.ctx, "sink", "relay-"+strconv.Itoa(i), at(0), at(time.Minute))
		})
	}
	wg.Wait()
	holders := 0
	for i := range n {
		must(t, errs[i])
		if held[i] {
			holders++
		}
	}
	equal(t, "relays holding the sink after concurrent claims", holders, 1)
}

// eventsAfter waits until the log shows at least n events after seq and
// returns them. On PostgreSQL an event shows once every transaction older
// than its own has ended, in any database of the server: another test's
// transaction running at the moment delays it a little.
func eventsAfter(t *testing.T, f *fixture, seq int64, n int) []store.DeviceEvent {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		f.settle(t)
		events, err := f.s.ListEvents(f.ctx, store.EventFilter{AfterSeq: seq})
		must(t, err)
		if len(events) >= n || time.Now().After(deadline) {
			return events
		}
	}
}
