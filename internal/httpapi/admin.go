package httpapi

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/hallmark-iot/hallmark/internal/store"
)

// adminCall is one admin request in progress: who made it and what it is
// about, for the audit log.
type adminCall struct {
	*caller
	// subject names what the action was on; it defaults to the path.
	subject string
	// detail adds to the audit event (never a secret).
	detail string
}

// adminFunc handles an authenticated, authorised admin request. It returns
// the status and body of a success or an error; the wrapper audits the
// outcome first and answers after, so an event is in the log before its
// caller sees the response.
type adminFunc func(r *http.Request, c *adminCall) (status int, body any, err error)

// admin builds the handler of an admin route: bearer authentication, the
// scope check, the call, one audit event per request whatever the outcome.
func (s *Server) admin(action, scope string, fn adminFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		subject := subjectOf(r)
		who, actor, reason, err := s.authenticate(ctx, r)
		if err != nil {
			s.audit(ctx, r, actor, action, subject, "error", "internal: authentication failed")
			s.writeProblem(w, r, err)
			return
		}
		if who == nil {
			s.audit(ctx, r, actor, action, subject, "denied", reason)
			s.writeProblem(w, r, errUnauthorized)
			return
		}
		if !who.hasScope(scope) {
			s.audit(ctx, r, actor, action, subject, "denied", "missing scope "+scope)
			s.writeProblem(w, r, problemf("forbidden", "the token lacks the scope %q", scope))
			return
		}
		call := &adminCall{caller: who, subject: subject}
		status, body, err := fn(r, call)
		if err != nil {
			p := problemFor(err)
			outcome := "error"
			if p.Status == http.StatusForbidden {
				outcome = "denied"
			}
			detail := p.Code
			if call.detail != "" {
				detail += ": " + call.detail
			}
			s.audit(ctx, r, actor, action, call.subject, outcome, detail)
			s.writeProblem(w, r, err)
			return
		}
		s.audit(ctx, r, actor, action, call.subject, "ok", call.detail)
		s.writeJSON(w, status, body)
	})
}

// subjectOf names what a request is about before it is authorised, so
// that a denied attempt on a device is filed under that device. Handlers
// refine it once they know more (the batch a manifest holds).
func subjectOf(r *http.Request) string {
	switch {
	case r.PathValue("identity") != "":
		return "device:" + truncate(r.PathValue("identity"), 80)
	case strings.HasPrefix(r.Pattern, "DELETE /v1/admin/tokens/"):
		return "token:" + truncate(r.PathValue("id"), 40)
	case strings.HasPrefix(r.Pattern, "GET /v1/admin/products/"):
		return "product:" + truncate(r.PathValue("id"), 80)
	}
	return r.URL.Path
}

// audit appends one event. A failure to audit is logged, not returned:
// the action has happened (or been refused) either way, and the log line
// keeps the event.
func (s *Server) audit(ctx context.Context, r *http.Request, actor, action, subject, outcome, detail string) {
	e := store.AuditEvent{
		Time: s.now().UTC(), Actor: actor, Action: action, Subject: subject,
		Outcome: outcome, Detail: detail, RemoteAddr: remoteAddr(r),
	}
	// The event must be written even if the client hung up.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := s.store.AppendAudit(ctx, e); err != nil {
		s.log.LogAttrs(ctx, slog.LevelError, "audit event lost", slog.String("request_id", requestID(ctx)),
			slog.String("actor", actor), slog.String("action", action), slog.String("subject", subject),
			slog.String("outcome", outcome), slog.String("error", err.Error()))
	}
}

// remoteAddr is the client's IP address as the connection shows it.
// Forwarding headers are ignored: the platform terminates TLS itself.
func remoteAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// writeJSON answers with v as JSON.
func (s *Server) writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		s.log.Error("encode response", "error", err)
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusInternalServerError)
		w.Write([]byte(`{"type":"` + ProblemTypeBase + `internal","title":"Internal error","status":500,"code":"internal"}` + "\n"))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(body, '\n'))
}
