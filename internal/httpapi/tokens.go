package httpapi

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hallmark-iot/hallmark/internal/store"
)

// Token lifetimes: a default that forces rotation, and bounds.
const (
	defaultTokenTTL = 90 * 24 * time.Hour
	minTokenTTL     = time.Minute
	maxTokenTTL     = 8760 * time.Hour
	maxAuditField   = 512
)

func (s *Server) auditTokenRoutes() []Route {
	return []Route{
		{Method: "GET", Path: "/v1/admin/audit", Handler: s.admin("audit.list", ScopeAuditRead, s.listAudit), Doc: RouteDoc{
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
		{Method: "POST", Path: "/v1/admin/tokens", Handler: s.admin("token.create", ScopeTokensWrite, s.createToken), Doc: RouteDoc{
			OperationID: "createToken", Summary: "Create an admin token.", Tag: "tokens",
			Description: "The secret is in the response only; the server keeps its SHA-256. A token can grant only scopes it holds itself (admin holds all), and a token that expires can create only tokens that expire no later than it does (token-outlives-creator otherwise).",
			Auth:        AuthBearer, Scope: ScopeTokensWrite, Request: TokenRequest{},
			Responses: []Response{{Status: 201, Description: "Created.", Body: NewTokenResponse{}}},
			Problems:  []string{"token-outlives-creator"},
		}},
		{Method: "GET", Path: "/v1/admin/tokens", Handler: s.admin("token.list", ScopeTokensWrite, s.listTokens), Doc: RouteDoc{
			OperationID: "listTokens", Summary: "List admin tokens (never their secrets).", Tag: "tokens",
			Auth: AuthBearer, Scope: ScopeTokensWrite,
			Responses: []Response{{Status: 200, Description: "Every token, by ID.", Body: TokenList{}}},
		}},
		{Method: "DELETE", Path: "/v1/admin/tokens/{id}", Handler: s.admin("token.revoke", ScopeTokensWrite, s.revokeToken), Doc: RouteDoc{
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
	if after := q.Get("after"); after != "" {
		n, err := strconv.ParseInt(after, 10, 64)
		if err != nil || n < 0 || strconv.FormatInt(n, 10) != after {
			return f, fieldError("after", "must be a sequence number")
		}
		f.AfterSeq = n
	}
	var err error
	f.Limit, err = pageLimit(q.Get("limit"))
	return f, err
}

func (s *Server) listAudit(r *http.Request, _ *adminCall) (int, any, error) {
	f, err := auditFilter(r.URL.Query())
	if err != nil {
		return 0, nil, err
	}
	list, err := s.store.ListAudit(r.Context(), f)
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

func (req *TokenRequest) validate() error {
	if err := checkName("name", req.Name); err != nil {
		return err
	}
	if len(req.Scopes) == 0 {
		return fieldError("scopes", "at least one scope is required")
	}
	for i, sc := range req.Scopes {
		if !slices.Contains(Scopes(), sc) {
			return fieldError("scopes", "unknown scope %q (known: %v)", truncate(sc, 40), Scopes())
		}
		if slices.Contains(req.Scopes[:i], sc) {
			return fieldError("scopes", "scope %q given twice", sc)
		}
	}
	_, err := req.ttl()
	return err
}

func (req *TokenRequest) ttl() (time.Duration, error) {
	if req.TTL == "" {
		return defaultTokenTTL, nil
	}
	d, err := time.ParseDuration(req.TTL)
	if err != nil || d < minTokenTTL || d > maxTokenTTL {
		return 0, fieldError("ttl", "must be a Go duration from 1m to 8760h")
	}
	return d, nil
}

func (s *Server) createToken(r *http.Request, c *adminCall) (int, any, error) {
	var req TokenRequest
	if err := decodeJSON(r, MaxJSONBody, &req); err != nil {
		return 0, nil, err
	}
	if sc, missing := c.missingScope(req.Scopes); missing {
		return 0, nil, problemf("forbidden", "cannot grant scope %q: the token does not hold it", sc)
	}
	ttl, _ := req.ttl()
	now := s.now()
	if err := c.mayOutlive(now, ttl, req.TTL == ""); err != nil {
		return 0, nil, err
	}
	secret, t := newTokenAt(req.Name, req.Scopes, ttl, now)
	c.subject = "token:" + t.ID
	c.detail = "scopes " + strings.Join(t.Scopes, ",")
	if err := s.store.CreateToken(r.Context(), t); err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, NewTokenResponse{Token: tokenView(t), Secret: secret}, nil
}

// missingScope returns a scope of scopes the caller does not hold, if
// any. A token may grant, and may revoke a token holding, only scopes it
// holds itself (admin holds them all), so that it cannot mint a more
// powerful token than itself nor take a more powerful one away.
func (c *caller) missingScope(scopes []string) (string, bool) {
	for _, sc := range scopes {
		if !c.hasScope(sc) {
			return sc, true
		}
	}
	return "", false
}

// mayOutlive refuses a new token of lifetime ttl from now that would
// outlive the caller's token: a token that expires can only make tokens
// that expire no later, so that nothing it made keeps working (and
// minting) after it.
func (c *caller) mayOutlive(now time.Time, ttl time.Duration, byDefault bool) error {
	limit := c.token.ExpiresAt
	if limit.IsZero() || !now.Add(ttl).After(limit) {
		return nil
	}
	left := limit.Sub(now).Truncate(time.Second)
	if left < minTokenTTL {
		return problemf("token-outlives-creator", "this token expires at %s, in %s: too soon to create a token (the shortest ttl is %s)",
			limit.UTC().Format(time.RFC3339), left, minTokenTTL)
	}
	asked := "a ttl of " + ttl.String()
	if byDefault {
		asked = "the default ttl of " + ttl.String()
	}
	return problemf("token-outlives-creator", "%s would outlive this token, which expires at %s; give a ttl of at most %s",
		asked, limit.UTC().Format(time.RFC3339), left)
}

func (s *Server) listTokens(r *http.Request, _ *adminCall) (int, any, error) {
	list, err := s.store.ListTokens(r.Context())
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
	id := r.PathValue("id")
	c.subject = auditSubject("token:" + id)
	if !tokenIDPattern.MatchString(id) {
		return 0, nil, problemf("not-found", "no token %q", truncate(id, 40))
	}
	target, err := s.store.GetToken(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil, problemf("not-found", "no token %q", id)
	}
	if err != nil {
		return 0, nil, err
	}
	if sc, missing := c.missingScope(target.Scopes); missing {
		return 0, nil, problemf("forbidden", "cannot revoke token %s: it holds scope %q, which this token does not", id, sc)
	}
	err = s.store.RevokeToken(r.Context(), id, s.now().UTC())
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil, problemf("not-found", "no token %q", id)
	}
	if err != nil {
		return 0, nil, err
	}
	if target, err = s.store.GetToken(r.Context(), id); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, tokenView(target), nil
}

func tokenView(t store.Token) Token {
	scopes := t.Scopes
	if scopes == nil {
		scopes = []string{}
	}
	return Token{ID: t.ID, Name: t.Name, Scopes: scopes, CreatedAt: t.CreatedAt.UTC(),
		ExpiresAt: optionalTime(t.ExpiresAt), RevokedAt: optionalTime(t.RevokedAt)}
}
