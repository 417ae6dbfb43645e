package admin

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/hallmark-iot/hallmark/internal/audit"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/manifest"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// ManifestStore is what a manifest import asks of the store.
type ManifestStore interface {
	GetProduct(ctx context.Context, id string) (store.Product, error)
	GetStation(ctx context.Context, id identity.ID) (store.Station, error)
	ImportBatchStream(ctx context.Context, b store.Batch, src store.DeviceSource) (store.ImportResult, error)
	GetBatch(ctx context.Context, id string) (store.Batch, error)
}

// MaxConcurrentImports bounds the manifest imports running at once: each
// verifies on every core and holds a store transaction open.
const MaxConcurrentImports = 2

// Manifests owns importing a station's signed batch manifest.
type Manifests struct {
	base
	store ManifestStore
	slots chan struct{}
}

// NewManifests returns the manifest import on st.
func NewManifests(st ManifestStore, rec *audit.Recorder, now func() time.Time) *Manifests {
	return &Manifests{base: newBase(rec, now), store: st, slots: make(chan struct{}, MaxConcurrentImports)}
}

// ImportResult is what an import did.
type ImportResult struct {
	// Batch is the batch the manifest holds.
	Batch store.Batch
	// Imported is the number of devices registered by this call.
	Imported int
	// AlreadyImported is true when the same manifest was imported before
	// into the same product; nothing changed.
	AlreadyImported bool
}

// Import verifies a manifest while it streams in, against the key of the
// registered station its header names, and registers its devices into the
// product as they are verified, in one store transaction that commits only
// once every record and the station's signature over the whole have
// verified: all or none. The batch is never held in memory whole. The same
// manifest again changes nothing.
//
// A failure to read body that is not the manifest's fault passes through
// when it is an *Error (a front door's own limits: body-too-large), and is
// a malformed request otherwise.
func (m *Manifests) Import(ctx context.Context, caller Caller, productID string, body io.Reader) (_ ImportResult, err error) {
	c := caller.begin(ActionManifestImport)
	defer func() { err = m.finish(ctx, c, err) }()
	c.subject = "product:" + productID
	product, err := m.store.GetProduct(ctx, productID)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return ImportResult{}, Errorf(CodeUnknownProduct, "no product %q", productID)
		}
		return ImportResult{}, err
	}
	release, err := m.acquire(ctx)
	if err != nil {
		return ImportResult{}, err
	}
	defer release()

	r := bufio.NewReaderSize(body, manifest.MaxLineSize)
	hdr, err := peekHeader(r)
	if err != nil {
		return ImportResult{}, err
	}
	station, err := m.station(ctx, hdr.station)
	if err != nil {
		return ImportResult{}, err
	}
	c.subject = "station:" + station.ID.String()
	pub, err := stationKey(station)
	if err != nil {
		return ImportResult{}, err
	}
	batch := store.Batch{ID: hdr.batch, StationID: station.ID, ProductID: productID, ImportedAt: m.now().UTC()}
	prior, err := m.store.GetBatch(ctx, hdr.batch)
	switch {
	case err == nil:
		return m.again(ctx, c, r, pub, batch, prior)
	case !errors.Is(err, store.ErrNotFound):
		return ImportResult{}, err
	}
	src := startManifestSource(ctx, r, pub, hdr.batch, product.RequireLocked)
	res, err := m.store.ImportBatchStream(ctx, batch, src)
	sum, verr := src.stop(ctx)
	if verr != nil {
		// The manifest's own fault comes first, whatever the store made
		// of the source's error.
		var open *NotLockedDevicesError
		if errors.As(verr, &open) {
			return ImportResult{}, notLockedError(c, productID, open)
		}
		return ImportResult{}, manifestError(verr)
	}
	c.subject = "batch:" + batch.ID
	batch.ManifestDigest, batch.DeviceCount = sum.Digest, sum.Count
	return m.result(ctx, c, batch, res, err)
}

// again verifies a manifest whose batch ID is registered already, without
// a store transaction: it is the same manifest (nothing changes) or a
// conflict.
func (m *Manifests) again(ctx context.Context, c *call, r io.Reader, pub crypto.PublicKey, batch, prior store.Batch) (ImportResult, error) {
	sum, err := manifest.Verify(ctx, r, pub, nil)
	if err != nil {
		return ImportResult{}, manifestError(err)
	}
	if sum.Header.Batch != batch.ID {
		return ImportResult{}, Errorf(CodeManifestInvalid, "manifest line 1: header names batch %q, then %q", batch.ID, sum.Header.Batch)
	}
	c.subject = "batch:" + batch.ID
	batch.ManifestDigest, batch.DeviceCount = sum.Digest, sum.Count
	res := store.ImportResult{AlreadyImported: true}
	var storeErr error
	if prior.ManifestDigest != sum.Digest {
		storeErr = store.ErrConflict
	}
	return m.result(ctx, c, batch, res, storeErr)
}

// notLockedError refuses a verified manifest whose records do not all
// say the device was locked, for a product that requires it: nothing is
// imported, and the error names the devices.
func notLockedError(c *call, productID string, open *NotLockedDevicesError) error {
	c.detail = open.Error()
	return &Error{Code: CodeDevicesNotLocked, Err: open,
		Message: fmt.Sprintf("product %q requires locked devices and %d devices of this manifest are recorded open or with unknown locks; nothing was imported", productID, len(open.Identities))}
}

