package manifest

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"runtime"
	"sync"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// Verify reads a manifest from r and checks all of it against the station
// public key the caller trusts: the header names that key, every line is
// canonical, records are numbered 1, 2, 3…, no identity repeats, every
// identity is its key's hash and every proof of possession verifies, and
// the trailer's count, digest and station signature match.
//
// Verify streams: memory stays bounded by the line size and a set of seen
// identities (about 100 MB for a million devices), whatever the file size.
// fn, if not nil, receives each record in order as soon as it is checked,
// before the trailer is. Such records are candidates only: a later line can
// still fail, so stage them and commit nothing until Verify returns nil. An
// error from fn stops the read and is returned, wrapped.
func Verify(ctx context.Context, r io.Reader, stationKey crypto.PublicKey, fn func(Record) error) (Summary, error) {
	if stationKey == nil {
		return Summary{}, errors.New("verify manifest: no station key given (use Inspect to read without one)")
	}
	want, err := sigalg.MarshalPublicKey(stationKey)
	if err != nil {
		return Summary{}, fmt.Errorf("verify manifest: station key: %w", err)
	}
	return read(ctx, r, want, fn)
}

// Inspect reads a manifest for display without a station key. It checks
// the format, canonical form, sequence, duplicates, count and digest, but
// neither the public keys nor the proofs of possession nor the station
// signature, so its Summary has Verified false, its records have SPKI but
// no parsed PublicKey, and nothing it returns may be trusted.
func Inspect(ctx context.Context, r io.Reader, fn func(Record) error) (Summary, error) {
	return read(ctx, r, nil, fn)
}

// reader is the state of one pass over a manifest.
type reader struct {
	in      *bufio.Reader
	digest  hash.Hash
	line    int // number of the line last read, from 1
	station []byte
	seen    map[identity.ID]uint64
	sum     Summary
}

// batchSize is how many records are checked in parallel between calls of
// fn; large enough to keep every core busy, small enough that an error
// stops the read soon.
const batchSize = 256

func read(ctx context.Context, r io.Reader, stationSPKI []byte, fn func(Record) error) (Summary, error) {
	rd := &reader{
		in: bufio.NewReaderSize(r, MaxLineSize), digest: sha256.New(),
		seen: map[identity.ID]uint64{}, sum: newSummary(),
	}
	if err := rd.header(stationSPKI); err != nil {
		return rd.sum, fmt.Errorf("manifest line %d: %w", rd.line, err)
	}
	verify := stationSPKI != nil
	for {
		batch, trailer, readErr := rd.records(ctx)
		good, err := len(batch), error(nil)
		if verify {
			good, err = checkAll(batch)
		}
		for i := range batch[:good] {
			rd.sum.add(&batch[i])
			if fn != nil {
				if ferr := fn(batch[i]); ferr != nil {
					return rd.sum, fmt.Errorf("manifest line %d (record %d): %w", batch[i].Seq+1, batch[i].Seq, ferr)
				}
			}
		}
		if err == nil {
			err = readErr
		}
		if err != nil {
			return rd.sum, err
		}
		if trailer != nil {
			return rd.finish(trailer, verify)
		}
	}
}

func (rd *reader) header(stationSPKI []byte) error {
	line, err := rd.next()
	if err != nil {
		return err
	}
	var w wireHeader
	var hdr Header
	var spki []byte
	err = decodeLine(line, &w, func() ([]byte, error) {
		var err error
		if hdr, spki, err = w.toHeader(); err != nil {
			return nil, err
		}
		return encodeLine(hdr.toWire(spki))
	})
	if err != nil {
		return fmt.Errorf("header: %w", err)
	}
	if stationSPKI != nil && !bytes.Equal(spki, stationSPKI) {
		return fmt.Errorf("%w: manifest names station %s, expected %s", ErrStationMismatch, hdr.Station, identity.FromSPKI(stationSPKI))
	}
	rd.sum.Header, rd.station = hdr, spki
	rd.digest.Write(line)
	return nil
}

