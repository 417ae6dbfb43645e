package httpapi

import (
	"bytes"
	"context"
	"crypto"
	"runtime"
	"sync"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/manifest"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

const benchDevices = 100_000

// BenchmarkImportManifest100k imports a manifest of 100,000 Ed25519 devices
// end to end: HTTP upload over loopback, bearer authentication, streaming
// verification of every proof and the station signature, and the one
// SQLite transaction that registers them, into a fresh store each time.
func BenchmarkImportManifest100k(b *testing.B) {
	data := benchManifestOnce(b)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		e := newEnv(b)
		e.registry(b)
		b.StartTimer()
		var res ImportResult
		e.importManifest(b, "sensor", data).decode(b, 201, &res)
		if res.Imported != benchDevices {
			b.Fatalf("imported %d", res.Imported)
		}
		b.StopTimer()
		e.ts.Close()
		e.store.Close()
		b.StartTimer()
	}
	perImport := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(perImport, "s/import")
	b.ReportMetric(benchDevices/perImport, "devices/s")
}

// BenchmarkVerifyManifest100k is the verification alone, on the same
// manifest: the cryptographic floor under the import, to read its figure
// against.
func BenchmarkVerifyManifest100k(b *testing.B) {
	data := benchManifestOnce(b)
	station := deriveKey(b, sigalg.Ed25519, "station", 0)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		sum, err := manifest.Verify(context.Background(), bytes.NewReader(data), station.Public(), nil)
		if err != nil || sum.Count != benchDevices {
			b.Fatal(sum.Count, err)
		}
	}
	perVerify := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(perVerify, "s/verify")
	b.ReportMetric(benchDevices/perVerify, "devices/s")
}

var benchData struct {
	once sync.Once
	data []byte
}

// benchManifestOnce makes the benchmarks' manifest once per process, signed
// by the station env.registry registers.
func benchManifestOnce(b *testing.B) []byte {
	benchData.once.Do(func() {
		benchData.data = benchManifest(b, deriveKey(b, sigalg.Ed25519, "station", 0), benchDevices)
	})
	if benchData.data == nil {
		b.Fatal("no manifest")
	}
	return benchData.data
}

// benchManifest writes a manifest of n devices whose keys are derived from
// seeds; the keys and proofs are made on every core.
func benchManifest(b *testing.B, station crypto.Signer, n int) []byte {
	b.Helper()
	recs := make([]manifest.Record, n)
	var wg sync.WaitGroup
	workers := runtime.GOMAXPROCS(0)
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				recs[i] = deviceRecord(b, deriveKey(b, sigalg.Ed25519, "bench", i))
			}
		})
	}
	wg.Wait()
	var buf bytes.Buffer
	mw, err := manifest.NewWriter(&buf, manifest.Header{Batch: "bench-100k", Created: testStart}, station)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for _, r := range recs {
		if err := mw.Add(ctx, r); err != nil {
			b.Fatal(err)
		}
	}
	if err := mw.Close(); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes()
}