// acquire waits for one of the import slots: each import holds a store
// transaction open while it verifies.
func (m *Manifests) acquire(ctx context.Context) (func(), error) {
	select {
	case m.slots <- struct{}{}:
		return func() { <-m.slots }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// result turns the store's answer to a verified batch into the import's.
func (m *Manifests) result(ctx context.Context, c *call, batch store.Batch, res store.ImportResult, err error) (ImportResult, error) {
	switch {
	case errors.Is(err, store.ErrConflict):
		return ImportResult{}, Errorf(CodeConflict, "batch %q was imported before from a different manifest", batch.ID)
	case errors.Is(err, store.ErrNotFound):
		return ImportResult{}, Errorf(CodeUnknownProduct, "station or product %q was removed during the import", batch.ProductID)
	case err != nil:
		return ImportResult{}, err
	}
	if len(res.Duplicates) > 0 {
		dup := &DuplicateDevicesError{Identities: res.Duplicates}
		c.detail = dup.Error()
		return ImportResult{}, &Error{Code: CodeDuplicateDevices, Err: dup,
			Message: fmt.Sprintf("%d devices of this manifest are registered by other batches; nothing was imported", len(res.Duplicates))}
	}
	out := ImportResult{Batch: batch, Imported: res.Imported, AlreadyImported: res.AlreadyImported}
	if !res.AlreadyImported {
		c.detail = fmt.Sprintf("%d devices imported", res.Imported)
		return out, nil
	}
	// The same manifest again: the same devices, which must not seem to
	// have joined another product.
	prior, err := m.store.GetBatch(ctx, batch.ID)
	if err != nil {
		return ImportResult{}, err
	}
	if prior.ProductID != batch.ProductID {
		return ImportResult{}, Errorf(CodeConflict, "batch %q was imported into product %q, not %q", batch.ID, prior.ProductID, batch.ProductID)
	}
	c.detail = "already imported; nothing changed"
	return out, nil
}

// stationKey parses a registered station's key, refusing one the key
// policy refuses.
func stationKey(station store.Station) (crypto.PublicKey, error) {
	pub, err := sigalg.ParsePublicKey(station.PublicKey)
	if errors.Is(err, sigalg.ErrWeakKey) {
		// Registered before the key policy refused such keys: anyone can
		// sign for it, so nothing it signs is imported.
		return nil, Errorf(CodeManifestInvalid, "station %s is registered with a key the key policy refuses (%v); register a new station key", station.ID, err)
	}
	if err != nil {
		return nil, fmt.Errorf("stored key of station %s: %w", station.ID, err)
	}
	return pub, nil
}

// station returns the registered station a manifest's header names.
func (m *Manifests) station(ctx context.Context, id identity.ID) (store.Station, error) {
	st, err := m.store.GetStation(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.Station{}, Errorf(CodeUnknownStation, "station %s is not registered", id)
	}
	return st, err
}

// PeekStation reads the station identity from the first line of a
// manifest, leaving the line unread.
func PeekStation(body *bufio.Reader) (identity.ID, error) {
	hdr, err := peekHeader(body)
	return hdr.station, err
}

// peekedHeader is what a manifest's header line claims, read before it is
// verified: the station whose key verifies it, and the batch whose
// transaction it goes into. manifest.Verify reads the line again and checks
// it; the import commits nothing unless the batch it verified is the one
// peeked.
type peekedHeader struct {
	station identity.ID
	batch   string
}

func peekHeader(body *bufio.Reader) (peekedHeader, error) {
	head, err := body.Peek(manifest.MaxLineSize)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
		return peekedHeader{}, readError(err)
	}
	line, _, found := bytes.Cut(head, []byte("\n"))
	if !found {
		return peekedHeader{}, Errorf(CodeManifestInvalid, "manifest line 1: no complete header line within %d bytes", manifest.MaxLineSize)
	}
	var hdr struct {
		Station string `json:"station"`
		Batch   string `json:"batch"`
	}
	if err := json.Unmarshal(line, &hdr); err != nil {
		return peekedHeader{}, Errorf(CodeManifestInvalid, "manifest line 1: header is not a JSON object")
	}
	id, err := identity.Parse(hdr.Station)
	if err != nil {
		return peekedHeader{}, Errorf(CodeManifestInvalid, "manifest line 1: header has no valid station identity")
	}
	return peekedHeader{station: id, batch: hdr.Batch}, nil
}

// manifestError classifies a verification failure. Verify's messages
// name the line and what is wrong with the uploader's own data: safe to
// return.
func manifestError(err error) error {
	for _, sentinel := range []error{manifest.ErrMalformed, manifest.ErrSignature, manifest.ErrStationMismatch,
		manifest.ErrDuplicate, manifest.ErrProof} {
		if errors.Is(err, sentinel) {
			return &Error{Code: CodeManifestInvalid, Message: err.Error()}
		}
	}
	return readError(err)
}

// readError classifies a failure to read the body.
func readError(err error) error {
	var e *Error
	switch {
	case errors.As(err, &e):
		return e
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	case errors.Is(err, io.ErrUnexpectedEOF):
		return Errorf(CodeManifestInvalid, "the manifest is truncated")
	}
	// The connection failed mid-upload: the client's side, not ours.
	return &Error{Code: CodeMalformed, Message: "reading the manifest failed", Err: err}
}
