package continuity_test

import (
	"testing"

	"github.com/hallmark-iot/hallmark/internal/continuity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// BenchmarkVerify is the platform's crypto per migration for each pair the
// default policy accepts: two key parses, two signature verifications
// (docs/migration.md, "Cost on the platform").
func BenchmarkVerify(b *testing.B) {
	pairs := [][2]sigalg.ID{
		{sigalg.ECDSAP256, sigalg.MLDSA65}, {sigalg.ECDSAP256, sigalg.MLDSA87},
		{sigalg.Ed25519, sigalg.MLDSA65}, {sigalg.Ed25519, sigalg.MLDSA87},
		{sigalg.MLDSA44, sigalg.MLDSA65}, {sigalg.MLDSA44, sigalg.MLDSA87},
		{sigalg.MLDSA65, sigalg.MLDSA87},
	}
	ch := challenge(30)
	for _, pair := range pairs {
		b.Run(string(pair[0])+"→"+string(pair[1]), func(b *testing.B) {
			d := newDevice(b, "bench", pair[0], pair[1])
			p, pred := d.sign(b, ch), d.predecessor(b)
			for b.Loop() {
				if _, err := continuity.Verify(p, ch, pred, continuity.Policy{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkParseProof is the cost of decoding the largest default proof.
func BenchmarkParseProof(b *testing.B) {
	d := newDevice(b, "bench", sigalg.ECDSAP256, sigalg.MLDSA87)
	data, err := d.sign(b, challenge(31)).MarshalJSON()
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := continuity.ParseProof(data); err != nil {
			b.Fatal(err)
		}
	}
}
