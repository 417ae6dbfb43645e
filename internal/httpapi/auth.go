package httpapi

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/hallmark-iot/hallmark/internal/admin"
)

// Admin scopes, as internal/admin defines them: a route needs one; a
// token holding ScopeAdmin holds all.
const (
	ScopeStationsWrite   = admin.ScopeStationsWrite
	ScopeProductsWrite   = admin.ScopeProductsWrite
	ScopeManifestsImport = admin.ScopeManifestsImport
	ScopeDevicesRead     = admin.ScopeDevicesRead
	ScopeDevicesSuspend  = admin.ScopeDevicesSuspend
	ScopeDevicesRevoke   = admin.ScopeDevicesRevoke
	ScopeAuditRead       = admin.ScopeAuditRead
	ScopeTokensWrite     = admin.ScopeTokensWrite
	ScopeAdmin           = admin.ScopeAdmin
)

// Scopes lists every scope a token may hold.
func Scopes() []string { return admin.Scopes() }

// errUnauthorized is what every authentication failure looks like to the
// caller; the reason is in the audit log only, so a caller cannot tell an
// unknown token ID from a wrong secret.
var errUnauthorized = NewProblem("unauthorized", "a valid bearer token is required")

// authenticate reads the Authorization header and has the token use
// cases check the bearer token. On a refusal who is nil, and actor
// ("anonymous" or the claimed token, whose ID is well-formed) and reason
// say what to audit: no-token, malformed-authorization, or a reason of
// admin.AuthError. An error means the store could not be asked.
func (s *Server) authenticate(ctx context.Context, r *http.Request) (who *admin.Caller, actor, reason string, err error) {
	h := r.Header.Values("Authorization")
	if len(h) == 0 {
		return nil, "anonymous", "no-token", nil
	}
	scheme, token, found := strings.Cut(h[0], " ")
	if len(h) != 1 || !found || !strings.EqualFold(scheme, "Bearer") {
		return nil, "anonymous", "malformed-authorization", nil
	}
	c, actor, err := s.svc.Tokens.Authenticate(ctx, strings.TrimSpace(token))
	var refused *admin.AuthError
	switch {
	case errors.As(err, &refused):
		return nil, actor, refused.Reason, nil
	case err != nil:
		return nil, actor, "", err
	}
	c.Addr = remoteAddr(r)
	return &c, actor, "", nil
}

// parseBearer is admin.ParseBearer, for the client's check of a token's
// shape before it is sent.
func parseBearer(token string) (id string, hash [32]byte, ok bool) { return admin.ParseBearer(token) }
