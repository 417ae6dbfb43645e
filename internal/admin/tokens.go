package admin

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hallmark-iot/hallmark/internal/atomicfile"
	"github.com/hallmark-iot/hallmark/internal/audit"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// Admin scopes. A call needs one; a token holding ScopeAdmin holds all.
const (
	ScopeStationsWrite   = "stations:write"
	ScopeProductsWrite   = "products:write"
	ScopeManifestsImport = "manifests:import"
	ScopeDevicesRead     = "devices:read"
	// ScopeDevicesSuspend suspends and resumes devices: quarantine, which
	// an operator undoes.
	ScopeDevicesSuspend = "devices:suspend"
	// ScopeDevicesRevoke revokes, decommissions and reprovisions devices:
	// the transitions that end certificates for good, and the one that
	// undoes a decommission (docs/lifecycle.md).
	ScopeDevicesRevoke = "devices:revoke"
	ScopeAuditRead     = "audit:read"
	ScopeTokensWrite   = "tokens:write"
	ScopeAdmin         = "admin"
)

// Update campaign scopes (internal/campaign): write creates, pauses,
// resumes and cancels; read lists and follows them.
const ScopeCampaignsWrite, ScopeCampaignsRead = "campaigns:write", "campaigns:read"

// Firmware repository scopes (internal/firmwarerepo): write uploads
// images; read lists and describes them.
const ScopeFirmwareWrite, ScopeFirmwareRead = "firmware:write", "firmware:read"

// Scopes lists every scope a token may hold.
func Scopes() []string {
	return []string{ScopeStationsWrite, ScopeProductsWrite, ScopeManifestsImport, ScopeDevicesRead,
		ScopeDevicesSuspend, ScopeDevicesRevoke, ScopeAuditRead, ScopeTokensWrite, ScopeAdmin,
		ScopeCampaignsWrite, ScopeCampaignsRead, ScopeFirmwareWrite, ScopeFirmwareRead}
}

// Token lifetimes: a default that forces rotation, and bounds.
const (
	DefaultTokenTTL = 90 * 24 * time.Hour
	MinTokenTTL     = time.Minute
	MaxTokenTTL     = 8760 * time.Hour
)

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

// NewToken makes a token: the bearer string to hand to its holder once,
// and the record to store, which holds only the secret's hash. A zero ttl
// never expires.
func NewToken(name string, scopes []string, ttl time.Duration) (secret string, t store.Token) {
	return newTokenAt(name, scopes, ttl, time.Now())
}

