package fleet

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/keys"
	"github.com/hallmark-iot/hallmark/internal/keys/softkms"
	"github.com/hallmark-iot/hallmark/internal/onboarding"
	"github.com/hallmark-iot/hallmark/internal/onboarding/onboardpki"
	"github.com/hallmark-iot/hallmark/internal/pki"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// CeilingConfig says which onboarding's crypto to measure.
type CeilingConfig struct {
	// Suite is the devices' enrolment key suite, CASuite the platform CA's
	// and OpSuite the operational keys' (ecdsa-p256 if nil).
	Suite, CASuite, OpSuite sigalg.Suite
	// Duration is how long each of the two phases runs (1 s if zero).
	Duration time.Duration
	// Workers run the work in parallel; GOMAXPROCS if zero, so the result
	// is what the whole machine's cores allow.
	Workers int
}

// Ceiling is the onboarding rate cryptography alone allows.
type Ceiling struct {
	Suite, CASuite, OpSuite sigalg.ID
	Workers                 int
	// Server is onboardings per second from the server's crypto alone on
	// every core: parse the registered key, verify the proof, verify the
	// CSR's self-signature, sign the certificate.
	Server float64
	// Client is onboardings per second from the device's crypto alone:
	// the operational key signs the CSR, the enrolment key the transcript.
	Client float64
	// Shared is the ceiling when client and server share the cores, as
	// they do when the load generator runs on the platform's machine (the
	// ceiling docs/performance.md compared with): 1 / (1/Server + 1/Client).
	Shared float64
	// ServerCPU is the CPU time of the server's part of one onboarding
	// (what Server counts), ClientCPU the device's: the threads' own CPU
	// time over the phase divided by the operations, so other work on the
	// machine does not inflate it as it lowers the rates.
	ServerCPU, ClientCPU time.Duration
	// HandshakeCPU is the server's side of one full TLS 1.3 handshake
	// configured as the platform's listener is (Handshake), measured the
	// same way, less HandshakeWaits, the thread's CPU time for exchanging
	// the same flights without TLS (scheduling, not cryptography: see
	// measureHandshakes); Handshakes is how many were measured.
	HandshakeCPU, HandshakeWaits time.Duration
	Handshakes                   int64
	Handshake                    HandshakeParams
}

// HandshakeParams is what the measured handshakes negotiated.
type HandshakeParams struct {
	KeyExchange string // e.g. X25519MLKEM768
	Certificate string // the server key's suite, e.g. ecdsa-p256
	ChainLength int    // certificates the server sends
}

// FloorFresh is the server-side crypto floor of an onboarding over a
// connection of its own: the handshake's server side, then the
// proof's and the CSR's verification and the certificate's signature.
func (c *Ceiling) FloorFresh() time.Duration { return c.HandshakeCPU + c.ServerCPU }

// FloorKeepAlive is the floor of an onboarding over a connection already
// open: a kept-alive connection's handshake is shared by every device it
// serves, and so is left out.
func (c *Ceiling) FloorKeepAlive() time.Duration { return c.ServerCPU }

// Floor is the floor for the connections mode.
func (c *Ceiling) Floor(mode Connections) time.Duration {
	if mode == KeepAlive {
		return c.FloorKeepAlive()
	}
	return c.FloorFresh()
}

// ceilingPool is how many distinct devices the work cycles through, so
// that no cache makes one key cheaper than a fleet's.
const ceilingPool = 64

