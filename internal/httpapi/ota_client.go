package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hallmark-iot/hallmark/internal/migration"
	"github.com/hallmark-iot/hallmark/internal/onboarding"
	"github.com/hallmark-iot/hallmark/internal/ota"
)

// maxOTAResponse bounds an update or migration answer (not an image):
// an assignment, a challenge, or credentials.
const maxOTAResponse = 256 << 10

// OTATransport is the device side of the update and migration routes
// over HTTPS: ota.Transport and ota.MigrationTransport. HTTP must present
// the device's certificate (mutual TLS). A problem the platform answers
// with is an error errors.As finds the *Problem in; a refusal (4xx but
// 408 and 429) is also ota.ErrRefused.
type OTATransport struct {
	// BaseURL is the platform, e.g. https://hallmark.example.com:8443.
	BaseURL string
	HTTP    *http.Client
	// ServerName is the platform's name as the device reached it: a
	// migration challenge made for another name is refused.
	ServerName string
}

var (
	_ ota.Transport          = (*OTATransport)(nil)
	_ ota.MigrationTransport = (*OTATransport)(nil)
)

// NewOTATransport returns the transport to the platform at baseURL over
// hc.
func NewOTATransport(baseURL string, hc *http.Client) (*OTATransport, error) {
	u, err := url.Parse(baseURL)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil {
		return nil, fmt.Errorf("server %q: want https://host[:port]", baseURL)
	}
	return &OTATransport{BaseURL: strings.TrimRight(baseURL, "/"), HTTP: hc, ServerName: u.Hostname()}, nil
}

// Assignment implements ota.Transport: GET ota.PathUpdate, 200 with the
// assignment or 204 for none, either with Retry-After.
func (t *OTATransport) Assignment(ctx context.Context) (*ota.Assignment, time.Duration, error) {
	resp, err := t.do(ctx, http.MethodGet, ota.PathUpdate, nil, nil)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	wait := retryAfter(resp.Header)
	if resp.StatusCode == http.StatusNoContent {
		return nil, wait, nil
	}
	var a ota.Assignment
	if err := decodeOTAAnswer(resp, ota.PathUpdate, &a); err != nil {
		return nil, wait, err
	}
	return &a, wait, nil
}

// Download implements ota.Transport. A server that ignores the range and
// sends the whole image (200) is read past the bytes the device has.
func (t *OTATransport) Download(ctx context.Context, path string, offset int64) (io.ReadCloser, int64, error) {
	if !strings.HasPrefix(path, ota.PathFirmware) || strings.ContainsAny(path, "?#") || strings.Contains(path, "..") {
		return nil, 0, fmt.Errorf("download %q: not a firmware path", path)
	}
	h := http.Header{"Accept": {"application/octet-stream, application/problem+json"}}
	if offset > 0 {
		h.Set("Range", fmt.Sprintf("bytes=%d-", offset))
	}
	resp, err := t.do(ctx, http.MethodGet, path, nil, h)
	if err != nil {
		return nil, 0, err
	}
	switch resp.StatusCode {
	case http.StatusPartialContent:
		start, total, err := parseContentRange(resp.Header.Get("Content-Range"))
		if err != nil || start != offset {
			resp.Body.Close()
			return nil, 0, fmt.Errorf("GET %s: Content-Range %q does not start at byte %d", path, resp.Header.Get("Content-Range"), offset)
		}
		return resp.Body, total, nil
	case http.StatusOK:
		if resp.ContentLength < 0 {
			resp.Body.Close()
			return nil, 0, fmt.Errorf("GET %s: the server did not say the image's length", path)
		}
		if _, err := io.CopyN(io.Discard, resp.Body, offset); err != nil {
			resp.Body.Close()
			return nil, 0, fmt.Errorf("GET %s: skip the %d bytes already held: %w", path, offset, err)
		}
		return resp.Body, resp.ContentLength, nil
	}
	resp.Body.Close()
	return nil, 0, &StatusError{Method: http.MethodGet, Path: path, Status: resp.StatusCode, StatusText: resp.Status}
}

