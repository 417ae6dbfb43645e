package station

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// BenchmarkStation measures station throughput, in devices per second, for
// each class and enrolment algorithm: making the chip, injecting a key
// where needed, booting the IEF (ROM signature check), enrolling, checking
// the proof, saving the state, journalling (one fsync per device) and
// writing the signed manifest.
func BenchmarkStation(b *testing.B) {
	const perBatch = 32
	f := newFactory(b)
	for _, class := range ClassLabels {
		for _, alg := range sigalg.Names() {
			b.Run(class+"/"+alg, func(b *testing.B) {
				plan, err := NewPlan([]string{class}, []string{alg})
				if err != nil {
					b.Fatal(err)
				}
				n := 0
				for b.Loop() {
					cfg := f.config(b, filepath.Join(b.TempDir(), fmt.Sprint(n)), perBatch)
					cfg.Plan = plan
					if _, err := Run(context.Background(), cfg); err != nil {
						b.Fatal(err)
					}
					n++
				}
				b.ReportMetric(float64(n*perBatch)/b.Elapsed().Seconds(), "devices/s")
			})
		}
	}
}