// MeasureCeiling runs the cryptographic work of one onboarding, and
// nothing else, on all cores for cfg.Duration, first the server's part and
// then the device's, then full TLS 1.3 handshakes (handshake.go). It
// creates a throwaway CA of cfg.CASuite in a temporary directory, removed
// on return.
func MeasureCeiling(ctx context.Context, cfg CeilingConfig) (*Ceiling, error) {
	if cfg.Suite == nil || cfg.CASuite == nil {
		return nil, errors.New("crypto ceiling: device and CA suites are required")
	}
	if cfg.Duration <= 0 {
		cfg.Duration = time.Second
	}
	if cfg.Workers <= 0 {
		cfg.Workers = runtime.GOMAXPROCS(0)
	}
	ca, cleanup, err := throwawayCA(ctx, cfg.CASuite)
	if err != nil {
		return nil, fmt.Errorf("crypto ceiling: %w", err)
	}
	defer cleanup()
	seed := make([]byte, SeedSize)
	rand.Read(seed)
	fl, err := New(seed, cfg.Suite, cfg.OpSuite)
	if err != nil {
		return nil, err
	}
	work, err := newCeilingWork(fl)
	if err != nil {
		return nil, fmt.Errorf("crypto ceiling: %w", err)
	}
	res := &Ceiling{Suite: fl.suite.ID(), CASuite: cfg.CASuite.ID(), OpSuite: fl.op.ID(), Workers: cfg.Workers}
	issuer := onboardpki.NewIssuer(ca.CA, nil)
	server, err := rate(ctx, cfg, func(i int) error { return work.server(ctx, issuer, i) })
	if err != nil {
		return nil, fmt.Errorf("crypto ceiling: server: %w", err)
	}
	client, err := rate(ctx, cfg, work.client)
	if err != nil {
		return nil, fmt.Errorf("crypto ceiling: client: %w", err)
	}
	hs, err := measureHandshakes(ctx, cfg, ca)
	if err != nil {
		return nil, fmt.Errorf("crypto ceiling: TLS handshake: %w", err)
	}
	res.Server, res.ServerCPU = server.perSecond, server.cpuPerOp()
	res.Client, res.ClientCPU = client.perSecond, client.cpuPerOp()
	res.Shared = 1 / (1/res.Server + 1/res.Client)
	res.HandshakeCPU, res.Handshakes, res.Handshake = hs.cpuPerOp(), hs.ops, hs.params
	if hs.ops > 0 {
		res.HandshakeWaits = hs.baseline / time.Duration(hs.ops)
	}
	return res, nil
}

// phase is what a phase of the ceiling measured.
type phase struct {
	ops       int64
	perSecond float64       // operations per second of wall time
	cpu       time.Duration // the workers' threads' CPU time
	baseline  time.Duration // subtracted from cpu (handshakes only)
	params    HandshakeParams
}

func (p phase) cpuPerOp() time.Duration {
	if p.ops == 0 {
		return 0
	}
	return p.cpu / time.Duration(p.ops)
}

// rate runs op on every worker for cfg.Duration and returns operations per
// second of wall time and the workers' CPU time. Each worker keeps its OS
// thread, so that thread's CPU time is the worker's.
func rate(ctx context.Context, cfg CeilingConfig, op func(i int) error) (phase, error) {
	var count atomic.Int64
	var cpu atomic.Int64
	var firstErr error
	var once sync.Once
	fail := func(err error) { once.Do(func() { firstErr = err }) }
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(cfg.Duration)
	for w := range cfg.Workers {
		wg.Go(func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			before, err := threadCPU()
			if err != nil {
				fail(err)
				return
			}
			for i := w; time.Now().Before(deadline) && ctx.Err() == nil; i++ {
				if err := op(i); err != nil {
					fail(err)
					return
				}
				count.Add(1)
			}
			after, err := threadCPU()
			if err != nil {
				fail(err)
				return
			}
			cpu.Add(int64(after - before))
		})
	}
	wg.Wait()
	if firstErr != nil {
		return phase{}, firstErr
	}
	if err := ctx.Err(); err != nil {
		return phase{}, err
	}
	return phase{ops: count.Load(), perSecond: float64(count.Load()) / time.Since(start).Seconds(), cpu: time.Duration(cpu.Load())}, nil
}

// ceilingWork is a pool of devices with what the server receives from each:
// its registered key, a proof over a fixed transcript, and a CSR.
type ceilingWork struct {
	devs  []*Onboardable
	csrs  [][]byte
	sigs  [][]byte
	msgs  [][]byte
	chID  [onboarding.ChallengeIDSize]byte
	nonce []byte
	fl    *Fleet
}

