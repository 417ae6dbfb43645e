package admin

import (
	"context"

	"github.com/hallmark-iot/hallmark/internal/audit"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// AuditStore is what reading the audit log asks of the store.
type AuditStore interface {
	ListAudit(ctx context.Context, f store.AuditFilter) ([]store.AuditEvent, error)
}

// AuditLog owns reading the audit log; reading it is itself audited.
type AuditLog struct {
	base
	store AuditStore
}

// NewAuditLog returns the audit log reader on st.
func NewAuditLog(st AuditStore, rec *audit.Recorder) *AuditLog {
	return &AuditLog{base: newBase(rec, nil), store: st}
}

// List returns one page of events, oldest first.
func (a *AuditLog) List(ctx context.Context, caller Caller, f store.AuditFilter) (_ []store.AuditEvent, err error) {
	c := caller.begin(ActionAuditList)
	defer func() { err = a.finish(ctx, c, err) }()
	return a.store.ListAudit(ctx, f)
}
