package app

import (
	"context"
	"crypto"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/device"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/onboarding"
	"github.com/hallmark-iot/hallmark/internal/onboarding/onboardpki"
	"github.com/hallmark-iot/hallmark/internal/pki"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/sigalg/sigalgtest"
)

// BenchmarkOnboarding measures complete onboardings over real TLS (client
// and server in one process, keep-alive connections, SQLite on disk): a
// challenge, the device's proof and CSR, the server's checks, the issued
// certificate recorded in one transaction, and the audit entry. The
// "crypto" sub-benchmark does, in the same run, the cryptographic work of
// one onboarding and nothing else: the device signs the transcript with its
// enrolment key and its CSR with its operational key; the server verifies
// both and the CA signs the certificate. Its rate times the number of CPUs
// is the ceiling the onboarding rate is compared with (docs/performance.md).
func BenchmarkOnboarding(b *testing.B) {
	for _, alg := range []sigalg.ID{sigalg.ECDSAP256, sigalg.MLDSA65} {
		b.Run(string(alg)+"/crypto", func(b *testing.B) { benchCrypto(b, alg) })
		b.Run(string(alg)+"/https", func(b *testing.B) { benchHTTPS(b, alg) })
	}
}

func benchHTTPS(b *testing.B, alg sigalg.ID) {
	p := startBench(b)
	const pool = 64
	algs := make([]sigalg.ID, pool)
	for i := range algs {
		algs[i] = alg
	}
	f := newFleet(b, algs...)
	f.register(b, adminClient(b, p))
	ops := make([]crypto.Signer, pool)
	for i, d := range f.devices {
		ops[i], _ = d.OperationalKey(sigalg.ECDSAP256)
	}
	client := deviceClient(p.URL(), tlsClient(p, nil))
	var next atomic.Int64
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			// Each device is driven by one goroutine at a time: a chip
			// answers one challenge at a time.
			i := int(next.Add(1)) % pool
			d := lockedProver{f.devices[i], &f.locks[i]}
			if _, err := client.OnboardWithKey(context.Background(), d, f.ids[i], ops[i]); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "onboardings/s")
}

func benchCrypto(b *testing.B, alg sigalg.ID) {
	p := startBench(b)
	f := newFleet(b, alg)
	d, id := f.devices[0], f.ids[0]
	op, _ := d.OperationalKey(sigalg.ECDSAP256)
	pub := f.pubs[0]
	suite := sigalgtest.Suite(b, alg)
	issuer := onboardpki.NewIssuer(p.CA, nil)
	ctx := context.Background()
	var chID [onboarding.ChallengeIDSize]byte
	nonce := make([]byte, onboarding.NonceSize)
	b.ResetTimer()
	for b.Loop() {
		csr, err := pki.CreateCSR(op, id.String()) // device: operational key signs
		if err != nil {
			b.Fatal(err)
		}
		_, sig, err := d.Prove(onboarding.ProofContext, onboarding.Transcript(chID, nonce, "localhost", csr)) // device: enrolment key signs
		if err != nil {
			b.Fatal(err)
		}
		msg := onboarding.ProofMessage(chID, nonce, "localhost", csr, id)
		if err := suite.Verify(pub, msg, sig); err != nil { // server: proof
			b.Fatal(err)
		}
		req, err := issuer.ParseCSR(csr) // server: CSR self-signature
		if err != nil {
			b.Fatal(err)
		}
		if _, err := issuer.Issue(ctx, id, req.PublicKey, time.Hour); err != nil { // CA signs
			b.Fatal(err)
		}
	}
	perOp := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(float64(runtime.GOMAXPROCS(0))/perOp, "ceiling-onboardings/s")
}

func startBench(b *testing.B) *Platform {
	b.Helper()
	p, err := Start(context.Background(), Config{DataDir: newDataDir(b), Listen: "127.0.0.1:0", ServerName: "localhost", CASuite: sigalg.ECDSAP256,
		RatePerIdentity: -1, RatePerAddress: -1})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Close() })
	return p
}

// lockedProver lets one goroutine at a time use a device.
type lockedProver struct {
	d  *device.Device
	mu *sync.Mutex
}

func (l lockedProver) Prove(context string, nonce []byte) (identity.ID, []byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.d.Prove(context, nonce)
}
