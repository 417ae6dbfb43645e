package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"

	"github.com/hallmark-iot/hallmark/internal/admin"
	"github.com/hallmark-iot/hallmark/internal/audit"
	"github.com/hallmark-iot/hallmark/internal/evidence"
	"github.com/hallmark-iot/hallmark/internal/identity"
)

// PathAdminEvidence exports an evidence pack (docs/evidence.md,
// "Evidence packs").
const PathAdminEvidence = "/v1/admin/evidence"

// EvidenceMediaType is the pack's media type.
const EvidenceMediaType = "application/x-tar"

// EvidenceExporter is the evidence use case (admin.Evidence).
type EvidenceExporter interface {
	Check(ctx context.Context, req evidence.Request) error
	Export(ctx context.Context, caller admin.Caller, req evidence.Request, w io.Writer) error
}

// HandleEvidence adds the export route. The pack streams: the request is
// resolved first, so an unknown device is a problem answer, never a
// partial pack; a failure after the first byte aborts the connection, so
// the client sees a broken transfer, not a short archive.
func (s *Server) HandleEvidence(ex EvidenceExporter) error {
	h := evidenceHandler{s: s, ex: ex}
	return s.Handle(Route{Method: "GET", Path: PathAdminEvidence, Handler: http.HandlerFunc(h.export), Doc: RouteDoc{
		OperationID: "exportEvidence", Summary: "Export a signed evidence pack of a device, batch or product.", Tag: "audit",
		Description: "Exactly one of device, batch or product. The answer is a tar archive signed by the audit key " +
			"(GET /v1/audit/key): check it offline with hallmark evidence verify. A product of more than 10,000 devices is refused: export it batch by batch.",
		Auth: AuthBearer, Scope: admin.ScopeAuditRead,
		Query: []Param{
			{Name: "device", Description: "A device identity: 64 lowercase hex characters.", Pattern: "^[0-9a-f]{64}$"},
			{Name: "batch", Description: "A batch name.", Pattern: audit.BatchPattern.String()},
			{Name: "product", Description: "A product ID.", Pattern: audit.ProductIDPattern.String()},
		},
		Responses: []Response{{Status: 200, Description: "The pack.", MediaType: EvidenceMediaType}},
		Problems:  []string{"not-found"},
	}})
}

type evidenceHandler struct {
	s  *Server
	ex EvidenceExporter
}

// evidenceRequest reads the one scope the query names.
func evidenceRequest(q url.Values) (evidence.Request, error) {
	var req evidence.Request
	for _, scope := range []string{evidence.ScopeDevice, evidence.ScopeBatch, evidence.ScopeProduct} {
		vs := q[scope]
		if len(vs) == 0 {
			continue
		}
		if req.Scope != "" || len(vs) != 1 {
			return req, problemf("malformed-request", "give exactly one of device, batch or product, once")
		}
		req = evidence.Request{Scope: scope, Subject: vs[0]}
	}
	ok := false
	switch req.Scope {
	case evidence.ScopeDevice:
		_, err := identity.Parse(req.Subject)
		ok = err == nil
	case evidence.ScopeBatch:
		ok = audit.BatchPattern.MatchString(req.Subject)
	case evidence.ScopeProduct:
		ok = audit.ProductIDPattern.MatchString(req.Subject)
	default:
		return req, problemf("malformed-request", "give exactly one of device, batch or product")
	}
	if !ok {
		return req, problemf("malformed-request", "%s: not a valid %s name", req.Scope, req.Scope)
	}
	return req, nil
}

func (h evidenceHandler) export(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	s := h.s
	who, actor, ok := s.gate(w, r, admin.ActionEvidenceExport)
	if !ok {
		return
	}
	subject := subjectOf(r)
	if !who.HasScope(admin.ScopeAuditRead) {
		s.audit(ctx, r, actor, admin.ActionEvidenceExport, subject, "denied", "missing scope "+admin.ScopeAuditRead)
		s.writeProblem(w, r, problemf("forbidden", "the token lacks the scope %q", admin.ScopeAuditRead))
		return
	}
	req, err := evidenceRequest(r.URL.Query())
	if err == nil {
		subject = audit.Subject(req.Scope + ":" + req.Subject)
		err = h.ex.Check(ctx, req)
	}
	if err != nil {
		s.audit(ctx, r, actor, admin.ActionEvidenceExport, subject, "error", problemFor(err).Code)
		s.writeProblem(w, r, err)
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", EvidenceMediaType)
	hdr.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": "evidence-" + req.Scope + "-" + req.Subject + ".tar"}))
	hdr.Set("Cache-Control", "no-store")
	caller := *who
	caller.Route = subject
	if err := h.ex.Export(ctx, caller, req, w); err != nil {
		s.log.Error("evidence export failed mid-stream", "request_id", requestID(ctx), "error", err)
		panic(http.ErrAbortHandler)
	}
}

// EvidenceQuery names what to export: exactly one field.
type EvidenceQuery struct {
	Device, Batch, Product string
}

// maxProblemBody bounds a problem answer read by ExportEvidence.
const maxProblemBody = 64 << 10

// ExportEvidence streams the pack q names into w and returns its size; a
// refusal is the server's *Problem, and nothing is written to w.
func (c *Client) ExportEvidence(ctx context.Context, q EvidenceQuery, w io.Writer) (int64, error) {
	v := url.Values{}
	for k, val := range map[string]string{"device": q.Device, "batch": q.Batch, "product": q.Product} {
		if val != "" {
			v.Set(k, val)
		}
	}
	hreq, err := http.NewRequestWithContext(ctx, "GET", c.BaseURL+PathAdminEvidence+"?"+v.Encode(), nil)
	if err != nil {
		return 0, fmt.Errorf("GET %s: %w", PathAdminEvidence, err)
	}
	hreq.Header.Set("Authorization", "Bearer "+c.Token)
	hreq.Header.Set("Accept", EvidenceMediaType+", application/problem+json")
	resp, err := c.HTTP.Do(hreq)
	if err != nil {
		return 0, fmt.Errorf("GET %s: %w", c.BaseURL, unwrapURLError(err))
	}
	defer resp.Body.Close()
	media, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if resp.StatusCode >= 300 {
		var p Problem
		data, _ := io.ReadAll(io.LimitReader(resp.Body, maxProblemBody))
		if media == "application/problem+json" && json.Unmarshal(data, &p) == nil && p.Code != "" {
			p.RetryAfter = retryAfter(resp.Header)
			return 0, &p
		}
		return 0, &StatusError{Method: "GET", Path: PathAdminEvidence, Status: resp.StatusCode, StatusText: resp.Status}
	}
	if media != EvidenceMediaType {
		return 0, fmt.Errorf("GET %s: server answered %s, not %s", PathAdminEvidence, media, EvidenceMediaType)
	}
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		return n, fmt.Errorf("GET %s: the pack broke off after %d bytes: %w", PathAdminEvidence, n, err)
	}
	return n, nil
}
