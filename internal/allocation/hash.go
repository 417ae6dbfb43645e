package allocation

import (
	"crypto/sha256"
	"encoding/binary"
	"math"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// Rendezvous picks one of endpoints for id by weighted rendezvous
// (highest random weight) hashing: every endpoint scores the identity,
// -weight/ln(u) with u a uniform hash of the pair, and the highest score
// wins. An endpoint's expected share is its weight over the total, and
// adding or removing one endpoint moves only the devices it wins or won:
// the others' scores do not change. A hash that a plain modulus would
// give moves almost every device when the list changes.
//
// endpoints must not be empty; ties (of probability about 2^-53) go to
// the endpoint listed first.
func Rendezvous(id identity.ID, endpoints []store.WeightedEndpoint) string {
	best, bestScore := "", math.Inf(-1)
	for _, e := range endpoints {
		if s := score(id, e); s > bestScore {
			best, bestScore = e.URL, s
		}
	}
	return best
}

// score is -weight/ln(u), u in (0, 1) from SHA-256 over a domain
// separator, the endpoint's URL and the identity: stable across
// processes, versions and replicas, and independent of the list's order.
func score(id identity.ID, e store.WeightedEndpoint) float64 {
	h := sha256.New()
	h.Write([]byte("hallmark allocation rendezvous v1\x00"))
	h.Write([]byte(e.URL))
	h.Write([]byte{0})
	h.Write(id[:])
	sum := h.Sum(nil)
	// 53 bits, shifted half a step off zero, make u uniform in (0, 1)
	// with neither end reachable: ln(u) is finite and negative.
	u := (float64(binary.BigEndian.Uint64(sum)>>11) + 0.5) / (1 << 53)
	return -float64(e.Weight) / math.Log(u)
}