// next reads one line, newline included, and refuses lines that are too
// long or unterminated.
func (rd *reader) next() ([]byte, error) {
	rd.line++
	line, err := rd.in.ReadSlice('\n')
	switch {
	case errors.Is(err, bufio.ErrBufferFull):
		return nil, fmt.Errorf("%w: line longer than %d bytes", ErrMalformed, MaxLineSize)
	case errors.Is(err, io.EOF) && len(line) == 0:
		return nil, fmt.Errorf("%w: truncated: the manifest ends before its trailer", ErrMalformed)
	case errors.Is(err, io.EOF):
		return nil, fmt.Errorf("%w: truncated: the last line has no newline", ErrMalformed)
	case err != nil:
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	return line, nil
}

// records reads up to batchSize records and checks their syntax, order and
// uniqueness; it stops early at the trailer, whose line it returns.
func (rd *reader) records(ctx context.Context) ([]Record, []byte, error) {
	batch := make([]Record, 0, batchSize)
	for len(batch) < batchSize {
		if err := ctx.Err(); err != nil {
			return batch, nil, err
		}
		line, err := rd.next()
		if err != nil {
			return batch, nil, fmt.Errorf("manifest line %d: %w", rd.line, err)
		}
		if bytes.HasPrefix(line, trailerPrefix) {
			// The trailer line is not part of the digest; copy it, as
			// ReadSlice's buffer is reused.
			return batch, bytes.Clone(line), nil
		}
		rec, err := rd.record(line)
		if err != nil {
			return batch, nil, fmt.Errorf("manifest line %d: %w", rd.line, err)
		}
		rd.digest.Write(line)
		batch = append(batch, rec)
	}
	return batch, nil, nil
}

// decodeRecord decodes one record line, refusing any but its canonical
// encoding.
func decodeRecord(line []byte) (Record, error) {
	var w wireRecord
	var rec Record
	err := decodeLine(line, &w, func() ([]byte, error) {
		var err error
		if rec, err = w.toRecord(); err != nil {
			return nil, err
		}
		return encodeLine(rec.toWire())
	})
	return rec, err
}

func (rd *reader) record(line []byte) (Record, error) {
	rec, err := decodeRecord(line)
	if err != nil {
		return rec, err
	}
	next := uint64(len(rd.seen)) + 1
	switch {
	case next > MaxRecords:
		return rec, fmt.Errorf("%w: more than %d records", ErrMalformed, MaxRecords)
	case rec.Seq != next:
		return rec, fmt.Errorf("%w: seq %d, want %d (lines reordered, dropped or inserted)", ErrMalformed, rec.Seq, next)
	case rec.Station != rd.sum.Header.Station:
		return rec, fmt.Errorf("%w: record station %s, manifest station %s", ErrStationMismatch, rec.Station, rd.sum.Header.Station)
	}
	if first, dup := rd.seen[rec.Identity]; dup {
		return rec, fmt.Errorf("%w: %s is also record %d", ErrDuplicate, rec.Identity, first)
	}
	rd.seen[rec.Identity] = rec.Seq
	return rec, nil
}

// checkAll runs checkRecord over a batch on every core. It returns how
// many records lead the batch without error and the error of the first
// failing one, so that the outcome does not depend on scheduling.
func checkAll(batch []Record) (int, error) {
	errs := make([]error, len(batch))
	workers := min(runtime.GOMAXPROCS(0), len(batch))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(batch); i += workers {
				errs[i] = checkRecord(&batch[i])
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return i, fmt.Errorf("manifest line %d (record %d): %w", batch[i].Seq+1, batch[i].Seq, err)
		}
	}
	return len(batch), nil
}

// finish checks the trailer: canonical, nothing after it, the count of
// records read, the digest of the bytes before it and, when verifying, the
// station signature over that digest.
func (rd *reader) finish(line []byte, verify bool) (Summary, error) {
	var w wireTrailer
	var count uint64
	var digest [32]byte
	var sig []byte
	err := decodeLine(line, &w, func() ([]byte, error) {
		var err error
		if count, digest, sig, err = w.decode(); err != nil {
			return nil, err
		}
		return encodeLine(wireTrailer{Count: count, Digest: hex.EncodeToString(digest[:]), Signature: encodeBase64(sig)})
	})
	if err != nil {
		return rd.sum, fmt.Errorf("manifest line %d: trailer: %w", rd.line, err)
	}
	if _, err := rd.in.ReadByte(); !errors.Is(err, io.EOF) {
		return rd.sum, fmt.Errorf("manifest line %d: %w: data after the trailer", rd.line+1, ErrMalformed)
	}
	if count != uint64(rd.sum.Count) {
		return rd.sum, fmt.Errorf("manifest trailer: %w: count %d, but %d records were read", ErrSignature, count, rd.sum.Count)
	}
	rd.digest.Sum(rd.sum.Digest[:0])
	if rd.sum.Digest != digest {
		return rd.sum, fmt.Errorf("manifest trailer: %w: digest does not match the manifest's bytes", ErrSignature)
	}
	if !verify {
		return rd.sum, nil
	}
	suite, err := rd.sum.Header.StationAlgorithm.Suite()
	if err != nil {
		return rd.sum, fmt.Errorf("manifest header: %w: %w", ErrMalformed, err)
	}
	if err := suite.Verify(rd.sum.Header.StationPublicKey, signedMessage(digest), sig); err != nil {
		return rd.sum, fmt.Errorf("manifest trailer: %w: %w", ErrSignature, err)
	}
	rd.sum.Verified = true
	return rd.sum, nil
}
