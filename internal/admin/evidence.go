package admin

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/hallmark-iot/hallmark/internal/audit"
	"github.com/hallmark-iot/hallmark/internal/evidence"
)

// ActionEvidenceExport files an evidence pack export in the audit log.
const ActionEvidenceExport = "evidence.export"

// Evidence owns the export of evidence packs (docs/evidence.md,
// "Evidence packs"): it checks the request, names its subject in the
// audit log and streams the pack the evidence package assembles.
type Evidence struct {
	base
	src evidence.Source
}

// NewEvidence returns the exporter over src, which holds the audit key.
func NewEvidence(src evidence.Source, rec *audit.Recorder, now func() time.Time) *Evidence {
	return &Evidence{base: newBase(rec, now), src: src}
}

// Check resolves req as Export will, so that a front door answers a bad
// request with an error before it sends the first byte of a pack.
func (e *Evidence) Check(ctx context.Context, req evidence.Request) error {
	return evidenceError(e.src.Check(ctx, req))
}

// Export writes the pack of req to w; the call is one audit event, filed
// under the device, batch or product, written when the pack ends.
func (e *Evidence) Export(ctx context.Context, caller Caller, req evidence.Request, w io.Writer) (err error) {
	c := caller.begin(ActionEvidenceExport)
	c.subject = audit.Subject(req.Scope + ":" + req.Subject)
	defer func() { err = e.finish(ctx, c, err) }()
	return evidenceError(e.src.Export(ctx, req, w))
}

func evidenceError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, evidence.ErrNotFound):
		return &Error{Code: CodeNotFound, Message: err.Error(), Err: err}
	case errors.Is(err, evidence.ErrTooLarge), errors.Is(err, evidence.ErrRequest):
		return &Error{Code: CodeMalformed, Message: err.Error(), Err: err}
	}
	return err // Classify makes it internal; the cause goes to the log only
}
