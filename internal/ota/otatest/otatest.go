// Package otatest is a platform's update routes for tests of the update
// agent: one assignment, images by digest, the reports it was sent and
// the ranges it served, reachable in process (ota.Transport) or over
// HTTPS with mutual TLS (Handler, Serve). It stands in for the real
// routes only where a test is about the device side; the platform's own
// tests run the agent against the real ones.
package otatest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hallmark-iot/hallmark/internal/ota"
)

// Platform is the platform's side of one device's updates.
type Platform struct {
	mu         sync.Mutex
	assignment *ota.Assignment
	retryAfter time.Duration
	images     map[string][]byte
	reports    []ota.Report
	offsets    []int64
	ranges     []string
	cutAfter   int64
	reportErr  error
}

// New returns a platform with no assignment.
func New() *Platform { return &Platform{images: map[string][]byte{}} }

// Offer makes image the device's assignment in campaign and returns it.
func (p *Platform) Offer(campaign string, image []byte, version string, counter uint32) ota.Assignment {
	sum := sha256.Sum256(image)
	digest := hex.EncodeToString(sum[:])
	a := ota.Assignment{CampaignID: campaign, Image: ota.ImageRef{Digest: digest, Size: int64(len(image)),
		Version: version, SecurityCounter: counter, Path: ota.PathFirmware + digest}}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.images[digest] = bytes.Clone(image)
	p.assignment = &a
	return a
}

// SetAssignment replaces the assignment (nil: none), as a campaign that
// moved on or a test's hand-made one.
func (p *Platform) SetAssignment(a *ota.Assignment) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.assignment = a
}

// SetRetryAfter sets the wait every poll answer carries.
func (p *Platform) SetRetryAfter(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.retryAfter = d
}

// CutNextDownload makes the next download stop after n bytes of its body,
// as a connection lost or a power cut would.
func (p *Platform) CutNextDownload(n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cutAfter = n
}

// FailReports makes Report fail with err (nil: accept again), as an
// unreachable platform would.
func (p *Platform) FailReports(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.reportErr = err
}

// Reports returns the reports received, in order.
func (p *Platform) Reports() []ota.Report {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]ota.Report(nil), p.reports...)
}

// States returns the states of the reports received, in order.
func (p *Platform) States() []ota.DeviceState {
	var out []ota.DeviceState
	for _, r := range p.Reports() {
		out = append(out, r.State)
	}
	return out
}

// Offsets returns the offset of every download started, in order.
func (p *Platform) Offsets() []int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]int64(nil), p.offsets...)
}

// Ranges returns the Range header of every download over HTTP ("" for
// none), in order.
func (p *Platform) Ranges() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.ranges...)
}

// Assignment implements ota.Transport.
func (p *Platform) Assignment(context.Context) (*ota.Assignment, time.Duration, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.assignment == nil {
		return nil, p.retryAfter, nil
	}
	a := *p.assignment
	return &a, p.retryAfter, nil
}

// Download implements ota.Transport.
func (p *Platform) Download(_ context.Context, path string, offset int64) (io.ReadCloser, int64, error) {
	img, cut, err := p.take(path, offset)
	if err != nil {
		return nil, 0, err
	}
	rest := img[offset:]
	if cut > 0 && cut < int64(len(rest)) {
		return io.NopCloser(io.MultiReader(bytes.NewReader(rest[:cut]), errReader{})), int64(len(img)), nil
	}
	return io.NopCloser(bytes.NewReader(rest)), int64(len(img)), nil
}

// take finds the image at path, records the download, and consumes the
// cut.
func (p *Platform) take(path string, offset int64) ([]byte, int64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	img, ok := p.images[strings.TrimPrefix(path, ota.PathFirmware)]
	if !ok || !strings.HasPrefix(path, ota.PathFirmware) {
		return nil, 0, fmt.Errorf("%w: no image at %s", ota.ErrRefused, path)
	}
	if offset < 0 || offset > int64(len(img)) {
		return nil, 0, fmt.Errorf("%w: offset %d outside the image", ota.ErrRefused, offset)
	}
	p.offsets = append(p.offsets, offset)
	cut := p.cutAfter
	p.cutAfter = 0
	return img, cut, nil
}

// Report implements ota.Transport: it checks the report as the platform
// does and records it.
func (p *Platform) Report(_ context.Context, r ota.Report) error {
	if err := r.Check(); err != nil {
		return fmt.Errorf("%w: %w", ota.ErrRefused, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.reportErr != nil {
		return p.reportErr
	}
	p.reports = append(p.reports, r)
	return nil
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }

// Handler serves the device-facing update routes of internal/ota/wire.go,
// with problem+json errors as the platform answers them.
func (p *Platform) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+ota.PathUpdate, func(w http.ResponseWriter, r *http.Request) {
		a, wait, _ := p.Assignment(r.Context())
		if wait > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(wait/time.Second)))
		}
		if a == nil {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(a)
	})
	mux.HandleFunc("POST "+ota.PathUpdateReport, func(w http.ResponseWriter, r *http.Request) {
		var rep ota.Report
		if err := json.NewDecoder(io.LimitReader(r.Body, ota.MaxReportBody)).Decode(&rep); err != nil {
			problem(w, http.StatusBadRequest, "malformed-request", err.Error())
			return
		}
		if err := p.Report(r.Context(), rep); err != nil {
			problem(w, http.StatusBadRequest, "malformed-request", err.Error())
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET "+ota.PathFirmware+"{digest}", p.serveImage)
	return mux
}

func (p *Platform) serveImage(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	img, ok := p.images[r.PathValue("digest")]
	p.ranges = append(p.ranges, r.Header.Get("Range"))
	cut := p.cutAfter
	p.cutAfter = 0
	p.mu.Unlock()
	if !ok {
		problem(w, http.StatusNotFound, "not-found", "no such firmware image")
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	if cut > 0 {
		w = &cutWriter{ResponseWriter: w, left: cut}
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(img))
}

// cutWriter passes n bytes of the body, then aborts the connection.
type cutWriter struct {
	http.ResponseWriter
	left int64
}

func (c *cutWriter) Write(b []byte) (int, error) {
	if int64(len(b)) <= c.left {
		c.left -= int64(len(b))
		return c.ResponseWriter.Write(b)
	}
	c.ResponseWriter.Write(b[:c.left])
	http.NewResponseController(c.ResponseWriter).Flush()
	panic(http.ErrAbortHandler)
}

func problem(w http.ResponseWriter, status int, code, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"type": "https://hallmark.dev/problems/" + code,
		"title": http.StatusText(status), "status": status, "code": code, "detail": detail})
}

// Replace makes the platform serve data for digest, as a corrupted store
// or a tampering proxy would.
func (p *Platform) Replace(digest string, data []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.images[digest] = bytes.Clone(data)
}
