package httpapi

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/hallmark-iot/hallmark/internal/atomicfile"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// Admin scopes. A route needs one; a token holding ScopeAdmin holds all.
const (
	ScopeStationsWrite   = "stations:write"
	ScopeProductsWrite   = "products:write"
	ScopeManifestsImport = "manifests:import"
	ScopeDevicesRead     = "devices:read"
	ScopeDevicesRevoke   = "devices:revoke"
	ScopeAuditRead       = "audit:read"
	ScopeTokensWrite     = "tokens:write"
	ScopeAdmin           = "admin"
)

// Scopes lists every scope a token may hold.
func Scopes() []string {
	return []string{ScopeStationsWrite, ScopeProductsWrite, ScopeManifestsImport, ScopeDevicesRead,
		ScopeDevicesRevoke, ScopeAuditRead, ScopeTokensWrite, ScopeAdmin}
}

// Token format: "hm_" + ID + "_" + secret. The ID is public (listings, the
// audit log); the secret is 32 random bytes in unpadded base64url, of which
// the store keeps only the SHA-256. The ID alphabet has no "_", so the
// first "_" after the prefix ends it even though base64url may use "_".
const (
	tokenPrefix     = "hm_"
	tokenIDLen      = 12
	tokenSecretSize = 32
	tokenIDAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
)

var tokenIDPattern = regexp.MustCompile(`^[a-z0-9]{8,16}$`)

// NewToken makes a token: the bearer string to hand to its holder once,
// and the record to store, which holds only the secret's hash. A zero ttl
// never expires.
func NewToken(name string, scopes []string, ttl time.Duration) (secret string, t store.Token) {
	return newTokenAt(name, scopes, ttl, time.Now())
}

func newTokenAt(name string, scopes []string, ttl time.Duration, now time.Time) (string, store.Token) {
	id := make([]byte, tokenIDLen)
	for i := range id {
		// rand.Text-style selection; 36 letters, the modulo bias of a
		// public identifier is harmless.
		var b [1]byte
		rand.Read(b[:])
		id[i] = tokenIDAlphabet[int(b[0])%len(tokenIDAlphabet)]
	}
	raw := make([]byte, tokenSecretSize)
	rand.Read(raw)
	t := store.Token{
		ID: string(id), Name: name, Hash: sha256.Sum256(raw),
		Scopes: slices.Clone(scopes), CreatedAt: now.UTC(),
	}
	if ttl > 0 {
		t.ExpiresAt = now.Add(ttl).UTC()
	}
	return tokenPrefix + string(id) + "_" + base64.RawURLEncoding.EncodeToString(raw), t
}

// parseBearer splits a bearer token into its ID and the secret's hash.
func parseBearer(token string) (id string, hash [32]byte, ok bool) {
	rest, found := strings.CutPrefix(token, tokenPrefix)
	if !found {
		return "", hash, false
	}
	id, secret, found := strings.Cut(rest, "_")
	if !found || !tokenIDPattern.MatchString(id) || len(secret) != base64.RawURLEncoding.EncodedLen(tokenSecretSize) {
		return "", hash, false
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(secret)
	if err != nil || len(raw) != tokenSecretSize {
		return "", hash, false
	}
	return id, sha256.Sum256(raw), true
}

// caller is an authenticated admin request.
type caller struct {
	token store.Token
}

// hasScope reports whether the caller's token grants scope.
func (c *caller) hasScope(scope string) bool {
	return slices.Contains(c.token.Scopes, ScopeAdmin) || slices.Contains(c.token.Scopes, scope)
}

// errUnauthorized is what every authentication failure looks like to the
// caller; the reason is in the audit log only, so a caller cannot tell an
// unknown token ID from a wrong secret.
var errUnauthorized = NewProblem("unauthorized", "a valid bearer token is required")

// authenticate checks the Authorization header. On failure it returns the
// actor to audit ("anonymous" or the claimed token, whose ID is
// well-formed) and the reason, a code of the closed set no-token,
// malformed-authorization, malformed-token, unknown-token (or a wrong
// secret), token-revoked, token-expired; an error means the store could
// not be asked.
func (s *Server) authenticate(ctx context.Context, r *http.Request) (who *caller, actor, reason string, err error) {
	h := r.Header.Values("Authorization")
	if len(h) == 0 {
		return nil, "anonymous", "no-token", nil
	}
	scheme, token, found := strings.Cut(h[0], " ")
	if len(h) != 1 || !found || !strings.EqualFold(scheme, "Bearer") {
		return nil, "anonymous", "malformed-authorization", nil
	}
	id, hash, ok := parseBearer(strings.TrimSpace(token))
	if !ok {
		return nil, "anonymous", "malformed-token", nil
	}
	actor = "token:" + id
	t, err := s.store.GetToken(ctx, id)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, actor, "", fmt.Errorf("read token: %w", err)
	}
	// Compare even for an unknown ID, so both take the same time.
	if subtle.ConstantTimeCompare(t.Hash[:], hash[:]) != 1 || err != nil {
		return nil, actor, "unknown-token", nil
	}
	now := s.now()
	switch {
	case !t.RevokedAt.IsZero() && !now.Before(t.RevokedAt):
		return nil, actor, "token-revoked", nil
	case !t.ExpiresAt.IsZero() && !now.Before(t.ExpiresAt):
		return nil, actor, "token-expired", nil
	}
	return &caller{token: t}, actor, "", nil
}

// EnsureBootstrapToken gives a fresh platform its first admin token: if the
// store holds no token, it makes one with the admin scope and writes its
// bearer string to path (mode 0600, replacing any stale file) before
// storing it, so a failure never leaves a stored token nobody holds. It
// reports whether it made one. The secret is never logged.
func EnsureBootstrapToken(ctx context.Context, st store.Store, path string) (created bool, err error) {
	tokens, err := st.ListTokens(ctx)
	if err != nil {
		return false, fmt.Errorf("bootstrap token: %w", err)
	}
	if len(tokens) > 0 {
		return false, nil
	}
	secret, t := NewToken("bootstrap", []string{ScopeAdmin}, 0)
	if err := atomicfile.Write(path, []byte(secret+"\n"), 0o600); err != nil {
		return false, fmt.Errorf("bootstrap token: %w", err)
	}
	if err := st.CreateToken(ctx, t); err != nil {
		return false, fmt.Errorf("bootstrap token: %w", err)
	}
	_, err = st.AppendAudit(ctx, store.AuditEvent{
		Time: t.CreatedAt, Actor: "system", Action: "token.create", Subject: "token:" + t.ID,
		Outcome: "ok", Detail: "bootstrap admin token written to " + path,
	})
	if err != nil {
		return true, fmt.Errorf("bootstrap token: audit: %w", err)
	}
	return true, nil
}
