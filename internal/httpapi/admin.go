package httpapi

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hallmark-iot/hallmark/internal/audit"
	"github.com/hallmark-iot/hallmark/internal/identity"
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

// admin builds the handler of an admin route: the per-address
// authentication back-off, bearer authentication, the scope check, the
// call, and its audit. An authenticated request is one audit event
// whatever the outcome; a refused anonymous one is counted, and reaches
// the log through the refusal aggregator (the first of an interval on its
// own, the rest as a summary), and one refused by the back-off touches no
// store at all.
func (s *Server) admin(action, scope string, fn adminFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		who, actor, ok := s.gate(w, r, action)
		if !ok {
			return
		}
		subject := subjectOf(r)
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

// gate admits an authenticated request, or answers it: 429 to an address
// locked out for failed authentications (before its token is looked up),
// 401 to a request without a valid token, 500 when the store fails.
func (s *Server) gate(w http.ResponseWriter, r *http.Request, action string) (who *caller, actor string, ok bool) {
	ctx := r.Context()
	addr := remoteAddr(r)
	if wait := s.authLimit.lockedFor(addr, s.now()); wait > 0 {
		s.refusals.Refuse(ctx, audit.Refusal{Interface: "admin", Action: action, Reason: "locked-out", Source: addr, SummaryOnly: true})
		secs := int((wait + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		s.writeProblem(w, r, problemf("rate-limited", "too many failed authentications from this address; retry in %d s", secs))
		return nil, "", false
	}
	who, actor, reason, err := s.authenticate(ctx, r)
	switch {
	case err != nil:
		s.audit(ctx, r, actor, action, subjectOf(r), "error", "internal: authentication failed")
		s.writeProblem(w, r, err)
		return nil, "", false
	case who == nil:
		// A request that presents no credential guesses nothing: it is
		// refused and aggregated, but does not count towards a lock-out.
		if reason != "no-token" {
			s.authLimit.fail(addr, s.now())
		}
		s.refusals.Refuse(ctx, audit.Refusal{Interface: "admin", Action: action, Reason: reason, Source: addr,
			Actor: actor, Subject: subjectOf(r)})
		s.writeProblem(w, r, errUnauthorized)
		return nil, "", false
	}
	return who, actor, true
}

// subjectOf names what a request is about before it is authorised, so
// that a denied attempt on a device is filed under that device; a value
// that is not a well-formed identifier is filed as invalid, never as
// given. Handlers refine it once they know more (the batch a manifest
// holds).
func subjectOf(r *http.Request) string {
	switch {
	case r.PathValue("identity") != "":
		return auditSubject("device:" + r.PathValue("identity"))
	case strings.HasPrefix(r.Pattern, "DELETE /v1/admin/tokens/"):
		return auditSubject("token:" + r.PathValue("id"))
	case strings.HasPrefix(r.Pattern, "GET /v1/admin/products/"):
		return auditSubject("product:" + r.PathValue("id"))
	}
	_, path, _ := strings.Cut(r.Pattern, " ")
	return auditSubject(path)
}

// invalidValue stands in the audit log for a value from outside that is
// not the identifier it should be.
const invalidValue = "(invalid)"

// auditSubject returns subject if it names a well-formed identifier of
// its kind (device:<identity>, station:<identity>, token:<id>,
// product:<slug>, batch:<name>) or is a route path, and otherwise its
// kind with the invalid marker: what an outsider typed into a URL never
// reaches the log as text.
func auditSubject(subject string) string {
	kind, value, found := strings.Cut(subject, ":")
	if !found {
		if pathPattern.MatchString(subject) {
			return subject
		}
		return invalidValue
	}
	var ok bool
	switch kind {
	case "device", "station":
		_, err := identity.Parse(value)
		ok = err == nil
	case "token":
		ok = tokenIDPattern.MatchString(value)
	case "product":
		ok = productIDPattern.MatchString(value)
	case "batch":
		ok = batchPattern.MatchString(value)
	default:
		return invalidValue
	}
	if !ok {
		return kind + ":" + invalidValue
	}
	return subject
}

// auditActor returns actor if it is one the admin API records
// (anonymous, system, token:<id>), and the invalid marker otherwise.
func auditActor(actor string) string {
	if id, ok := strings.CutPrefix(actor, "token:"); ok && tokenIDPattern.MatchString(id) {
		return actor
	}
	if actor == "anonymous" || actor == "system" {
		return actor
	}
	return invalidValue
}

// audit appends one event, its subject and actor checked and its text
// escaped (audit.Clean). A failure to audit is logged, not returned: the
// action has happened (or been refused) either way, and the log line
// keeps the event.
func (s *Server) audit(ctx context.Context, r *http.Request, actor, action, subject, outcome, detail string) {
	e := audit.Clean(store.AuditEvent{
		Time: s.now().UTC(), Actor: auditActor(actor), Action: action, Subject: auditSubject(subject),
		Outcome: outcome, Detail: detail, RemoteAddr: remoteAddr(r),
	})
	// The event must be written even if the client hung up.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := s.store.AppendAudit(ctx, e); err != nil {
		s.log.LogAttrs(ctx, slog.LevelError, "audit event lost", slog.String("request_id", requestID(ctx)),
			slog.String("actor", e.Actor), slog.String("action", e.Action), slog.String("subject", e.Subject),
			slog.String("outcome", e.Outcome), slog.String("error", err.Error()))
	}
}

// remoteAddr is the client's IP address as the connection shows it, in
// canonical form. Forwarding headers are ignored: the platform terminates
// TLS itself.
func remoteAddr(r *http.Request) string {
	return audit.Source(r.RemoteAddr)
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
