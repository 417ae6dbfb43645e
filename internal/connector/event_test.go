package connector

import "testing"

func TestEventIDStable(t *testing.T) {
	a := EventID("webhook", 5)
	for _, other := range []string{EventID("webhook", 6), EventID("webhook-2", 5), EventID("webhoo", 5)} {
		if other == a {
			t.Fatalf("two events share the ID %s", a)
		}
	}
	if EventID("webhook", 5) != a || len(a) != len("evt_")+32 {
		t.Fatalf("EventID = %q: want stable evt_ and 32 hex digits", a)
	}
}
