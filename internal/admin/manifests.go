package admin

import (
	"bufio"
	"bytes"
	"context"
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
	ImportBatch(ctx context.Context, b store.Batch, devices []store.Device) (store.ImportResult, error)
	GetBatch(ctx context.Context, id string) (store.Batch, error)
}

// MaxConcurrentImports bounds the manifest imports held in memory at once.
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
// registered station its header names, staging its devices, and registers
// them into the product only once the station's signature over the whole
// has verified: all or none. The same manifest again changes nothing.
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
	station, err := m.manifestStation(ctx, r)
	if err != nil {
		return ImportResult{}, err
	}
	c.subject = "station:" + station.ID.String()
	sum, devices, err := verifyManifest(ctx, r, station)
	if err != nil {
		return ImportResult{}, err
	}
	c.subject = "batch:" + sum.Header.Batch
	if product.RequireLocked && sum.NotClosed > 0 {
		return ImportResult{}, notLockedError(c, product.ID, devices)
	}
	batch := store.Batch{
		ID: sum.Header.Batch, StationID: station.ID, ProductID: productID,
		ManifestDigest: sum.Digest, DeviceCount: sum.Count, ImportedAt: m.now().UTC(),
	}
	return m.commit(ctx, c, batch, devices)
}

// notLockedError refuses a verified manifest whose records do not all
// say the device was locked, for a product that requires it: nothing is
// imported, and the error names the devices.
func notLockedError(c *call, productID string, devices []store.Device) error {
	open := &NotLockedDevicesError{}
	for _, d := range devices {
		if !manifest.Locks(d.Locks).Closed() {
			open.Identities = append(open.Identities, d.Identity)
		}
	}
	c.detail = open.Error()
	return &Error{Code: CodeDevicesNotLocked, Err: open,
		Message: fmt.Sprintf("product %q requires locked devices and %d devices of this manifest are recorded open or with unknown locks; nothing was imported", productID, len(open.Identities))}
}

// acquire waits for one of the import slots: each import holds its batch
// in memory until it commits.
func (m *Manifests) acquire(ctx context.Context) (func(), error) {
	select {
	case m.slots <- struct{}{}:
		return func() { <-m.slots }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// commit registers a verified batch's devices.
func (m *Manifests) commit(ctx context.Context, c *call, batch store.Batch, devices []store.Device) (ImportResult, error) {
	res, err := m.store.ImportBatch(ctx, batch, devices)
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

// verifyManifest reads the whole manifest, checking it against the
// station's key, and returns its devices staged for import.
func verifyManifest(ctx context.Context, body io.Reader, station store.Station) (manifest.Summary, []store.Device, error) {
	pub, err := sigalg.ParsePublicKey(station.PublicKey)
	if errors.Is(err, sigalg.ErrWeakKey) {
		// Registered before the key policy refused such keys: anyone can
		// sign for it, so nothing it signs is imported.
		return manifest.Summary{}, nil, Errorf(CodeManifestInvalid, "station %s is registered with a key the key policy refuses (%v); register a new station key", station.ID, err)
	}
	if err != nil {
		return manifest.Summary{}, nil, fmt.Errorf("stored key of station %s: %w", station.ID, err)
	}
	var staged stage
	sum, err := manifest.Verify(ctx, body, pub, func(rec manifest.Record) error {
		staged.add(rec)
		return nil
	})
	if err != nil {
		return sum, nil, manifestError(err)
	}
	return sum, staged.devices(), nil
}

// stage gathers devices in fixed-size chunks, to be copied once into a
// slice of the exact size: appending to one slice copied a
// million-device batch over and over as it grew (12 % of an import's
// CPU). The few distinct strings are shared, not one copy per device,
// which the garbage collector would otherwise scan a million times.
type stage struct {
	chunks [][]store.Device
	strs   map[string]string
}

const stageChunk = 8192

func (s *stage) intern(v string) string {
	if w, ok := s.strs[v]; ok {
		return w
	}
	if s.strs == nil {
		s.strs = map[string]string{}
	}
	s.strs[v] = v
	return v
}

func (s *stage) add(rec manifest.Record) {
	if len(s.chunks) == 0 || len(s.chunks[len(s.chunks)-1]) == stageChunk {
		s.chunks = append(s.chunks, make([]store.Device, 0, stageChunk))
	}
	last := &s.chunks[len(s.chunks)-1]
	*last = append(*last, store.Device{
		Identity: rec.Identity, Algorithm: sigalg.ID(s.intern(string(rec.Algorithm))), PublicKey: rec.SPKI,
		RootOfTrust: s.intern(string(rec.RootOfTrust)), Injection: s.intern(string(rec.Injection)),
		Locks: s.intern(string(rec.Locks)),
	})
}

func (s *stage) devices() []store.Device {
	n := 0
	for _, c := range s.chunks {
		n += len(c)
	}
	devices := make([]store.Device, 0, n)
	for i := range s.chunks {
		devices = append(devices, s.chunks[i]...)
		s.chunks[i] = nil
	}
	return devices
}

// manifestStation peeks at the manifest's header line, without consuming
// it, for the station it names, and returns that station if registered.
// The header is trusted for nothing else: manifest.Verify reads it again
// and checks it against the registered key.
func (m *Manifests) manifestStation(ctx context.Context, body *bufio.Reader) (store.Station, error) {
	id, err := PeekStation(body)
	if err != nil {
		return store.Station{}, err
	}
	st, err := m.store.GetStation(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.Station{}, Errorf(CodeUnknownStation, "station %s is not registered", id)
	}
	return st, err
}

// PeekStation reads the station identity from the first line of a
// manifest, leaving the line unread.
func PeekStation(body *bufio.Reader) (identity.ID, error) {
	head, err := body.Peek(manifest.MaxLineSize)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
		return identity.ID{}, readError(err)
	}
	line, _, found := bytes.Cut(head, []byte("\n"))
	if !found {
		return identity.ID{}, Errorf(CodeManifestInvalid, "manifest line 1: no complete header line within %d bytes", manifest.MaxLineSize)
	}
	var hdr struct {
		Station string `json:"station"`
	}
	if err := json.Unmarshal(line, &hdr); err != nil {
		return identity.ID{}, Errorf(CodeManifestInvalid, "manifest line 1: header is not a JSON object")
	}
	id, err := identity.Parse(hdr.Station)
	if err != nil {
		return identity.ID{}, Errorf(CodeManifestInvalid, "manifest line 1: header has no valid station identity")
	}
	return id, nil
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
