package admin

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/manifest"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// sourceChunk is how many verified devices travel together from the
// verifying goroutine to the store's transaction, and sourceQueue how
// many such chunks may wait: the devices held in memory at once are
// bounded by their product, whatever the manifest's size.
const (
	sourceChunk = 256
	sourceQueue = 16
)

// errBatchChanged refuses a manifest whose verified header names another
// batch than the one its transaction was opened for.
var errBatchChanged = errors.New("the verified header names another batch than the one read first")

// manifestSource verifies a manifest in its own goroutine and hands its
// devices to the store as store.DeviceSource, in manifest order. It ends
// with io.EOF only once the whole manifest, signature included, has
// verified (and, for a product that requires it, every device was
// locked); any failure ends it with that failure, which rolls the store's
// transaction back.
type manifestSource struct {
	chunks chan []store.Device
	cur    []store.Device
	cancel context.CancelFunc
	done   chan struct{}

	// Set by the verifying goroutine before it closes chunks.
	sum manifest.Summary
	err error
}

// startManifestSource starts verifying r, a manifest of batch, against
// the station key pub.
func startManifestSource(ctx context.Context, r io.Reader, pub crypto.PublicKey, batch string, requireLocked bool) *manifestSource {
	ctx, cancel := context.WithCancel(ctx)
	s := &manifestSource{
		chunks: make(chan []store.Device, sourceQueue),
		cancel: cancel,
		done:   make(chan struct{}),
	}
	go s.run(ctx, r, pub, batch, requireLocked)
	return s
}

func (s *manifestSource) run(ctx context.Context, r io.Reader, pub crypto.PublicKey, batch string, requireLocked bool) {
	defer close(s.done)
	defer close(s.chunks)
	var chunk []store.Device
	var open []identity.ID
	send := func() error {
		select {
		case s.chunks <- chunk:
			chunk = nil
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	sum, err := manifest.Verify(ctx, r, pub, func(rec manifest.Record) error {
		if requireLocked && !rec.Locks.Closed() {
			open = append(open, rec.Identity)
		}
		if chunk == nil {
			chunk = make([]store.Device, 0, sourceChunk)
		}
		chunk = append(chunk, store.Device{
			Identity: rec.Identity, Algorithm: sigalg.ID(rec.Algorithm), PublicKey: rec.SPKI,
			RootOfTrust: string(rec.RootOfTrust), Injection: string(rec.Injection), Locks: string(rec.Locks),
		})
		if len(chunk) == sourceChunk {
			return send()
		}
		return nil
	})
	switch {
	case err != nil:
	case sum.Header.Batch != batch:
		err = fmt.Errorf("%w: %w: %q, then %q", manifest.ErrMalformed, errBatchChanged, batch, sum.Header.Batch)
	case requireLocked && len(open) > 0:
		err = &NotLockedDevicesError{Identities: open}
	case len(chunk) > 0:
		err = send()
	}
	s.sum, s.err = sum, err
}

// Next returns the next verified device, io.EOF once the whole manifest
// has verified, or why it did not.
func (s *manifestSource) Next() (store.Device, error) {
	for len(s.cur) == 0 {
		chunk, ok := <-s.chunks
		if !ok {
			if s.err != nil {
				return store.Device{}, s.err
			}
			return store.Device{}, io.EOF
		}
		s.cur = chunk
	}
	d := s.cur[0]
	s.cur = s.cur[1:]
	return d, nil
}

// Digest is the verified manifest's digest, once Next returned io.EOF.
func (s *manifestSource) Digest() [32]byte { return s.sum.Digest }

// stop ends the verification, if the store stopped reading before its
// end, and returns its outcome: the summary, and the manifest's error if
// it failed. A verification cut short because the store gave up is no
// error of the manifest: the store's error says why.
func (s *manifestSource) stop(ctx context.Context) (manifest.Summary, error) {
	s.cancel()
	<-s.done
	if errors.Is(s.err, context.Canceled) && ctx.Err() == nil {
		return s.sum, nil
	}
	return s.sum, s.err
}
