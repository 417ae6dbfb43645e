package fleet

import (
	"context"
	"crypto"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/manifest"
)

// nonceSize is the station nonce of each proof of possession, as a real
// station draws it.
const nonceSize = 32

// ManifestConfig says which devices a manifest lists and who signs it.
type ManifestConfig struct {
	Fleet *Fleet
	// First is the index of the first device; Count devices follow it.
	First, Count uint64
	// Batch is the manifest's batch name.
	Batch string
	// Station signs the manifest (a keys.Manager signer).
	Station crypto.Signer
	// Workers derive keys and sign proofs; GOMAXPROCS if zero.
	Workers int
	// Now is the clock; time.Now if nil.
	Now func() time.Time
	// Done, if not nil, counts the records written, for a progress bar.
	Done *atomic.Int64
}

// ManifestSummary describes a manifest that was written.
type ManifestSummary struct {
	Batch   string
	Station identity.ID
	Devices int
	Elapsed time.Duration
}

// WriteManifest streams the signed manifest of cfg's devices to w, each
// record exactly as a provisioning station writes it: the identity, the
// enrolment public key, root of trust keygen (the key is made for the
// device, not injected by the station), a fresh station nonce and the
// device's proof of possession over it. Keys are derived and proofs signed
// in parallel; the manifest.Writer checks every record as the importer
// will. Memory stays constant apart from the writer's set of identities
// seen. The output is complete only when WriteManifest returns nil.
func WriteManifest(ctx context.Context, w io.Writer, cfg ManifestConfig) (ManifestSummary, error) {
	start := time.Now()
	if cfg.Fleet == nil || cfg.Station == nil {
		return ManifestSummary{}, errors.New("fleet manifest: a fleet and a station signer are required")
	}
	if cfg.Count == 0 || cfg.Count > manifest.MaxRecords {
		return ManifestSummary{}, fmt.Errorf("fleet manifest: %d devices, want 1 to %d", cfg.Count, manifest.MaxRecords)
	}
	if cfg.First > ^uint64(0)-cfg.Count {
		return ManifestSummary{}, errors.New("fleet manifest: device indexes overflow")
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	mw, err := manifest.NewWriter(w, manifest.Header{Batch: cfg.Batch, Created: now()}, cfg.Station)
	if err != nil {
		return ManifestSummary{}, fmt.Errorf("fleet manifest: %w", err)
	}
	build := func(index uint64) (manifest.Record, error) {
		return cfg.Fleet.record(index, now())
	}
	emit := func(rec manifest.Record) error {
		if err := mw.Add(ctx, rec); err != nil {
			return err
		}
		if cfg.Done != nil {
			cfg.Done.Add(1)
		}
		return nil
	}
	if err := Generate(ctx, cfg.First, cfg.Count, cfg.Workers, build, emit); err != nil {
		return ManifestSummary{}, fmt.Errorf("fleet manifest: %w", err)
	}
	if err := mw.Close(); err != nil {
		return ManifestSummary{}, fmt.Errorf("fleet manifest: %w", err)
	}
	hdr := mw.Header()
	return ManifestSummary{Batch: hdr.Batch, Station: hdr.Station, Devices: mw.Count(), Elapsed: time.Since(start)}, nil
}

// record is device index's manifest record: the station's nonce and the
// device's factory proof of possession over it.
func (f *Fleet) record(index uint64, now time.Time) (manifest.Record, error) {
	dev, err := f.Device(index)
	if err != nil {
		return manifest.Record{}, err
	}
	nonce := make([]byte, nonceSize)
	if _, err := rand.Read(nonce); err != nil {
		return manifest.Record{}, err
	}
	_, proof, err := dev.Prove(identity.FactoryProofContext, nonce)
	if err != nil {
		return manifest.Record{}, err
	}
	return manifest.Record{
		Identity: dev.Identity, Algorithm: f.suite.ID(), SPKI: dev.SPKI,
		RootOfTrust: manifest.Keygen, Injection: manifest.NotInjected,
		Time: now, Nonce: nonce, Proof: proof,
	}, nil
}
