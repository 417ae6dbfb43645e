package allocation

import (
	"crypto/sha256"
	"math"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/store"
)

func ids(n int) []identity.ID {
	out := make([]identity.ID, n)
	for i := range out {
		out[i] = identity.ID(sha256.Sum256([]byte{byte(i), byte(i >> 8), byte(i >> 16), 'd'}))
	}
	return out
}

var weighted = []store.WeightedEndpoint{
	{URL: "mqtts://a.example.com:8883", Weight: 1},
	{URL: "mqtts://b.example.com:8883", Weight: 2},
	{URL: "mqtts://c.example.com:8883", Weight: 3},
}

// Each endpoint gets its weight's share of 10,000 identities, within
// five standard deviations of the binomial count (a false failure is
// about one in 3.5 million, and the identities are fixed anyway).
func TestRendezvousSpread(t *testing.T) {
	const n = 10_000
	count := map[string]int{}
	for _, id := range ids(n) {
		count[Rendezvous(id, weighted)]++
	}
	for _, e := range weighted {
		p := float64(e.Weight) / 6
		want, sd := n*p, math.Sqrt(n*p*(1-p))
		if got := float64(count[e.URL]); math.Abs(got-want) > 5*sd {
			t.Errorf("%s (weight %d): %v of %d identities, want %.0f ± %.0f", e.URL, e.Weight, got, n, want, 5*sd)
		}
	}
}

// Adding an endpoint moves only the identities it wins, about its share;
// removing it brings exactly those back. The list's order does not matter.
func TestRendezvousStability(t *testing.T) {
	const n = 10_000
	added := append(append([]store.WeightedEndpoint{}, weighted...), store.WeightedEndpoint{URL: "mqtts://d.example.com:8883", Weight: 4})
	reversed := []store.WeightedEndpoint{added[3], added[2], added[1], added[0]}
	moved := 0
	for _, id := range ids(n) {
		before, after := Rendezvous(id, weighted), Rendezvous(id, added)
		if after != before {
			moved++
			if after != added[3].URL {
				t.Fatalf("%s moved from %s to %s, not to the added endpoint", id, before, after)
			}
		}
		if got := Rendezvous(id, reversed); got != after {
			t.Fatalf("%s: %s in one order, %s in another", id, after, got)
		}
	}
	p := 0.4 // 4 of 10
	if want, sd := n*p, math.Sqrt(n*p*(1-p)); math.Abs(float64(moved)-want) > 5*sd {
		t.Fatalf("adding an endpoint of weight 4 to 6 moved %d of %d identities, want %.0f ± %.0f", moved, n, want, 5*sd)
	}
}

// One endpoint takes everything; the choice is a pure function.
func TestRendezvousSingle(t *testing.T) {
	for _, id := range ids(100) {
		if got := Rendezvous(id, weighted[:1]); got != weighted[0].URL {
			t.Fatalf("one endpoint: got %q", got)
		}
		again := append([]store.WeightedEndpoint(nil), weighted...)
		if got, want := Rendezvous(id, again), Rendezvous(id, weighted); got != want {
			t.Fatalf("not deterministic: %q and %q", got, want)
		}
	}
}
