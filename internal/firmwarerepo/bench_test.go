package firmwarerepo

import (
	"testing"

	"github.com/hallmark-iot/hallmark/internal/firmware"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// BenchmarkCheck is the platform's cost of checking one upload: a 1 MiB
// application image signed by an ECDSA P-256 and an ML-DSA-65 root
// (docs/ota.md, "Firmware repository").
func BenchmarkCheck(b *testing.B) {
	ec, pq := testKey(b, sigalg.ECDSAP256, 1), testKey(b, sigalg.MLDSA65, 2)
	img, err := firmware.New(app, make([]byte, 1<<20))
	if err != nil {
		b.Fatal(err)
	}
	if err := img.Sign(ec); err != nil {
		b.Fatal(err)
	}
	if err := img.Sign(pq); err != nil {
		b.Fatal(err)
	}
	data, _ := img.MarshalBinary()
	policy := store.FirmwarePolicy{Roots: [][32]byte{rootOf(b, ec), rootOf(b, pq)}}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Check(data, policy); err != nil {
			b.Fatal(err)
		}
	}
}
