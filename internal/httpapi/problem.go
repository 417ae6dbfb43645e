package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/hallmark-iot/hallmark/internal/admin"
)

// ProblemTypeBase prefixes every problem's type URI; the code follows it.
const ProblemTypeBase = "https://hallmark.dev/problems/"

// Problem is an RFC 9457 problem detail. It is both what a handler returns
// as an error and what a client decodes from an error response. Title is
// fixed per code; Detail explains this occurrence and is shown to the
// caller, so it never carries an internal cause: internal errors become the
// "internal" problem and their cause goes to the log only.
type Problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Code     string `json:"code"`
	Instance string `json:"instance,omitempty"`
	// RequestID repeats the X-Request-Id header, so a user can quote one
	// value from a saved error body.
	RequestID string `json:"request_id,omitempty"`
	// Extensions are further members for this code, such as the
	// duplicates of a duplicate-devices problem.
	Extensions map[string]any `json:"-"`
	// RetryAfter is the response's Retry-After, as a client read it; zero
	// without one.
	RetryAfter time.Duration `json:"-"`
}

// Error formats the problem as one line: title, detail, code.
func (p *Problem) Error() string {
	if p.Detail == "" {
		return fmt.Sprintf("%s (%s)", p.Title, p.Code)
	}
	return fmt.Sprintf("%s: %s (%s)", p.Title, p.Detail, p.Code)
}

// MarshalJSON writes the standard members and the extensions as one object.
func (p *Problem) MarshalJSON() ([]byte, error) {
	type plain Problem
	base, err := json.Marshal((*plain)(p))
	if err != nil || len(p.Extensions) == 0 {
		return base, err
	}
	ext, err := json.Marshal(p.Extensions)
	if err != nil {
		return nil, err
	}
	// Both are non-empty objects: join "{...}" and "{...}" with a comma.
	out := append(bytes.TrimSuffix(base, []byte("}")), ',')
	return append(out, ext[1:]...), nil
}

