package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hallmark-iot/hallmark/internal/admin"
	"github.com/hallmark-iot/hallmark/internal/audit"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// adminCall is one admin request in progress: who made it and, until a
// use case takes it over, what it is about, for the audit log.
type adminCall struct {
	caller admin.Caller
	// subject names what the action was on; it defaults to the path.
	subject string
	// handedOff is set once the call reached an admin use case, which
	// audits it from then on.
	handedOff bool
}

// use hands the call to an admin use case: it returns the caller to pass,
// with the subject known so far, and leaves the audit event to the use
// case.
func (c *adminCall) use() admin.Caller {
	c.handedOff = true
	caller := c.caller
	caller.Route = c.subject
	return caller
}

// adminFunc handles an authenticated, authorised admin request: it
// decodes the request, calls the use case (adminCall.use) and returns the
// status and body of a success, or an error.
type adminFunc func(r *http.Request, c *adminCall) (status int, body any, err error)

// admin builds the handler of an admin route: the per-address
// authentication back-off, bearer authentication, the scope check, the
// call, and the answer. An authenticated request is one audit event
// whatever the outcome, written before the response: by the use case
// once it has the call, here if the request is refused before (a missing
// scope, a body that does not decode). A refused anonymous one is
// counted, and reaches the log through the refusal aggregator (the first
// of an interval on its own, the rest as a summary), and one refused by
// the back-off touches no store at all.
func (s *Server) admin(action, scope string, fn adminFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		who, actor, ok := s.gate(w, r, action)
		if !ok {
			return
		}
		subject := subjectOf(r)
		if !who.HasScope(scope) {
			s.audit(ctx, r, actor, action, subject, "denied", "missing scope "+scope)
			s.writeProblem(w, r, problemf("forbidden", "the token lacks the scope %q", scope))
			return
		}
		call := &adminCall{caller: *who, subject: subject}
		status, body, err := fn(r, call)
		if err != nil {
			if !call.handedOff {
				p := problemFor(err)
				outcome := "error"
				if p.Status == http.StatusForbidden {
					outcome = "denied"
				}
				s.audit(ctx, r, actor, action, call.subject, outcome, p.Code)
			}
			s.writeProblem(w, r, err)
			return
		}
		if !call.handedOff {
			s.audit(ctx, r, actor, action, call.subject, "ok", "")
		}
		s.writeJSON(w, status, body)
	})
}

// gate admits an authenticated request, or answers it: 429 to an address
// locked out for failed authentications (before its token is looked up),
// 401 to a request without a valid token, 500 when the store fails.
func (s *Server) gate(w http.ResponseWriter, r *http.Request, action string) (who *admin.Caller, actor string, ok bool) {
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
// given. The use cases refine it once they know more (the batch a
// manifest holds).
func subjectOf(r *http.Request) string {
	switch {
	case r.PathValue("identity") != "":
		return audit.Subject("device:" + r.PathValue("identity"))
	case strings.HasPrefix(r.Pattern, "DELETE /v1/admin/tokens/"):
		return audit.Subject("token:" + r.PathValue("id"))
	case strings.HasPrefix(r.Pattern, "GET /v1/admin/products/"):
		return audit.Subject("product:" + r.PathValue("id"))
	}
	_, path, _ := strings.Cut(r.Pattern, " ")
	return audit.Subject(path)
}

// audit records one event of a request refused before it reached a use
// case, through the one builder and recorder (audit.Recorder).
func (s *Server) audit(ctx context.Context, r *http.Request, actor, action, subject, outcome, detail string) {
	s.rec.Record(ctx, store.AuditEvent{Time: s.now().UTC(), Actor: actor, Action: action, Subject: subject,
		Outcome: outcome, Detail: detail, RemoteAddr: remoteAddr(r)})
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
