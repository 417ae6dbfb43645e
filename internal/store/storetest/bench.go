package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/store"
)

// Benchmark measures the operations whose speed the platform's figures
// rest on. open must return a new, empty, migrated store for each call.
func Benchmark(b *testing.B, open func(b *testing.B) store.Store) {
	b.Run("ImportBatch100k/ecdsa-p256", func(b *testing.B) { benchImport(b, open, false) })
	b.Run("ImportBatch100k/mixed", func(b *testing.B) { benchImport(b, open, true) })
	b.Run("ConsumeChallenge", func(b *testing.B) { benchConsume(b, newFixture(b, open)) })
	b.Run("RecordOnboarding", func(b *testing.B) { benchOnboard(b, newFixture(b, open)) })
	b.Run("RecordOnboardingWith2Jobs", func(b *testing.B) { benchOnboardJobs(b, newFixture(b, open)) })
	b.Run("ClaimAndCompleteJob", func(b *testing.B) { benchClaimComplete(b, newFixture(b, open)) })
	b.Run("GetDevice", func(b *testing.B) { benchGetDevice(b, newFixture(b, open), false) })
	b.Run("GetDeviceParallel", func(b *testing.B) { benchGetDevice(b, newFixture(b, open), true) })
	b.Run("ListDevicesPage100", func(b *testing.B) { benchListDevices(b, newFixture(b, open)) })
	b.Run("RecordStatusParallel", func(b *testing.B) { benchRecordStatus(b, newFixture(b, open)) })
}

// benchImport imports 100,000 devices in one call into a fresh store per
// iteration: all ECDSA P-256 (91-byte keys, the common factory case), or
// the suite's mix, a third of them ML-DSA-65 with 1,974-byte keys.
func benchImport(b *testing.B, open func(b *testing.B) store.Store, mixed bool) {
	const n = 100_000
	devices := makeDevicesOf("bench", n, classes[:1])
	if mixed {
		devices = makeDevices("bench", n)
	}
	for b.Loop() {
		b.StopTimer()
		f := newFixture(b, open)
		batch := f.batch("bench", "m-bench")
		b.StartTimer()
		f.mustImport(b, batch, devices)
		b.StopTimer()
		f.s.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "devices/s")
}

// pool hands out devices registered in batches of poolSize, registering
// the next batch (untimed) when one runs out.
type pool struct {
	f       *fixture
	devices []store.Device
	batches int
}

const poolSize = 5000

func (p *pool) next(b *testing.B) store.Device {
	if len(p.devices) == 0 {
		b.StopTimer()
		p.batches++
		id := fmt.Sprint("pool-", p.batches)
		p.devices = makeDevices(id, poolSize)
		p.f.mustImport(b, p.f.batch(id, id), p.devices)
		b.StartTimer()
	}
	d := p.devices[0]
	p.devices = p.devices[1:]
	return d
}

func benchConsume(b *testing.B, f *fixture) {
	var ids [][16]byte
	n := 0
	for b.Loop() {
		if len(ids) == 0 {
			b.StopTimer()
			for range poolSize {
				c := newChallenge(n, [32]byte{1}, at(0), at(time.Hour))
				must(b, f.s.CreateChallenge(f.ctx, c))
				ids = append(ids, c.ID)
				n++
			}
			b.StartTimer()
		}
		if _, err := f.s.ConsumeChallenge(f.ctx, ids[0], at(time.Minute)); err != nil {
			b.Fatal(err)
		}
		ids = ids[1:]
	}
}

func benchOnboard(b *testing.B, f *fixture) {
	p := &pool{f: f}
	i := 0
	for b.Loop() {
		d := p.next(b)
		if err := f.s.RecordOnboarding(f.ctx, newCert(d.Identity, i, at(time.Minute)), at(time.Minute)); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// benchOnboardJobs is RecordOnboarding with the outbox: two register jobs.
func benchOnboardJobs(b *testing.B, f *fixture) {
	p := &pool{f: f}
	jobs := registerJobs("mosquitto", "webhook")
	i := 0
	for b.Loop() {
		d := p.next(b)
		if err := f.s.RecordOnboarding(f.ctx, newCert(d.Identity, i, at(time.Minute)), at(time.Minute), jobs...); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// benchClaimComplete is one job's bookkeeping: claim it alone, complete
// it. Finished jobs pile up, as they would in a server.
func benchClaimComplete(b *testing.B, f *fixture) {
	pending, i, batches := 0, 0, 0
	for b.Loop() {
		if pending == 0 {
			b.StopTimer()
			batches++
			id := fmt.Sprint("jobs-", batches)
			devices := makeDevices(id, poolSize)
			f.mustImport(b, f.batch(id, id), devices)
			for _, d := range devices {
				must(b, f.s.RecordOnboarding(f.ctx, newCert(d.Identity, i, at(time.Minute)), at(time.Minute), registerJobs("c")...))
				i++
			}
			pending = poolSize
			b.StartTimer()
		}
		jobs, err := f.s.ClaimJobs(f.ctx, "bench", at(time.Hour), time.Minute, 1)
		if err != nil || len(jobs) != 1 {
			b.Fatalf("ClaimJobs = %d jobs, %v", len(jobs), err)
		}
		if err := f.s.CompleteJob(f.ctx, jobs[0].ID, at(time.Hour)); err != nil {
			b.Fatal(err)
		}
		pending--
	}
}

func benchGetDevice(b *testing.B, f *fixture, parallel bool) {
	devices := makeDevices("get", 10_000)
	f.mustImport(b, f.batch("get", "m-get"), devices)
	if parallel {
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				if _, err := f.s.GetDevice(f.ctx, devices[i%len(devices)].Identity); err != nil {
					b.Error(err)
					return
				}
				i += 7
			}
		})
		return
	}
	i := 0
	for b.Loop() {
		if _, err := f.s.GetDevice(f.ctx, devices[i%len(devices)].Identity); err != nil {
			b.Fatal(err)
		}
		i += 7
	}
}

// benchListDevices pages through 10,000 registered devices 100 at a time,
// starting over at the end.
func benchListDevices(b *testing.B, f *fixture) {
	f.mustImport(b, f.batch("list", "m-list"), makeDevices("list", 10_000))
	filter := store.DeviceFilter{State: store.StateRegistered, Limit: 100}
	for b.Loop() {
		page, err := f.s.ListDevices(f.ctx, filter)
		if err != nil {
			b.Fatal(err)
		}
		filter.After = [32]byte{}
		if len(page) == 100 {
			filter.After = page[99].Identity
		}
	}
}