// UnmarshalJSON reads the standard members and keeps any others as
// extensions.
func (p *Problem) UnmarshalJSON(data []byte) error {
	type plain Problem
	if err := json.Unmarshal(data, (*plain)(p)); err != nil {
		return err
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(data, &all); err != nil {
		return err
	}
	for _, k := range []string{"type", "title", "status", "detail", "code", "instance", "request_id"} {
		delete(all, k)
	}
	p.Extensions = nil
	for k, v := range all {
		if p.Extensions == nil {
			p.Extensions = map[string]any{}
		}
		var x any
		if err := json.Unmarshal(v, &x); err != nil {
			return err
		}
		p.Extensions[k] = x
	}
	return nil
}

// ProblemCode is one stable machine-readable problem code.
type ProblemCode struct {
	Code   string
	Status int
	Title  string
	// About is the documentation of the code in docs/api.md and the
	// OpenAPI document: when it happens and what to do.
	About string
}

// problemCodes is the one table of codes. Codes are an API: a client
// branches on them, so they never change meaning once published.
var problemCodes = []ProblemCode{
	{"malformed-request", 400, "Malformed request", "The body or a parameter is not valid: bad JSON, a wrong type, a value out of range, trailing data after the JSON value, a repeated or unknown query parameter."},
	{"unknown-field", 400, "Unknown field", "The JSON body has a member the endpoint does not define (or spells one in another case). Nothing was changed."},
	{"unauthorized", 401, "Unauthorized", "No bearer token, or a token that is malformed, unknown, wrong, expired or revoked. The response carries WWW-Authenticate: Bearer."},
	{"forbidden", 403, "Forbidden", "The token is valid but lacks the scope the route needs, asks to grant a scope it does not hold, or asks to revoke a token holding a scope it does not hold."},
	{"token-outlives-creator", 403, "Token outlives its creator", "The new token would expire after the token creating it does: a token that expires can create only tokens that expire no later. Ask for a shorter ttl (the detail says how long the creator has left)."},
	{"not-found", 404, "Not found", "No such route or record."},
	{"method-not-allowed", 405, "Method not allowed", "The path exists but not with this method; the Allow header lists the methods it has."},
	{"conflict", 409, "Conflict", "The record exists already (a station, product or token ID), or a batch of this name was imported from a different manifest."},
	{"transition-not-allowed", 409, "Transition not allowed", "The device's lifecycle state does not allow the transition asked for (docs/lifecycle.md): the detail names the state and the states it is allowed from. Nothing was changed."},
	{"duplicate-devices", 409, "Duplicate devices", "Devices of the manifest are registered by another batch; nothing was imported. The problem lists up to 100 identities in `duplicates` and their number in `duplicate_count`."},
	{"devices-not-locked", 422, "Devices not locked", "Manifest import: the product requires locked devices (require_locked) and records of the manifest say devices were left open, or do not say (a manifest written before stations recorded locks); nothing was imported. The problem lists up to 100 identities in `not_locked` and their number in `not_locked_count`."},
	{"body-too-large", 413, "Body too large", "The body exceeds the endpoint's limit (64 KiB for JSON, the configured manifest limit for manifests)."},
	{"body-too-slow", 408, "Body too slow", "The request body arrived slower than the server's minimum transfer rate (by default 64 KiB, or the rest of the body, per 10 s the server waits; hallmark serve --min-rate-bytes and --min-rate-window). Nothing was changed and the connection is closed; send the request again at a normal speed."},
	{"unsupported-media-type", 415, "Unsupported media type", "The Content-Type is not one the endpoint accepts (application/json; application/jsonl or application/x-ndjson for manifests)."},
	{"manifest-invalid", 422, "Manifest invalid", "The manifest fails verification against the registered station key: malformed, altered, truncated, a bad device proof, a repeated identity. Nothing was imported."},
	{"unknown-station", 422, "Unknown station", "The manifest's header names a station that is not registered."},
	{"unknown-product", 422, "Unknown product", "The product named in the request does not exist."},
	{"rate-limited", 429, "Too many requests", "Too many requests from this client or for this identity, or (admin routes) too many failed authentications from this client's address; retry after the number of seconds in the Retry-After header."},
	{"internal", 500, "Internal error", "The server failed; the detail is logged under the request ID and never returned."},
	{"unavailable", 503, "Service unavailable", "The server cannot reach its store (readiness)."},
	// The onboarding protocol's codes (docs/protocol.md).
	{"challenge-unknown", 401, "Unknown challenge", "Onboarding: the challenge ID was never issued or has been removed."},
	{"challenge-used", 401, "Challenge used", "Onboarding: the challenge was answered before; request a new one."},
	{"challenge-expired", 401, "Challenge expired", "Onboarding: the challenge expired before the answer arrived; request a new one."},
	{"proof-rejected", 401, "Proof rejected", "Onboarding: the proof of possession does not verify for the claimed identity."},
	{"not-onboarded", 401, "Device not recognised", "Device routes: the client certificate is missing, not issued by this platform, unknown or revoked."},
	{"device-revoked", 403, "Device revoked", "Onboarding and device routes: the device is revoked, or the client certificate is."},
	{"device-suspended", 403, "Device suspended", "Onboarding and device routes: the device is suspended (quarantined) until an administrator resumes it."},
	{"device-decommissioned", 403, "Device decommissioned", "Onboarding and device routes: the device is decommissioned; an administrator may reprovision it, after which it must onboard afresh."},
	{"device-migrated", 403, "Device migrated", "Onboarding, device routes, renewal and migration: this identity was superseded by a post-quantum migration (docs/migration.md); the device goes by its successor's identity and credentials now. Terminal: it cannot be reprovisioned."},
	{"migration-not-open", 403, "No migration open", "Migration: no migration campaign allows this device a migration now."},
	{"migration-not-allowed", 403, "Migration not allowed", "Migration: the proof moves the enrolment key to another suite than the one the migration allows, or it is a downgrade; nothing changed."},
	{"transport-key-rejected", 401, "Transport key rejected", "Migration of an inject-class chip: the challenge request lacks the chip's transport key, or its signature by the device's enrolment key does not verify; no key was generated. Send the transport key signed as docs/migration.md says."},
	{"continuity-rejected", 401, "Continuity proof rejected", "Migration: the continuity proof does not verify against the challenge and the device on record (a replayed or relabelled proof, another device's key, a bad signature). The challenge is used up; request a new one."},
	{"identity-taken", 409, "Identity taken", "Migration: the new enrolment identity is registered already (as any device), or this device has a successor already; nothing changed."},
	{"device-not-locked", 403, "Device not locked", "Onboarding: the device's product requires locked devices (require_locked) and the device's manifest record does not say its station locked it (recorded open, or imported from a manifest written before stations recorded locks). Nothing was issued."},
	{"bad-csr", 422, "Certificate request refused", "Onboarding and renewal: the PKCS #10 request's signature or key is not acceptable, its subject does not name the device's identity as its common name, it is bound to another exchange (or carries no binding where the platform requires one), or its key is certified for another device."},
	{"renewal-too-soon", 429, "Renewal too soon", "Renewal: the device was issued the most certificates the platform allows within its window (by default 3 per hour, counting its onboarding); retry after the number of seconds in the Retry-After header."},
	{"renewal-not-due", 409, "Renewal not due", "Renewal: the device's current certificate is not yet within its product's renewal window (the credentials' renew_after says when it is); retry after the number of seconds in the Retry-After header, or have an administrator force one renewal (POST /v1/admin/devices/{identity}/force-renewal)."},
	{"allocation-unavailable", 503, "Cloud endpoint allocation unavailable", "Onboarding and renewal: the device's product allocates endpoints by a webhook that failed, was slow or answered an endpoint not listed for the product; nothing was issued or recorded. Retry after the number of seconds in the Retry-After header."},
	{"certificate-superseded", 401, "Certificate superseded", "Device routes: the client certificate was replaced by a newer one (a renewal or a new onboarding) and its grace period (by default 10 minutes) has passed; use the newest certificate, or onboard again."},
	// The firmware repository's refusals of an upload (docs/ota.md); nothing is stored for any.
	{"firmware-malformed", 422, "Firmware image malformed", "Firmware upload: the body is not a Hallmark firmware image (bad magic, layout or limits, truncated, trailing data, a payload that does not match its hash, a weak signer key)."},
	{"firmware-untrusted", 422, "Firmware not signed by the product's roots", "Firmware upload: the image is unsigned or signed by none of the live root keys of the product's firmware policy."},
	{"firmware-hybrid-incomplete", 422, "Firmware lacks a root's signature", "Firmware upload: the image is signed by some of the product's live root keys but not by all; a device requires every live root (a hybrid classical and post-quantum policy needs both signatures)."},
	{"firmware-retired-root", 422, "Firmware signed under a retired root", "Firmware upload: the image is signed under a root-key slot the product has retired and not by the live roots."},
	{"firmware-bad-signature", 422, "Firmware signature invalid", "Firmware upload: a live root's signature does not verify: the image was changed after signing."},
	{"firmware-bad-retirement", 422, "Firmware retirement refused", "Firmware upload: the image retires a root-key slot the product's devices do not have, or their last live one."},
	{"firmware-wrong-recipient", 422, "Firmware encrypted to another key", "Firmware upload: the payload is encrypted to a key other than the product's device-class key, or the product has no class key."},
	{"firmware-wrong-type", 422, "Firmware of the wrong type", "Firmware upload: the image is not an application image; initial enrolment firmware (ief) runs in the factory only."},
	{"firmware-no-policy", 422, "Product has no firmware policy", "Firmware upload: the product has no firmware root keys, so no image can be checked; set them first (PATCH /v1/admin/products/{id}, firmware_roots)."},
}

// ProblemCodes lists every problem code the API uses, for documentation.
func ProblemCodes() []ProblemCode { return slices.Clone(problemCodes) }

func lookupCode(code string) (ProblemCode, bool) {
	for _, c := range problemCodes {
		if c.Code == code {
			return c, true
		}
	}
	return ProblemCode{}, false
}

// NewProblem returns the problem for code with the given detail. An unknown
// code is a programming error and becomes "internal".
func NewProblem(code, detail string) *Problem {
	c, ok := lookupCode(code)
	if !ok {
		c, _ = lookupCode("internal")
		detail = ""
	}
	return &Problem{Type: ProblemTypeBase + c.Code, Title: c.Title, Status: c.Status, Code: c.Code, Detail: detail}
}

func problemf(code, format string, args ...any) *Problem {
	return NewProblem(code, fmt.Sprintf(format, args...))
}

// problemFor maps an error to the problem the caller sees: the one place
// errors become problems. Problems pass through; a body over its limit is
// body-too-large; the admin use cases' errors (admin.Classify, which
// also maps store sentinels with a generic detail) keep their code and
// message, a duplicate-devices one its list; anything else is internal.
func problemFor(err error) *Problem {
	var p *Problem
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &p):
		return p
	case errors.As(err, &tooLarge):
		return problemf("body-too-large", "the body exceeds the limit of %d bytes", tooLarge.Limit)
	}
	e := admin.Classify(err)
	p = NewProblem(e.Code, e.Message)
	var dup *admin.DuplicateDevicesError
	if e.Code == admin.CodeDuplicateDevices && errors.As(err, &dup) {
		p.Extensions = duplicatesExtension(dup)
	}
	var open *admin.NotLockedDevicesError
	if e.Code == admin.CodeDevicesNotLocked && errors.As(err, &open) {
		p.Extensions = identitiesExtension("not_locked", open.Identities)
	}
	return p
}

// writeProblem answers with the problem for err. Internal errors are logged
// with the request ID, their cause never sent.
func (s *Server) writeProblem(w http.ResponseWriter, r *http.Request, err error) {
	p := *problemFor(err) // a copy: handlers may return shared problems
	rid := requestID(r.Context())
	if p.Status >= 500 {
		s.log.LogAttrs(r.Context(), slog.LevelError, "request failed",
			slog.String("request_id", rid), slog.String("route", r.Pattern), slog.String("error", errString(err)))
	}
	p.RequestID = rid
	if p.Instance == "" {
		p.Instance = r.URL.Path
	}
	if p.Status == http.StatusUnauthorized && p.Code == "unauthorized" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="hallmark"`)
	}
	body, mErr := json.Marshal(&p)
	if mErr != nil {
		body = []byte(`{"type":"` + ProblemTypeBase + `internal","title":"Internal error","status":500,"code":"internal"}`)
		p.Status = http.StatusInternalServerError
	}
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Del("Content-Length")
	w.WriteHeader(p.Status)
	w.Write(append(body, '\n'))
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