func newTokenAt(name string, scopes []string, ttl time.Duration, now time.Time) (string, store.Token) {
	id := make([]byte, tokenIDLen)
	for i := range id {
		// 36 letters: the modulo bias of a public identifier is harmless.
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

// ParseBearer splits a bearer token into its ID and the secret's hash.
func ParseBearer(token string) (id string, hash [32]byte, ok bool) {
	rest, found := strings.CutPrefix(token, tokenPrefix)
	if !found {
		return "", hash, false
	}
	id, secret, found := strings.Cut(rest, "_")
	if !found || !audit.TokenIDPattern.MatchString(id) || len(secret) != base64.RawURLEncoding.EncodedLen(tokenSecretSize) {
		return "", hash, false
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(secret)
	if err != nil || len(raw) != tokenSecretSize {
		return "", hash, false
	}
	return id, sha256.Sum256(raw), true
}

// HasScope reports whether the caller's token grants scope.
func (c Caller) HasScope(scope string) bool {
	return slices.Contains(c.Token.Scopes, ScopeAdmin) || slices.Contains(c.Token.Scopes, scope)
}

// missingScope returns a scope of scopes the caller does not hold, if
// any. A token may grant, and may revoke a token holding, only scopes it
// holds itself (admin holds them all), so that it cannot mint a more
// powerful token than itself nor take a more powerful one away.
func (c Caller) missingScope(scopes []string) (string, bool) {
	for _, sc := range scopes {
		if !c.HasScope(sc) {
			return sc, true
		}
	}
	return "", false
}

// mayOutlive refuses a new token of lifetime ttl from now that would
// outlive the caller's token: a token that expires can only make tokens
// that expire no later, so that nothing it made keeps working (and
// minting) after it.
func (c Caller) mayOutlive(now time.Time, ttl time.Duration, byDefault bool) error {
	limit := c.Token.ExpiresAt
	if limit.IsZero() || !now.Add(ttl).After(limit) {
		return nil
	}
	left := limit.Sub(now).Truncate(time.Second)
	if left < MinTokenTTL {
		return Errorf(CodeTokenOutlivesCreator, "this token expires at %s, in %s: too soon to create a token (the shortest ttl is %s)",
			limit.UTC().Format(time.RFC3339), left, MinTokenTTL)
	}
	asked := "a ttl of " + ttl.String()
	if byDefault {
		asked = "the default ttl of " + ttl.String()
	}
	return Errorf(CodeTokenOutlivesCreator, "%s would outlive this token, which expires at %s; give a ttl of at most %s",
		asked, limit.UTC().Format(time.RFC3339), left)
}

// TokenStore is what the token use cases ask of the store.
type TokenStore interface {
	CreateToken(ctx context.Context, t store.Token) error
	GetToken(ctx context.Context, id string) (store.Token, error)
	ListTokens(ctx context.Context) ([]store.Token, error)
	RevokeToken(ctx context.Context, id string, at time.Time) error
}

// Tokens owns admin tokens: authenticating them, creating, listing and
// revoking them, and the bootstrap token of a fresh platform.
type Tokens struct {
	base
	store TokenStore
}

// NewTokens returns the token use cases on st.
func NewTokens(st TokenStore, rec *audit.Recorder, now func() time.Time) *Tokens {
	return &Tokens{base: newBase(rec, now), store: st}
}

// Reasons an authentication is refused, beyond those of the front door
// (no credential, a malformed header): the closed set the audit log and
// the refusal metrics use.
const (
	ReasonMalformedToken = "malformed-token"
	ReasonUnknownToken   = "unknown-token" // or a wrong secret: the caller cannot tell
	ReasonTokenRevoked   = "token-revoked"
	ReasonTokenExpired   = "token-expired"
)

// AuthError is a refused authentication. Its reason is for the audit
// log only: every refusal looks alike to the caller, so that it cannot
// tell an unknown token ID from a wrong secret.
type AuthError struct {
	Reason string
}

func (e *AuthError) Error() string { return "authentication refused: " + e.Reason }

// Authenticate returns the caller a bearer token identifies, and the
// actor to audit whatever the outcome: anonymous, or the claimed token
// (whose ID is well-formed). A refusal is an *AuthError; any other error
// means the store could not be asked.
func (t *Tokens) Authenticate(ctx context.Context, bearer string) (c Caller, actor string, err error) {
	id, hash, ok := ParseBearer(bearer)
	if !ok {
		return Caller{}, "anonymous", &AuthError{ReasonMalformedToken}
	}
	actor = "token:" + id
	tok, err := t.store.GetToken(ctx, id)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return Caller{}, actor, fmt.Errorf("read token: %w", err)
	}
	// Compare even for an unknown ID, so both take the same time.
	if subtle.ConstantTimeCompare(tok.Hash[:], hash[:]) != 1 || err != nil {
		return Caller{}, actor, &AuthError{ReasonUnknownToken}
	}
	if reason := tokenRefusal(tok, t.now()); reason != "" {
		return Caller{}, actor, &AuthError{reason}
	}
	return Caller{Token: tok}, actor, nil
}

// tokenRefusal is why a stored token no longer authenticates at now
// (ReasonTokenRevoked, ReasonTokenExpired), or "" while it does: the rule
// of Authenticate, and of a console session that re-checks its token.
func tokenRefusal(tok store.Token, now time.Time) string {
	switch {
	case !tok.RevokedAt.IsZero() && !now.Before(tok.RevokedAt):
		return ReasonTokenRevoked
	case !tok.ExpiresAt.IsZero() && !now.Before(tok.ExpiresAt):
		return ReasonTokenExpired
	}
	return ""
}

// TokenRequest asks for a new token.
type TokenRequest struct {
	Name   string
	Scopes []string
	// TTL is a Go duration from MinTokenTTL to MaxTokenTTL; empty selects
	// DefaultTokenTTL.
	TTL string
}

// Validate checks the request against the token rules: a printable
// name, at least one known scope, none twice, a lifetime within bounds.
func (req TokenRequest) Validate() error {
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
	_, err := req.Lifetime()
	return err
}

// Lifetime is the requested TTL, or DefaultTokenTTL when none is given.
func (req TokenRequest) Lifetime() (time.Duration, error) {
	if req.TTL == "" {
		return DefaultTokenTTL, nil
	}
	d, err := time.ParseDuration(req.TTL)
	if err != nil || d < MinTokenTTL || d > MaxTokenTTL {
		return 0, fieldError("ttl", "must be a Go duration from 1m to 8760h")
	}
	return d, nil
}

// Create mints a token for the caller: only scopes it holds, expiring no
// later than its own token. It returns the bearer string, shown once,
// and the record stored, which holds only the secret's hash.
func (t *Tokens) Create(ctx context.Context, caller Caller, req TokenRequest) (secret string, tok store.Token, err error) {
	c := caller.begin(ActionTokenCreate)
	defer func() { err = t.finish(ctx, c, err) }()
	if err := req.Validate(); err != nil {
		return "", store.Token{}, err
	}
	if sc, missing := c.missingScope(req.Scopes); missing {
		return "", store.Token{}, Errorf(CodeForbidden, "cannot grant scope %q: the token does not hold it", sc)
	}
	ttl, _ := req.Lifetime()
	now := t.now()
	if err := c.mayOutlive(now, ttl, req.TTL == ""); err != nil {
		return "", store.Token{}, err
	}
	secret, tok = newTokenAt(req.Name, req.Scopes, ttl, now)
	c.subject = "token:" + tok.ID
	c.detail = "scopes " + strings.Join(tok.Scopes, ",")
	if err := t.store.CreateToken(ctx, tok); err != nil {
		return "", store.Token{}, err
	}
	return secret, tok, nil
}

// List returns every token, by ID (never a secret: only hashes are kept).
func (t *Tokens) List(ctx context.Context, caller Caller) (_ []store.Token, err error) {
	c := caller.begin(ActionTokenList)
	defer func() { err = t.finish(ctx, c, err) }()
	return t.store.ListTokens(ctx)
}

// Revoke revokes the token id, which must hold no scope the caller lacks,
// and returns it as revoked.
func (t *Tokens) Revoke(ctx context.Context, caller Caller, id string) (_ store.Token, err error) {
	c := caller.begin(ActionTokenRevoke)
	defer func() { err = t.finish(ctx, c, err) }()
	c.subject = "token:" + id
	if !audit.TokenIDPattern.MatchString(id) {
		return store.Token{}, Errorf(CodeNotFound, "no token %q", truncate(id, 40))
	}
	target, err := t.store.GetToken(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.Token{}, Errorf(CodeNotFound, "no token %q", id)
	}
	if err != nil {
		return store.Token{}, err
	}
	if sc, missing := c.missingScope(target.Scopes); missing {
		return store.Token{}, Errorf(CodeForbidden, "cannot revoke token %s: it holds scope %q, which this token does not", id, sc)
	}
	err = t.store.RevokeToken(ctx, id, t.now().UTC())
	if errors.Is(err, store.ErrNotFound) {
		return store.Token{}, Errorf(CodeNotFound, "no token %q", id)
	}
	if err != nil {
		return store.Token{}, err
	}
	return t.store.GetToken(ctx, id)
}

// EnsureBootstrapToken gives a fresh platform its first admin token: if the
// store holds no token, it makes one with the admin scope and writes its
// bearer string to path (mode 0600, replacing any stale file) before
// storing it, so a failure never leaves a stored token nobody holds. It
// reports whether it made one. The secret is never logged.
func (t *Tokens) EnsureBootstrapToken(ctx context.Context, path string) (created bool, err error) {
	tokens, err := t.store.ListTokens(ctx)
	if err != nil {
		return false, fmt.Errorf("bootstrap token: %w", err)
	}
	if len(tokens) > 0 {
		return false, nil
	}
	secret, tok := newTokenAt("bootstrap", []string{ScopeAdmin}, 0, t.now())
	if err := atomicfile.Write(path, []byte(secret+"\n"), 0o600); err != nil {
		return false, fmt.Errorf("bootstrap token: %w", err)
	}
	if err := t.store.CreateToken(ctx, tok); err != nil {
		return false, fmt.Errorf("bootstrap token: %w", err)
	}
	err = t.rec.Append(ctx, store.AuditEvent{Time: tok.CreatedAt, Actor: "system", Action: ActionTokenCreate,
		Subject: "token:" + tok.ID, Outcome: "ok", Detail: "bootstrap admin token written to " + path})
	if err != nil {
		return true, fmt.Errorf("bootstrap token: audit: %w", err)
	}
	return true, nil
}
