package httpapi

import (
	"net/http"
	"net/url"
	"strconv"

	"github.com/hallmark-iot/hallmark/internal/admin"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// maxAuditField bounds a text filter of the audit log, in bytes.
const maxAuditField = 512

func (s *Server) auditTokenRoutes() []Route {
	return []Route{
		{Method: "GET", Path: "/v1/admin/audit", Handler: s.admin(admin.ActionAuditList, ScopeAuditRead, s.listAudit), Doc: RouteDoc{
			OperationID: "listAudit", Summary: "Read the audit log, oldest first, one page at a time.", Tag: "audit",
			Auth: AuthBearer, Scope: ScopeAuditRead,
			Query: []Param{
				{Name: "actor", Description: "Only events by this actor, e.g. token:abc123def456 or device:<identity>."},
				{Name: "action", Description: "Only events of this action, e.g. manifest.import."},
				{Name: "subject", Description: "Only events about this subject."},
				{Name: "after", Type: "integer", Description: "The last seq of the previous page."},
				limitParam,
			},
			Responses: []Response{{Status: 200, Description: "One page.", Body: AuditList{}}},
		}},
		{Method: "POST", Path: "/v1/admin/tokens", Handler: s.admin(admin.ActionTokenCreate, ScopeTokensWrite, s.createToken), Doc: RouteDoc{
			OperationID: "createToken", Summary: "Create an admin token.", Tag: "tokens",
			Description: "The secret is in the response only; the server keeps its SHA-256. A token can grant only scopes it holds itself (admin holds all), and a token that expires can create only tokens that expire no later than it does (token-outlives-creator otherwise).",
			Auth:        AuthBearer, Scope: ScopeTokensWrite, Request: TokenRequest{},
			Responses: []Response{{Status: 201, Description: "Created.", Body: NewTokenResponse{}}},
			Problems:  []string{"token-outlives-creator"},
		}},
		{Method: "GET", Path: "/v1/admin/tokens", Handler: s.admin(admin.ActionTokenList, ScopeTokensWrite, s.listTokens), Doc: RouteDoc{
			OperationID: "listTokens", Summary: "List admin tokens (never their secrets).", Tag: "tokens",
			Auth: AuthBearer, Scope: ScopeTokensWrite,
			Responses: []Response{{Status: 200, Description: "Every token, by ID.", Body: TokenList{}}},
		}},
		{Method: "DELETE", Path: "/v1/admin/tokens/{id}", Handler: s.admin(admin.ActionTokenRevoke, ScopeTokensWrite, s.revokeToken), Doc: RouteDoc{
			OperationID: "revokeToken", Summary: "Revoke an admin token.", Tag: "tokens",
			Description: "The token is refused from then on. It stays listed, with revoked_at. A token can revoke only tokens whose every scope it holds itself (admin holds all): a narrow tokens:write token cannot revoke an admin token (forbidden).",
			Auth:        AuthBearer, Scope: ScopeTokensWrite, PathParams: tokenParam,
			Responses: []Response{{Status: 200, Description: "Revoked.", Body: Token{}}},
			Problems:  []string{"not-found"},
		}},
	}
}

func auditFilter(q url.Values) (store.AuditFilter, error) {
	f := store.AuditFilter{Actor: q.Get("actor"), Action: q.Get("action"), Subject: q.Get("subject")}
	for name, v := range map[string]string{"actor": f.Actor, "action": f.Action, "subject": f.Subject} {
		if len(v) > maxAuditField {
			return f, fieldError(name, "longer than %d bytes", maxAuditField)
		}
	}
	var err error
	if f.AfterSeq, err = afterSeq(q.Get("after")); err != nil {
		return f, err
	}
	f.Limit, err = pageLimit(q.Get("limit"))
	return f, err
}

// afterSeq reads the after parameter of a log read by sequence number
// (the audit log, the device events): empty is from the start.
func afterSeq(v string) (int64, error) {
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != v {
		return 0, fieldError("after", "must be a sequence number")
	}
	return n, nil
}

func (s *Server) listAudit(r *http.Request, c *adminCall) (int, any, error) {
	f, err := auditFilter(r.URL.Query())
	if err != nil {
		return 0, nil, err
	}
	list, err := s.svc.Audit.List(r.Context(), c.use(), f)
	if err != nil {
		return 0, nil, err
	}
	out := AuditList{Events: make([]AuditEvent, 0, len(list))}
	for _, e := range list {
		out.Events = append(out.Events, AuditEvent{
			Seq: e.Seq, Time: e.Time.UTC(), Actor: e.Actor, Action: e.Action, Subject: e.Subject,
			Outcome: e.Outcome, Detail: e.Detail, RemoteAddr: e.RemoteAddr,
		})
	}
	if len(list) == f.Limit {
		out.Next = list[len(list)-1].Seq
	}
	return http.StatusOK, out, nil
}

func (req *TokenRequest) validate() error { return admin.TokenRequest(*req).Validate() }

func (s *Server) createToken(r *http.Request, c *adminCall) (int, any, error) {
	var req TokenRequest
	if err := decodeJSON(r, MaxJSONBody, &req); err != nil {
		return 0, nil, err
	}
	secret, t, err := s.svc.Tokens.Create(r.Context(), c.use(), admin.TokenRequest(req))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, NewTokenResponse{Token: tokenView(t), Secret: secret}, nil
}

func (s *Server) listTokens(r *http.Request, c *adminCall) (int, any, error) {
	list, err := s.svc.Tokens.List(r.Context(), c.use())
	if err != nil {
		return 0, nil, err
	}
	out := TokenList{Tokens: make([]Token, 0, len(list))}
	for _, t := range list {
		out.Tokens = append(out.Tokens, tokenView(t))
	}
	return http.StatusOK, out, nil
}

func (s *Server) revokeToken(r *http.Request, c *adminCall) (int, any, error) {
	t, err := s.svc.Tokens.Revoke(r.Context(), c.use(), r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, tokenView(t), nil
}

func tokenView(t store.Token) Token {
	scopes := t.Scopes
	if scopes == nil {
		scopes = []string{}
	}
	return Token{ID: t.ID, Name: t.Name, Scopes: scopes, CreatedAt: t.CreatedAt.UTC(),
		ExpiresAt: optionalTime(t.ExpiresAt), RevokedAt: optionalTime(t.RevokedAt)}
}
