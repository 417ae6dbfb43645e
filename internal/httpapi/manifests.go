package httpapi

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/hallmark-iot/hallmark/internal/admin"
	"github.com/hallmark-iot/hallmark/internal/audit"
	"github.com/hallmark-iot/hallmark/internal/identity"
)

// maxDuplicatesListed bounds the identities a duplicate-devices problem
// lists; duplicate_count gives the total.
const maxDuplicatesListed = 100

// manifestMediaTypes are the Content-Types a manifest upload may carry.
var manifestMediaTypes = []string{"application/jsonl", "application/x-ndjson"}

func (s *Server) manifestRoutes() []Route {
	return []Route{{
		Method: "POST", Path: "/v1/admin/manifests", Handler: s.admin(admin.ActionManifestImport, ScopeManifestsImport, s.importManifest),
		Doc: RouteDoc{
			OperationID: "importManifest", Summary: "Import a signed batch manifest.", Tag: "manifests",
			Description: "The body is the manifest exactly as the station wrote it (docs/manifest.md). It is verified, streaming, against the key of the registered station its header names: every line canonical, every device proof, the station's signature over the whole. Only then are its devices registered, all or none, in one transaction. Importing the same manifest again changes nothing and answers 200 with already_imported.",
			Auth:        AuthBearer, Scope: ScopeManifestsImport,
			Query:      []Param{{Name: "product", Description: "The product the batch's devices belong to.", Required: true, Pattern: audit.ProductIDPattern.String()}},
			RawRequest: &RawBody{MediaTypes: manifestMediaTypes, Description: "The manifest (JSON Lines)."},
			Responses: []Response{
				{Status: 201, Description: "Imported.", Body: ImportResult{}},
				{Status: 200, Description: "Imported before; nothing changed.", Body: ImportResult{}},
			},
			Problems: []string{"unknown-product", "unknown-station", "manifest-invalid", "duplicate-devices", "devices-not-locked", "conflict"},
		},
	}}
}

// importManifest checks the upload's query and media type and hands the
// body, bounded, to the import, which verifies it while it streams in.
func (s *Server) importManifest(r *http.Request, c *adminCall) (int, any, error) {
	productID := r.URL.Query().Get("product")
	c.subject = "product:" + productID
	if productID == "" {
		return 0, nil, problemf("malformed-request", "query parameter product is required")
	}
	if err := checkContentType(r, manifestMediaTypes...); err != nil {
		return 0, nil, err
	}
	body := uploadBody{http.MaxBytesReader(nil, r.Body, s.maxManifest), "manifest"}
	res, err := s.svc.Manifests.Import(r.Context(), c.use(), productID, body)
	if err != nil {
		return 0, nil, err
	}
	b := res.Batch
	out := ImportResult{
		Batch: b.ID, Station: b.StationID, Product: b.ProductID, Devices: b.DeviceCount,
		Imported: res.Imported, AlreadyImported: res.AlreadyImported, Digest: hex.EncodeToString(b.ManifestDigest[:]),
	}
	if res.AlreadyImported {
		return http.StatusOK, out, nil
	}
	return http.StatusCreated, out, nil
}

// uploadBody is an upload's body as a service reads it (a manifest, a
// firmware image): the transport's refusals (the size limit,
// body-too-slow) become the *admin.Error the service passes through, so
// that the caller is told which limit it hit. what names the upload.
type uploadBody struct {
	r    io.Reader
	what string
}

func (b uploadBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	var tooLarge *http.MaxBytesError
	var prob *Problem
	switch {
	case errors.As(err, &tooLarge):
		err = &admin.Error{Code: admin.CodeBodyTooLarge, Err: err,
			Message: fmt.Sprintf("the %s exceeds the limit of %d bytes", b.what, tooLarge.Limit)}
	case errors.As(err, &prob):
		err = &admin.Error{Code: prob.Code, Message: prob.Detail, Err: err}
	}
	return n, err
}

// duplicatesExtension lists, for a duplicate-devices problem, up to
// maxDuplicatesListed identities and their total.
func duplicatesExtension(dup *admin.DuplicateDevicesError) map[string]any {
	listed := dup.Identities[:min(len(dup.Identities), maxDuplicatesListed)]
	ids := make([]string, len(listed))
	for i, id := range listed {
		ids[i] = id.String()
	}
	return map[string]any{"duplicates": ids, "duplicate_count": len(dup.Identities)}
}

// identitiesExtension lists, under name, up to maxDuplicatesListed
// identities, and their total under name_count.
func identitiesExtension(name string, all []identity.ID) map[string]any {
	listed := all[:min(len(all), maxDuplicatesListed)]
	ids := make([]string, len(listed))
	for i, id := range listed {
		ids[i] = id.String()
	}
	return map[string]any{name: ids, name + "_count": len(all)}
}
