package httpapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/manifest"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// maxDuplicatesListed bounds the identities a duplicate-devices problem
// lists; duplicate_count gives the total.
const maxDuplicatesListed = 100

// manifestMediaTypes are the Content-Types a manifest upload may carry.
var manifestMediaTypes = []string{"application/jsonl", "application/x-ndjson"}

func (s *Server) manifestRoutes() []Route {
	return []Route{{
		Method: "POST", Path: "/v1/admin/manifests", Handler: s.admin("manifest.import", ScopeManifestsImport, s.importManifest),
		Doc: RouteDoc{
			OperationID: "importManifest", Summary: "Import a signed batch manifest.", Tag: "manifests",
			Description: "The body is the manifest exactly as the station wrote it (docs/manifest.md). It is verified, streaming, against the key of the registered station its header names: every line canonical, every device proof, the station's signature over the whole. Only then are its devices registered, all or none, in one transaction. Importing the same manifest again changes nothing and answers 200 with already_imported.",
			Auth:        AuthBearer, Scope: ScopeManifestsImport,
			Query:      []Param{{Name: "product", Description: "The product the batch's devices belong to.", Required: true, Pattern: productIDPattern.String()}},
			RawRequest: &RawBody{MediaTypes: manifestMediaTypes, Description: "The manifest (JSON Lines)."},
			Responses: []Response{
				{Status: 201, Description: "Imported.", Body: ImportResult{}},
				{Status: 200, Description: "Imported before; nothing changed.", Body: ImportResult{}},
			},
			Problems: []string{"unknown-product", "unknown-station", "manifest-invalid", "duplicate-devices", "conflict"},
		},
	}}
}

// importManifest verifies the uploaded manifest while it streams in,
// staging its devices, and registers them only once the station's
// signature over the whole has verified.
func (s *Server) importManifest(r *http.Request, c *adminCall) (int, any, error) {
	ctx := r.Context()
	productID := r.URL.Query().Get("product")
	c.subject = "product:" + productID
	if productID == "" {
		return 0, nil, problemf("malformed-request", "query parameter product is required")
	}
	if err := checkContentType(r, manifestMediaTypes...); err != nil {
		return 0, nil, err
	}
	if _, err := s.store.GetProduct(ctx, productID); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return 0, nil, problemf("unknown-product", "no product %q", productID)
		}
		return 0, nil, err
	}
	release, err := s.acquireImport(ctx)
	if err != nil {
		return 0, nil, err
	}
	defer release()

	body := bufio.NewReaderSize(http.MaxBytesReader(nil, r.Body, s.maxManifest), manifest.MaxLineSize)
	station, err := s.manifestStation(ctx, body)
	if err != nil {
		return 0, nil, err
	}
	c.subject = "station:" + station.ID.String()
	sum, devices, err := verifyManifest(ctx, body, station)
	if err != nil {
		return 0, nil, err
	}
	c.subject = "batch:" + sum.Header.Batch
	batch := store.Batch{
		ID: sum.Header.Batch, StationID: station.ID, ProductID: productID,
		ManifestDigest: sum.Digest, DeviceCount: sum.Count, ImportedAt: s.now().UTC(),
	}
	return s.commitBatch(ctx, c, batch, devices)
}

// commitBatch registers a verified batch's devices and answers with what
// happened.
func (s *Server) commitBatch(ctx context.Context, c *adminCall, batch store.Batch, devices []store.Device) (int, any, error) {
	res, err := s.store.ImportBatch(ctx, batch, devices)
	if err != nil {
		return 0, nil, batchProblem(err, batch)
	}
	if len(res.Duplicates) > 0 {
		c.detail = fmt.Sprintf("%d devices registered by other batches", len(res.Duplicates))
		return 0, nil, duplicatesProblem(res.Duplicates)
	}
	out := ImportResult{
		Batch: batch.ID, Station: batch.StationID, Product: batch.ProductID, Devices: batch.DeviceCount,
		Imported: res.Imported, AlreadyImported: res.AlreadyImported, Digest: hex.EncodeToString(batch.ManifestDigest[:]),
	}
	if !res.AlreadyImported {
		c.detail = fmt.Sprintf("%d devices imported", res.Imported)
		return http.StatusCreated, out, nil
	}
	// The same manifest again: the same devices, which must not seem to
	// have joined another product.
	prior, err := s.store.GetBatch(ctx, batch.ID)
	if err != nil {
		return 0, nil, err
	}
	if prior.ProductID != batch.ProductID {
		return 0, nil, problemf("conflict", "batch %q was imported into product %q, not %q", batch.ID, prior.ProductID, batch.ProductID)
	}
	c.detail = "already imported; nothing changed"
	return http.StatusOK, out, nil
}

