package manifest

import (
	"bufio"
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// ErrWriterClosed reports use of a Writer after Close or after a write
// to the underlying stream failed.
var ErrWriterClosed = errors.New("manifest writer closed")

// Writer writes one batch manifest. It checks every record as a reader
// will, so a manifest it completes always verifies. It is not safe for
// concurrent use.
//
// The Writer streams: the output is complete and signed only once Close
// returns nil, so write to a temporary file and rename it into place after
// Close, and discard it on any error.
type Writer struct {
	out    *bufio.Writer
	digest hash.Hash
	signer crypto.Signer
	header Header
	suite  sigalg.Suite
	count  uint64
	seen   map[identity.ID]uint64
	err    error // sticky: a failed write or Close ends the manifest
}

// NewWriter starts a manifest for hdr, to be signed by signer (the station
// key; any crypto.Signer from a keys.Manager). It fills the header's
// station fields from the signer and Created with the current time if
// zero, and buffers the header line.
func NewWriter(w io.Writer, hdr Header, signer crypto.Signer) (*Writer, error) {
	if signer == nil {
		return nil, errors.New("new manifest writer: no station signer")
	}
	suite, err := sigalg.SuiteOf(signer)
	if err != nil {
		return nil, fmt.Errorf("new manifest writer: station key: %w", err)
	}
	spki, err := sigalg.MarshalPublicKey(signer.Public())
	if err != nil {
		return nil, fmt.Errorf("new manifest writer: station key: %w", err)
	}
	if err := fillHeader(&hdr, spki, suite.ID()); err != nil {
		return nil, fmt.Errorf("new manifest writer: %w", err)
	}
	line, err := encodeLine(hdr.toWire(spki))
	if err != nil {
		return nil, fmt.Errorf("new manifest writer: %w", err)
	}
	mw := &Writer{
		out: bufio.NewWriterSize(w, 64<<10), digest: sha256.New(), signer: signer,
		header: hdr, suite: suite, seen: map[identity.ID]uint64{},
	}
	mw.writeLine(line)
	return mw, mw.err
}

func fillHeader(hdr *Header, spki []byte, alg sigalg.ID) error {
	if !batchPattern.MatchString(hdr.Batch) {
		return fmt.Errorf("%w: batch %q is not 1-%d characters of A-Z a-z 0-9 . _ -", ErrMalformed, hdr.Batch, MaxBatchLen)
	}
	station := identity.FromSPKI(spki)
	if !hdr.Station.IsZero() && hdr.Station != station {
		return fmt.Errorf("%w: header station %s is not the signer's %s", ErrStationMismatch, hdr.Station, station)
	}
	if hdr.StationAlgorithm != "" && hdr.StationAlgorithm != alg {
		return fmt.Errorf("%w: header station algorithm %s but the signer is %s", ErrStationMismatch, hdr.StationAlgorithm, alg)
	}
	if hdr.StationPublicKey != nil {
		if der, err := sigalg.MarshalPublicKey(hdr.StationPublicKey); err != nil || string(der) != string(spki) {
			return fmt.Errorf("%w: header station public key is not the signer's", ErrStationMismatch)
		}
	}
	pub, err := sigalg.ParsePublicKey(spki)
	if err != nil {
		return fmt.Errorf("station key: %w", err)
	}
	if hdr.Created.IsZero() {
		hdr.Created = time.Now()
	}
	hdr.Created = hdr.Created.UTC().Truncate(time.Second)
	hdr.Station, hdr.StationAlgorithm, hdr.StationPublicKey = station, alg, pub
	return checkTime(hdr.Created, "created")
}

// Header returns the header as written, with the station fields filled.
func (w *Writer) Header() Header { return w.header }

// Count returns the number of records added.
func (w *Writer) Count() int { return int(w.count) }

// Add appends one device record after checking it as Verify will: the
// identity is the SHA-256 of the public key, the algorithm is the key's,
// root of trust and injection are a possible pair, the locks are
// spelled canonically, the station is this
// manifest's, the proof of possession verifies, and the identity is new to
// the batch (ErrDuplicate otherwise). A refused record leaves the manifest
// as it was; the Writer stays usable.
func (w *Writer) Add(ctx context.Context, rec Record) error {
	if w.err != nil {
		return w.err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if w.count >= MaxRecords {
		return fmt.Errorf("add record: %w: a batch holds at most %d records", ErrMalformed, MaxRecords)
	}
	if err := w.prepare(&rec); err != nil {
		return fmt.Errorf("add record %d: %w", w.count+1, err)
	}
	if first, dup := w.seen[rec.Identity]; dup {
		return fmt.Errorf("add record %d: %w: %s is record %d", rec.Seq, ErrDuplicate, rec.Identity, first)
	}
	line, err := encodeLine(rec.toWire())
	if err != nil {
		return fmt.Errorf("add record %d: %w", rec.Seq, err)
	}
	w.writeLine(line)
	if w.err != nil {
		return w.err
	}
	w.count++
	w.seen[rec.Identity] = rec.Seq
	return nil
}

// prepare fills what the writer knows (sequence, station, SPKI) and checks
// the rest.
func (w *Writer) prepare(rec *Record) error {
	next := w.count + 1
	if rec.Seq != 0 && rec.Seq != next {
		return fmt.Errorf("%w: seq %d, want %d", ErrMalformed, rec.Seq, next)
	}
	rec.Seq = next
	if rec.Station.IsZero() {
		rec.Station = w.header.Station
	}
	if rec.Station != w.header.Station {
		return fmt.Errorf("%w: record station %s, manifest station %s", ErrStationMismatch, rec.Station, w.header.Station)
	}
	if err := fillSPKI(rec); err != nil {
		return err
	}
	if rec.Identity.IsZero() {
		return fmt.Errorf("%w: no identity", ErrMalformed)
	}
	suite, err := rec.Algorithm.Suite()
	if err != nil || suite.ID() != rec.Algorithm {
		return fmt.Errorf("%w: algorithm %q (known: %v)", ErrMalformed, rec.Algorithm, sigalg.Names())
	}
	if err := checkProvenance(rec.RootOfTrust, rec.Injection); err != nil {
		return err
	}
	if _, err := parseLocks(string(rec.Locks)); err != nil {
		return err
	}
	if rec.Time.IsZero() {
		return fmt.Errorf("%w: no time", ErrMalformed)
	}
	rec.Time = rec.Time.UTC().Truncate(time.Second)
	if err := checkTime(rec.Time, "time"); err != nil {
		return err
	}
	if err := checkSizes(rec, suite); err != nil {
		return err
	}
	return checkRecord(rec)
}

func fillSPKI(rec *Record) error {
	switch {
	case rec.PublicKey == nil && rec.SPKI == nil:
		return fmt.Errorf("%w: no public key", ErrMalformed)
	case rec.PublicKey == nil:
		return nil // checkRecord parses it
	}
	der, err := sigalg.MarshalPublicKey(rec.PublicKey)
	if err != nil {
		return fmt.Errorf("%w: public key: %w", ErrMalformed, err)
	}
	if rec.SPKI != nil && string(rec.SPKI) != string(der) {
		return fmt.Errorf("%w: SPKI and PublicKey are different keys", ErrMalformed)
	}
	rec.SPKI = der
	return nil
}

func (w *Writer) writeLine(line []byte) {
	w.digest.Write(line)
	if _, err := w.out.Write(line); err != nil {
		w.err = fmt.Errorf("write manifest: %w", err)
	}
}

// Close signs the digest of everything written, checks the signature with
// the station public key (a misconfigured HSM must not produce an
// unverifiable manifest), writes the trailer and flushes. Signing takes no
// context because crypto.Signer takes none.
func (w *Writer) Close() error {
	if w.err != nil {
		return w.err
	}
	w.err = ErrWriterClosed
	var digest [32]byte
	w.digest.Sum(digest[:0])
	msg := signedMessage(digest)
	sig, err := sigalg.Sign(w.signer, msg)
	if err != nil {
		return fmt.Errorf("sign manifest: %w", err)
	}
	if err := w.suite.Verify(w.header.StationPublicKey, msg, sig); err != nil {
		return fmt.Errorf("sign manifest: the station signer's signature does not verify: %w", err)
	}
	line, err := encodeLine(wireTrailer{Count: w.count, Digest: hex.EncodeToString(digest[:]), Signature: encodeBase64(sig)})
	if err != nil {
		return fmt.Errorf("sign manifest: %w", err)
	}
	if _, err := w.out.Write(line); err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	if err := w.out.Flush(); err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	return nil
}
