package admincmd

import (
	"context"
	"errors"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/httpapi"
)

// TestFollowEvents: --follow prints every event once, in order, asks for
// the next page at once when one was full, polls after the last seq it
// printed, and ends when its wait ends (Ctrl-C).
func TestFollowEvents(t *testing.T) {
	pages := []httpapi.EventList{
		{Events: []httpapi.Event{{Seq: 1}, {Seq: 2}}, Next: 2}, // a full page
		{Events: []httpapi.Event{{Seq: 5}}},
		{}, // nothing new
		{Events: []httpapi.Event{{Seq: 9}}},
	}
	var asked []int64
	list := func(after int64) (httpapi.EventList, error) {
		asked = append(asked, after)
		if len(asked) > len(pages) {
			return httpapi.EventList{}, nil
		}
		return pages[len(asked)-1], nil
	}
	var printed []int64
	emit := func(e httpapi.Event) error { printed = append(printed, e.Seq); return nil }
	waits := 0
	wait := func(context.Context) error {
		if waits++; waits == 3 {
			return context.Canceled
		}
		return nil
	}
	err := followEvents(context.Background(), 0, list, emit, wait)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("followEvents ended with %v, want context.Canceled", err)
	}
	if want := []int64{1, 2, 5, 9}; !equalInts(printed, want) {
		t.Errorf("printed %v, want %v", printed, want)
	}
	// A full page: the next at once; then a wait before each poll after
	// 5 (nothing new, then 9); the third wait ends it.
	if want := []int64{0, 2, 5, 5}; !equalInts(asked, want) {
		t.Errorf("asked after %v, want %v", asked, want)
	}
}

func equalInts(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