// verifyManifest reads the whole manifest, checking it against the
// station's key, and returns its devices staged for import.
func verifyManifest(ctx context.Context, body io.Reader, station store.Station) (manifest.Summary, []store.Device, error) {
	pub, err := sigalg.ParsePublicKey(station.PublicKey)
	if errors.Is(err, sigalg.ErrWeakKey) {
		// Registered before the key policy refused such keys: anyone can
		// sign for it, so nothing it signs is imported.
		return manifest.Summary{}, nil, problemf("manifest-invalid", "station %s is registered with a key the key policy refuses (%v); register a new station key", station.ID, err)
	}
	if err != nil {
		return manifest.Summary{}, nil, fmt.Errorf("stored key of station %s: %w", station.ID, err)
	}
	// Devices are gathered in fixed-size chunks and copied once into a
	// slice of the exact size: appending to one slice copied a
	// million-device batch over and over as it grew (12 % of an import's
	// CPU). The few distinct strings are shared, not one copy per device,
	// which the garbage collector would otherwise scan a million times.
	const chunk = 8192
	var chunks [][]store.Device
	strs := map[string]string{}
	intern := func(v string) string {
		if w, ok := strs[v]; ok {
			return w
		}
		strs[v] = v
		return v
	}
	sum, err := manifest.Verify(ctx, body, pub, func(rec manifest.Record) error {
		if len(chunks) == 0 || len(chunks[len(chunks)-1]) == chunk {
			chunks = append(chunks, make([]store.Device, 0, chunk))
		}
		last := &chunks[len(chunks)-1]
		*last = append(*last, store.Device{
			Identity: rec.Identity, Algorithm: sigalg.ID(intern(string(rec.Algorithm))), PublicKey: rec.SPKI,
			RootOfTrust: intern(string(rec.RootOfTrust)), Injection: intern(string(rec.Injection)),
		})
		return nil
	})
	if err != nil {
		return sum, nil, manifestProblem(err)
	}
	n := 0
	for _, c := range chunks {
		n += len(c)
	}
	devices := make([]store.Device, 0, n)
	for i := range chunks {
		devices = append(devices, chunks[i]...)
		chunks[i] = nil
	}
	return sum, devices, nil
}

// acquireImport waits for one of the import slots: each import holds its
// batch in memory until it commits.
func (s *Server) acquireImport(ctx context.Context) (func(), error) {
	select {
	case s.importSlots <- struct{}{}:
		return func() { <-s.importSlots }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// manifestStation peeks at the manifest's header line, without consuming
// it, for the station it names, and returns that station if registered.
// The header is trusted for nothing else: manifest.Verify reads it again
// and checks it against the registered key.
func (s *Server) manifestStation(ctx context.Context, body *bufio.Reader) (store.Station, error) {
	id, err := peekStation(body)
	if err != nil {
		return store.Station{}, err
	}
	st, err := s.store.GetStation(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.Station{}, problemf("unknown-station", "station %s is not registered", id)
	}
	return st, err
}

// peekStation reads the station identity from the first line of body,
// leaving the line unread.
func peekStation(body *bufio.Reader) (identity.ID, error) {
	head, err := body.Peek(manifest.MaxLineSize)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
		return identity.ID{}, manifestReadProblem(err)
	}
	line, _, found := bytes.Cut(head, []byte("\n"))
	if !found {
		return identity.ID{}, problemf("manifest-invalid", "manifest line 1: no complete header line within %d bytes", manifest.MaxLineSize)
	}
	var hdr struct {
		Station string `json:"station"`
	}
	if err := json.Unmarshal(line, &hdr); err != nil {
		return identity.ID{}, problemf("manifest-invalid", "manifest line 1: header is not a JSON object")
	}
	id, err := identity.Parse(hdr.Station)
	if err != nil {
		return identity.ID{}, problemf("manifest-invalid", "manifest line 1: header has no valid station identity")
	}
	return id, nil
}

// manifestProblem maps a verification failure. Verify's messages name
// the line and what is wrong with the uploader's own data: safe to return.
func manifestProblem(err error) error {
	for _, sentinel := range []error{manifest.ErrMalformed, manifest.ErrSignature, manifest.ErrStationMismatch,
		manifest.ErrDuplicate, manifest.ErrProof} {
		if errors.Is(err, sentinel) {
			return problemf("manifest-invalid", "%v", err)
		}
	}
	return manifestReadProblem(err)
}

// manifestReadProblem maps a failure to read the body.
func manifestReadProblem(err error) error {
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return problemf("body-too-large", "the manifest exceeds the limit of %d bytes", tooLarge.Limit)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	case errors.Is(err, io.ErrUnexpectedEOF):
		return problemf("manifest-invalid", "the manifest is truncated")
	}
	var p *Problem
	if errors.As(err, &p) {
		return p
	}
	// The connection failed mid-upload: the client's side, not ours.
	return problemf("malformed-request", "reading the manifest failed")
}

func batchProblem(err error, b store.Batch) error {
	switch {
	case errors.Is(err, store.ErrConflict):
		return problemf("conflict", "batch %q was imported before from a different manifest", b.ID)
	case errors.Is(err, store.ErrNotFound):
		return problemf("unknown-product", "station or product %q was removed during the import", b.ProductID)
	}
	return err
}

func duplicatesProblem(dups []identity.ID) *Problem {
	listed := dups[:min(len(dups), maxDuplicatesListed)]
	ids := make([]string, len(listed))
	for i, id := range listed {
		ids[i] = id.String()
	}
	p := problemf("duplicate-devices", "%d devices of this manifest are registered by other batches; nothing was imported", len(dups))
	p.Extensions = map[string]any{"duplicates": ids, "duplicate_count": len(dups)}
	return p
}