func newCeilingWork(fl *Fleet) (*ceilingWork, error) {
	w := &ceilingWork{fl: fl, nonce: make([]byte, onboarding.NonceSize)}
	rand.Read(w.chID[:])
	rand.Read(w.nonce)
	for i := range uint64(ceilingPool) {
		d, err := fl.Onboardable(i)
		if err != nil {
			return nil, err
		}
		csr, err := pki.CreateCSRWith(d.Operational, pki.CSROptions{CommonName: d.Device.Identity.String(),
			ChallengePassword: onboarding.CSRBinding(w.chID, w.nonce, "localhost")})
		if err != nil {
			return nil, err
		}
		_, sig, err := d.Prove(onboarding.ProofContext, onboarding.Transcript(w.chID, w.nonce, "localhost", csr))
		if err != nil {
			return nil, err
		}
		w.devs = append(w.devs, d)
		w.csrs = append(w.csrs, csr)
		w.sigs = append(w.sigs, sig)
		w.msgs = append(w.msgs, onboarding.ProofMessage(w.chID, w.nonce, "localhost", csr, d.Device.Identity))
	}
	return w, nil
}

// server is what onboarding.Service does per onboarding that costs CPU in
// cryptography: parse the stored key (strict checks included), verify the
// proof, parse and verify the CSR, issue the certificate.
func (w *ceilingWork) server(ctx context.Context, issuer onboarding.Issuer, i int) error {
	d := w.devs[i%len(w.devs)]
	pub, err := sigalg.ParsePublicKey(d.SPKI)
	if err != nil {
		return err
	}
	if identity.FromSPKI(d.SPKI) != d.Device.Identity {
		return errors.New("identity mismatch")
	}
	if err := w.fl.suite.Verify(pub, w.msgs[i%len(w.devs)], w.sigs[i%len(w.devs)]); err != nil {
		return err
	}
	csr, err := issuer.ParseCSR(w.csrs[i%len(w.devs)])
	if err != nil {
		return err
	}
	_, err = issuer.Issue(ctx, d.Device.Identity, csr.PublicKey, time.Hour)
	return err
}

// client is the device's part: a fresh CSR from the operational key and
// the transcript signature from the enrolment key.
func (w *ceilingWork) client(i int) error {
	d := w.devs[i%len(w.devs)]
	op, err := w.fl.OperationalKey(d.Index)
	if err != nil {
		return err
	}
	csr, err := pki.CreateCSRWith(op, pki.CSROptions{CommonName: d.Device.Identity.String(),
		ChallengePassword: onboarding.CSRBinding(w.chID, w.nonce, "localhost")})
	if err != nil {
		return err
	}
	_, _, err = d.Prove(onboarding.ProofContext, onboarding.Transcript(w.chID, w.nonce, "localhost", csr))
	return err
}

// ceilingCA is a throwaway CA and the key manager that holds its keys.
type ceilingCA struct {
	*pki.CA
	keys keys.Manager
}

// throwawayCA makes a CA of suite in a temporary directory, with its keys
// in a software key store under a random passphrase.
func throwawayCA(ctx context.Context, suite sigalg.Suite) (*ceilingCA, func(), error) {
	dir, err := os.MkdirTemp("", "hallmark-ceiling-")
	if err != nil {
		return nil, nil, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	pass := make([]byte, 32)
	rand.Read(pass)
	km, err := softkms.Open(ctx, filepath.Join(dir, "keys"), []byte(fmt.Sprintf("%x", pass)), softkms.InsecureKDFIterations(1000))
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	ca, err := pki.Open(ctx, km, filepath.Join(dir, "ca"), pki.Config{Suite: suite.ID()})
	if err != nil {
		km.Close()
		cleanup()
		return nil, nil, err
	}
	return &ceilingCA{CA: ca, keys: km}, func() { km.Close(); cleanup() }, nil
}
