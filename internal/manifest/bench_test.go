package manifest

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

const benchRecords = 512

func benchDevices(b *testing.B, id sigalg.ID) []Record {
	b.Helper()
	recs := make([]Record, benchRecords)
	for i := range recs {
		recs[i] = newDevice(b, newKey(b, id), PUF, NotInjected, nil).rec
	}
	return recs
}

// BenchmarkWrite measures Writer throughput: each Add checks the device
// key, identity and proof, so this is bounded by one signature
// verification per record, on one core.
func BenchmarkWrite(b *testing.B) {
	station := newKey(b, sigalg.MLDSA65)
	for _, id := range []sigalg.ID{sigalg.ECDSAP256, sigalg.MLDSA65} {
		b.Run(string(id), func(b *testing.B) {
			recs := benchDevices(b, id)
			ctx := context.Background()
			for b.Loop() {
				w, err := NewWriter(io.Discard, Header{Batch: "bench"}, station)
				if err != nil {
					b.Fatal(err)
				}
				for _, r := range recs {
					if err := w.Add(ctx, r); err != nil {
						b.Fatal(err)
					}
				}
				if err := w.Close(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*benchRecords)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// BenchmarkVerify measures Verify throughput, which spreads the key and
// proof checks over every core.
func BenchmarkVerify(b *testing.B) {
	station := newKey(b, sigalg.MLDSA65)
	for _, id := range []sigalg.ID{sigalg.ECDSAP256, sigalg.MLDSA65} {
		b.Run(string(id), func(b *testing.B) {
			data := writeManifest(b, station, "bench", benchDevices(b, id)...)
			b.SetBytes(int64(len(data)))
			ctx := context.Background()
			for b.Loop() {
				sum, err := Verify(ctx, bytes.NewReader(data), station.Public(), nil)
				if err != nil || sum.Count != benchRecords {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*benchRecords)/b.Elapsed().Seconds(), "records/s")
		})
	}
}