// Report implements ota.Transport: POST ota.PathUpdateReport, 204.
func (t *OTATransport) Report(ctx context.Context, r ota.Report) error {
	resp, err := t.postJSON(ctx, ota.PathUpdateReport, r)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// PlatformName implements ota.MigrationTransport: the server name.
func (t *OTATransport) PlatformName() string { return t.ServerName }

// MigrationChallenge implements ota.MigrationTransport.
func (t *OTATransport) MigrationChallenge(ctx context.Context, req migration.ChallengeRequest) (migration.ChallengeResponse, error) {
	var ch migration.ChallengeResponse
	resp, err := t.postJSON(ctx, migration.PathMigrateChallenge, req)
	if err != nil {
		return ch, err
	}
	defer resp.Body.Close()
	if err := decodeOTAAnswer(resp, migration.PathMigrateChallenge, &ch); err != nil {
		return ch, err
	}
	if ch.ServerName != t.ServerName {
		return ch, fmt.Errorf("migration challenge is for server %q, not %q", ch.ServerName, t.ServerName)
	}
	return ch, nil
}

// Migrate implements ota.MigrationTransport.
func (t *OTATransport) Migrate(ctx context.Context, req migration.Request) (*onboarding.Credentials, error) {
	resp, err := t.postJSON(ctx, migration.PathMigrate, req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var creds onboarding.Credentials
	if err := decodeOTAAnswer(resp, migration.PathMigrate, &creds); err != nil {
		return nil, err
	}
	return &creds, nil
}

func (t *OTATransport) postJSON(ctx context.Context, path string, in any) (*http.Response, error) {
	body, err := json.Marshal(in)
	if err != nil {
		return nil, err
	}
	return t.do(ctx, http.MethodPost, path, bytes.NewReader(body), http.Header{"Content-Type": {"application/json"}})
}

// do sends one request and returns a success response, or the problem
// the server answered with, as an error.
func (t *OTATransport) do(ctx context.Context, method, path string, body io.Reader, h http.Header) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, t.BaseURL+path, body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/json, application/problem+json")
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := t.HTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, t.BaseURL, unwrapURLError(err))
	}
	if resp.StatusCode < 300 {
		return resp, nil
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, maxOTAResponse))
	media, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	var p Problem
	if media == "application/problem+json" && json.Unmarshal(data, &p) == nil && p.Code != "" {
		p.RetryAfter = retryAfter(resp.Header)
		return nil, &otaError{problem: &p, refused: refusal(resp.StatusCode)}
	}
	return nil, &StatusError{Method: method, Path: path, Status: resp.StatusCode, StatusText: resp.Status}
}

// refusal reports whether a status means the platform will not do it,
// rather than not now.
func refusal(status int) bool {
	return status >= 400 && status < 500 && status != http.StatusRequestTimeout && status != http.StatusTooManyRequests
}

// otaError is a problem of the update routes, and ota.ErrRefused when it
// is a refusal.
type otaError struct {
	problem *Problem
	refused bool
}

func (e *otaError) Error() string {
	return fmt.Sprintf("%s (HTTP %d)", e.problem.Error(), e.problem.Status)
}

func (e *otaError) Unwrap() []error {
	errs := []error{e.problem}
	if e.refused {
		errs = append(errs, ota.ErrRefused)
	}
	// The onboarding service's sentinel, so the agent can tell an
	// identity that migrated (onboarding.ErrMigrated) from other refusals.
	if kind := onboardingErrors[e.problem.Code]; kind != nil {
		errs = append(errs, kind)
	}
	return errs
}

// decodeOTAAnswer reads a JSON success answer of at most maxOTAResponse bytes.
func decodeOTAAnswer(resp *http.Response, path string, out any) error {
	if media, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); media != "application/json" {
		return fmt.Errorf("GET %s: server answered %q, not JSON", path, media)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxOTAResponse+1))
	if err != nil {
		return fmt.Errorf("%s: read response: %w", path, err)
	}
	if len(data) > maxOTAResponse {
		return fmt.Errorf("%s: response larger than %d bytes", path, maxOTAResponse)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s: decode response: %w", path, err)
	}
	return nil
}

// parseContentRange reads "bytes START-END/TOTAL" (RFC 9110 14.4).
func parseContentRange(v string) (start, total int64, err error) {
	rest, ok := strings.CutPrefix(v, "bytes ")
	span, size, ok2 := strings.Cut(rest, "/")
	first, last, ok3 := strings.Cut(span, "-")
	if !ok || !ok2 || !ok3 {
		return 0, 0, errors.New("malformed Content-Range")
	}
	start, err1 := strconv.ParseInt(first, 10, 64)
	end, err2 := strconv.ParseInt(last, 10, 64)
	total, err3 := strconv.ParseInt(size, 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || start < 0 || end < start || total <= end {
		return 0, 0, errors.New("malformed Content-Range")
	}
	return start, total, nil
}
