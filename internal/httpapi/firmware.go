package httpapi

import (
	"context"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hallmark-iot/hallmark/internal/admin"
	"github.com/hallmark-iot/hallmark/internal/audit"
	"github.com/hallmark-iot/hallmark/internal/firmware"
	"github.com/hallmark-iot/hallmark/internal/firmwarerepo"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/ota"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// The firmware repository's routes (docs/ota.md, "Firmware repository"):
// uploads and listings for administrators, downloads for devices.

// PathAdminFirmware lists images; + "/{digest}" describes one.
const PathAdminFirmware = "/v1/admin/firmware"

// FirmwareRepo is the firmware repository (firmwarerepo.Service).
type FirmwareRepo interface {
	Upload(ctx context.Context, caller admin.Caller, productID string, body io.Reader) (store.FirmwareImage, bool, error)
	List(ctx context.Context, caller admin.Caller, f store.FirmwareFilter) ([]store.FirmwareImage, error)
	Get(ctx context.Context, caller admin.Caller, digest [32]byte) (store.FirmwareImage, error)
	Download(ctx context.Context, leaf *x509.Certificate, digest [32]byte, addr string) (store.FirmwareImage, *os.File, error)
}

// FirmwareImage describes one image of the repository.
type FirmwareImage struct {
	Digest          string    `json:"digest" doc:"SHA-256 of the whole image file, hex: its name, and the ETag of its download."`
	Product         string    `json:"product"`
	Type            string    `json:"type" enum:"app"`
	Version         string    `json:"version" doc:"MAJOR.MINOR.PATCH from the header."`
	SecurityCounter uint32    `json:"security_counter" doc:"The anti-rollback counter from the header."`
	Size            int64     `json:"size" doc:"Bytes of the image file."`
	Encrypted       bool      `json:"encrypted" doc:"The payload is sealed to the product's device-class key."`
	Signers         []string  `json:"signers" doc:"SHA-256 of each signing key's SubjectPublicKeyInfo, in the image's order."`
	UploadedAt      time.Time `json:"uploaded_at"`
	UploadedBy      string    `json:"uploaded_by" doc:"The audit actor of the upload, token:<id>."`
	Path            string    `json:"path" doc:"Where a device of the product downloads it, over mutual TLS."`
}

// FirmwareList is one page of images, by digest.
type FirmwareList struct {
	Images []FirmwareImage `json:"images"`
	Next   string          `json:"next,omitempty" doc:"Pass as ?after= for the next page; absent on the last page (which may be empty)."`
}

var (
	digestParam         = map[string]string{"digest": "Image digest: SHA-256 of the image file, 64 lowercase hex characters."}
	firmwareMediaTypes  = []string{"application/octet-stream"}
	firmwareUploadCodes = []string{"not-found", firmwarerepo.CodeMalformed, firmwarerepo.CodeUntrusted,
		firmwarerepo.CodeHybridIncomplete, firmwarerepo.CodeRetiredRoot, firmwarerepo.CodeBadSignature,
		firmwarerepo.CodeBadRetirement, firmwarerepo.CodeWrongRecipient, firmwarerepo.CodeWrongType,
		firmwarerepo.CodeNoPolicy, "conflict"}
)

// HandleFirmware adds the repository's admin routes and the device
// download (a device route, authenticated by the device certificate as
// /v1/device/status is), and registers the counter of bytes served.
func (s *Server) HandleFirmware(repo FirmwareRepo, verify DeviceVerifier) error {
	served := prometheus.NewCounter(prometheus.CounterOpts{Name: "hallmark_firmware_served_bytes_total",
		Help: "Bytes of firmware images sent to devices, ranges included."})
	if err := s.metrics.Register(served); err != nil {
		return fmt.Errorf("httpapi: register firmware metrics: %w", err)
	}
	h := firmwareHandlers{s: s, repo: repo, device: onboardHandlers{s: s, verify: verify}, served: served}
	for _, rt := range h.routes() {
		if err := s.Handle(rt); err != nil {
			return err
		}
	}
	return nil
}

type firmwareHandlers struct {
	s      *Server
	repo   FirmwareRepo
	device onboardHandlers // for its client certificate check
	served prometheus.Counter
}

func (h firmwareHandlers) routes() []Route {
	one := []Response{{Status: 200, Description: "The image.", MediaType: "application/octet-stream"},
		{Status: 206, Description: "The range asked for.", MediaType: "application/octet-stream"}}
	return []Route{
		{Method: "POST", Path: "/v1/admin/products/{id}/firmware", Handler: h.s.admin(firmwarerepo.ActionUpload, admin.ScopeFirmwareWrite, h.upload), Doc: RouteDoc{
			OperationID: "uploadFirmware", Summary: "Upload a signed firmware image for a product.", Tag: "products",
			Description: "The body is the image file (hallmark firmware sign). It is refused unless the product's devices would boot it: " +
				"signed by every live root of the product's firmware policy, not only under a retired one, an application image, and, if " +
				"encrypted, sealed to the product's device-class key (the platform cannot decrypt it). Version and security counter are read " +
				"from the header. The image is named by the SHA-256 of the file; uploading it again answers 200 with the record.",
			Auth: AuthBearer, Scope: admin.ScopeFirmwareWrite, PathParams: productParam,
			RawRequest: &RawBody{MediaTypes: firmwareMediaTypes, Description: fmt.Sprintf("The image file, at most %d bytes.", firmware.MaxImageSize)},
			Responses: []Response{{Status: 201, Description: "Stored.", Body: FirmwareImage{}},
				{Status: 200, Description: "Stored before; nothing changed.", Body: FirmwareImage{}}},
			Problems: firmwareUploadCodes,
		}},
		{Method: "GET", Path: PathAdminFirmware, Handler: h.s.admin(firmwarerepo.ActionList, admin.ScopeFirmwareRead, h.list), Doc: RouteDoc{
			OperationID: "listFirmware", Summary: "List firmware images, one page at a time.", Tag: "products",
			Description: "Images in digest order. Keyset pagination: pass the response's next as after.",
			Auth:        AuthBearer, Scope: admin.ScopeFirmwareRead,
			Query: []Param{
				{Name: "product", Description: "Only images of this product.", Pattern: audit.ProductIDPattern.String()},
				{Name: "after", Description: "The last digest of the previous page.", Pattern: "^[0-9a-f]{64}$"},
				limitParam,
			},
			Responses: []Response{{Status: 200, Description: "One page.", Body: FirmwareList{}}},
		}},
		{Method: "GET", Path: PathAdminFirmware + "/{digest}", Handler: h.s.admin(firmwarerepo.ActionGet, admin.ScopeFirmwareRead, h.get), Doc: RouteDoc{
			OperationID: "getFirmware", Summary: "Describe a firmware image.", Tag: "products",
			Auth: AuthBearer, Scope: admin.ScopeFirmwareRead, PathParams: digestParam,
			Responses: []Response{{Status: 200, Description: "The image's record.", Body: FirmwareImage{}}},
			Problems:  []string{"not-found"},
		}},
		{Method: "GET", Path: ota.PathFirmware + "{digest}", Handler: http.HandlerFunc(h.download), Doc: RouteDoc{
			OperationID: "deviceFirmware", Summary: "Download a firmware image of the device's product.", Tag: "device",
			Description: "Served with Range requests (206, If-Range; the ETag is the digest in quotes), so an interrupted download resumes. " +
				"Only to an onboarded device of the image's product: any other image, or an unknown digest, is the same not-found. " +
				"Refused like /v1/device/status for a device that may not use its certificate.",
			Auth: AuthMutualTLS, PathParams: digestParam, Responses: one,
			Problems: []string{"not-found", "not-onboarded", "certificate-superseded", "device-revoked", "device-suspended", "device-decommissioned"},
		}},
	}
}

func parseDigest(v string) ([32]byte, bool) {
	id, err := identity.Parse(v) // the same form: 64 lowercase hex
	return [32]byte(id), err == nil
}

func firmwareView(img store.FirmwareImage) FirmwareImage {
	d := hex.EncodeToString(img.Digest[:])
	out := FirmwareImage{Digest: d, Product: img.ProductID, Type: img.Type, Version: img.Version,
		SecurityCounter: img.SecurityCounter, Size: img.Size, Encrypted: img.Encrypted, Signers: []string{},
		UploadedAt: img.UploadedAt.UTC(), UploadedBy: img.UploadedBy, Path: ota.PathFirmware + d}
	for _, s := range img.Signers {
		out.Signers = append(out.Signers, s.String())
	}
	return out
}

// upload refuses a declared length over the limit before reading any of
// the body, and bounds the body for uploads that declare none.
func (h firmwareHandlers) upload(r *http.Request, c *adminCall) (int, any, error) {
	c.subject = audit.Subject("product:" + r.PathValue("id"))
	if err := checkContentType(r, firmwareMediaTypes...); err != nil {
		return 0, nil, err
	}
	if r.ContentLength > firmware.MaxImageSize {
		return 0, nil, problemf("body-too-large", "the image exceeds the limit of %d bytes", firmware.MaxImageSize)
	}
	body := uploadBody{http.MaxBytesReader(nil, r.Body, firmware.MaxImageSize), "image"}
	img, created, err := h.repo.Upload(r.Context(), c.use(), r.PathValue("id"), body)
	if err != nil {
		return 0, nil, err
	}
	if created {
		return http.StatusCreated, firmwareView(img), nil
	}
	return http.StatusOK, firmwareView(img), nil
}

func (h firmwareHandlers) list(r *http.Request, c *adminCall) (int, any, error) {
	q := r.URL.Query()
	var f store.FirmwareFilter
	if f.ProductID = q.Get("product"); f.ProductID != "" && !audit.ProductIDPattern.MatchString(f.ProductID) {
		return 0, nil, fieldError("product", "is not a product ID")
	}
	if after := q.Get("after"); after != "" {
		d, ok := parseDigest(after)
		if !ok {
			return 0, nil, fieldError("after", "must be a digest, 64 lowercase hex characters")
		}
		f.After = d
	}
	var err error
	if f.Limit, err = pageLimit(q.Get("limit")); err != nil {
		return 0, nil, err
	}
	list, err := h.repo.List(r.Context(), c.use(), f)
	if err != nil {
		return 0, nil, err
	}
	out := FirmwareList{Images: make([]FirmwareImage, 0, len(list))}
	for _, img := range list {
		out.Images = append(out.Images, firmwareView(img))
	}
	if len(list) == f.Limit {
		out.Next = out.Images[len(out.Images)-1].Digest
	}
	return http.StatusOK, out, nil
}

func (h firmwareHandlers) get(r *http.Request, c *adminCall) (int, any, error) {
	d, ok := parseDigest(r.PathValue("digest"))
	if !ok {
		return 0, nil, problemf("not-found", "no firmware image %q", truncateValue(r.PathValue("digest")))
	}
	img, err := h.repo.Get(r.Context(), c.use(), d)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, firmwareView(img), nil
}

func truncateValue(v string) string {
	if len(v) > 70 {
		return v[:70] + "…"
	}
	return v
}

// errNoImage is the one answer to an image the device may not have.
var errNoImage = NewProblem("not-found", "no such firmware image")

func (h firmwareHandlers) download(w http.ResponseWriter, r *http.Request) {
	// The certificate first: an unauthenticated client learns nothing.
	leaf, err := h.device.clientCertificate(r)
	if err != nil {
		h.s.writeProblem(w, r, onboardingProblem(err))
		return
	}
	digest, ok := parseDigest(r.PathValue("digest"))
	if !ok {
		h.s.writeProblem(w, r, errNoImage)
		return
	}
	img, f, err := h.repo.Download(r.Context(), leaf, digest, remoteAddr(r))
	switch {
	case errors.Is(err, firmwarerepo.ErrNotFound):
		h.s.writeProblem(w, r, errNoImage)
		return
	case err != nil:
		h.s.writeProblem(w, r, onboardingProblem(err))
		return
	}
	defer f.Close()
	w.Header().Set("ETag", `"`+hex.EncodeToString(img.Digest[:])+`"`)
	w.Header().Set("Content-Type", "application/octet-stream")
	// Content-addressed: the bytes behind a digest never change.
	w.Header().Set("Cache-Control", "private, max-age=31536000, immutable")
	cw := &countingWriter{ResponseWriter: w}
	http.ServeContent(cw, r, "", img.UploadedAt, f)
	h.served.Add(float64(cw.n))
}

// countingWriter counts the body bytes written.
type countingWriter struct {
	http.ResponseWriter
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n += int64(n)
	return n, err
}
