package audit

import (
	"context"
	"log/slog"
	"time"

	"github.com/hallmark-iot/hallmark/internal/store"
)

// Appender is where events go: the store's audit log.
type Appender interface {
	AppendAudit(ctx context.Context, e store.AuditEvent) (int64, error)
}

// writeTimeout bounds one append, which must happen even if the request
// that caused it has ended.
const writeTimeout = 5 * time.Second

// Recorder writes events to the audit log one at a time. A failure to
// write is logged, never returned: the action has happened (or been
// refused) either way, and the log line keeps the event.
type Recorder struct {
	store Appender
	log   *slog.Logger
	now   func() time.Time
}

// NewRecorder returns a Recorder appending to a; a nil log discards, a nil
// now is time.Now.
func NewRecorder(a Appender, log *slog.Logger, now func() time.Time) *Recorder {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if now == nil {
		now = time.Now
	}
	return &Recorder{store: a, log: log, now: now}
}

// Record builds e (Build) and appends it, on a context that outlives ctx's
// cancellation (the client may have hung up) by at most five seconds. An
// event that cannot be appended is logged as "audit event lost", with the
// request ID ctx carries (WithRequestID).
func (r *Recorder) Record(ctx context.Context, e store.AuditEvent) {
	if err := r.Append(ctx, e); err != nil {
		e = Build(e, r.now())
		attrs := make([]slog.Attr, 0, 8)
		if rid := RequestID(ctx); rid != "" {
			attrs = append(attrs, slog.String("request_id", rid))
		}
		attrs = append(attrs, slog.String("actor", e.Actor), slog.String("action", e.Action),
			slog.String("subject", e.Subject), slog.String("outcome", e.Outcome), slog.String("detail", e.Detail),
			slog.String("remote_addr", e.RemoteAddr), slog.String("error", err.Error()))
		r.log.LogAttrs(ctx, slog.LevelError, "audit event lost", attrs...)
	}
}

// Append is Record for the caller that must not go on without the event
// (the bootstrap token, which no one else will ever account for): it
// returns the failure instead of logging it.
func (r *Recorder) Append(ctx context.Context, e store.AuditEvent) error {
	e = Build(e, r.now())
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
	defer cancel()
	_, err := r.store.AppendAudit(ctx, e)
	return err
}

type requestIDKey struct{}

// WithRequestID returns ctx carrying the ID of the request it serves, so
// that a lost event's log line can be matched with the request's.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestID returns the request ID ctx carries, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}
