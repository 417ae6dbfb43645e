package admin

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// The operators' web console (internal/console) signs operators in with
// their API tokens and reads what the API does not offer on its own: the
// fleet at a glance, the batches, the event log and a device's last
// report. Its use cases live here, so that the console only decodes,
// calls and renders, as the API does.

// Audit actions of the console's use cases.
const (
	ActionConsoleSignIn  = "console.signin"
	ActionConsoleSignOut = "console.signout"
	ActionFleetSummary   = "fleet.summary"
	ActionBatchList      = "batch.list"
	// ActionEventList is the API's action for reading the event log
	// (GET /v1/admin/events): one action whatever the front door.
	ActionEventList = "event.list"
)

// CodeUnauthorized refuses a sign-in or a request without a live session.
// Like the API's, it never says why: the audit log does.
const CodeUnauthorized = "unauthorized"

// Console defaults.
const (
	// DefaultSessionLifetime is how long a console session lasts, never
	// past its token's expiry.
	DefaultSessionLifetime = 8 * time.Hour
	// DefaultSummaryTTL is how long a fleet summary is reused: the
	// overview is read often and a summary of a million devices is a few
	// aggregates, too many to run on every page view.
	DefaultSummaryTTL = 10 * time.Second
	// DefaultExpiringWithin and DefaultSilentAfter are what the summary
	// counts as expiring soon and silent: the longest of the default
	// expiry thresholds, and a day.
	DefaultExpiringWithin = 30 * 24 * time.Hour
	DefaultSilentAfter    = 24 * time.Hour
)

// SessionSecretSize is the size of a session's secret, the cookie's
// value; the store keeps only its SHA-256.
const SessionSecretSize = 32

// SessionSecret is what a browser holds for its session.
type SessionSecret [SessionSecretSize]byte

// Hash is what the store keeps of the secret: a copy of the database
// signs nobody in.
func (s SessionSecret) Hash() [32]byte { return sha256.Sum256(s[:]) }

// Session is one operator signed in to the console.
type Session struct {
	Secret SessionSecret
	// Caller is the operator as the admin use cases take it: the token
	// as it is now (its scopes read afresh on every request).
	Caller    Caller
	ExpiresAt time.Time
}

// ConsoleStore is what the console's use cases ask of the store.
type ConsoleStore interface {
	GetToken(ctx context.Context, id string) (store.Token, error)
	CreateConsoleSession(ctx context.Context, s store.ConsoleSession) error
	GetConsoleSession(ctx context.Context, idHash [32]byte) (store.ConsoleSession, error)
	DeleteConsoleSession(ctx context.Context, idHash [32]byte) error
	DeleteExpiredConsoleSessions(ctx context.Context, before time.Time) (int, error)
	ListBatches(ctx context.Context, f store.BatchFilter) ([]store.Batch, error)
	FleetSummary(ctx context.Context, now time.Time, within, silence time.Duration) (store.FleetSummary, error)
	ListEvents(ctx context.Context, f store.EventFilter) ([]store.DeviceEvent, error)
	GetStatus(ctx context.Context, id identity.ID) (store.DeviceStatus, error)
	GetLineage(ctx context.Context, id identity.ID) (store.DeviceLineage, error)
}

// ConsoleConfig configures the console's use cases; zero fields take the
// defaults.
type ConsoleConfig struct {
	SessionLifetime time.Duration
	SummaryTTL      time.Duration
	ExpiringWithin  time.Duration
	SilentAfter     time.Duration
}

// Console owns the console's sessions and the reads only the console
// makes.
type Console struct {
	base
	store  ConsoleStore
	tokens *Tokens
	cfg    ConsoleConfig

	// summaryMu guards the summary; the first one is computed under it,
	// so a burst of first views runs one set of aggregates, not one
	// each. Later ones are refreshed in the background (FleetSummary).
	summaryMu  sync.Mutex
	summary    store.FleetSummary
	summaryAt  time.Time // zero: none yet
	refreshing bool
	// refreshed counts background refreshes running, for tests.
	refreshed sync.WaitGroup
}

// summaryRefreshTimeout bounds a background refresh of the summary.
const summaryRefreshTimeout = time.Minute

// NewConsole returns the console's use cases on st. They audit through
// tokens' recorder and read its clock, and sign in with its rules.
func NewConsole(st ConsoleStore, tokens *Tokens, cfg ConsoleConfig) *Console {
	if cfg.SessionLifetime <= 0 {
		cfg.SessionLifetime = DefaultSessionLifetime
	}
	if cfg.SummaryTTL <= 0 {
		cfg.SummaryTTL = DefaultSummaryTTL
	}
	if cfg.ExpiringWithin <= 0 {
		cfg.ExpiringWithin = DefaultExpiringWithin
	}
	if cfg.SilentAfter <= 0 {
		cfg.SilentAfter = DefaultSilentAfter
	}
	return &Console{base: tokens.base, store: st, tokens: tokens, cfg: cfg}
}

// Now is the console's clock, the one sessions expire by.
func (cn *Console) Now() time.Time { return cn.now() }

// SessionLifetime is the configured lifetime of a session.
func (cn *Console) SessionLifetime() time.Duration { return cn.cfg.SessionLifetime }

// SummaryTTL is how long a fleet summary is reused.
func (cn *Console) SummaryTTL() time.Duration { return cn.cfg.SummaryTTL }

// The console's paths, as its audit events name them (audit.Subject
// takes route paths).
const (
	consolePath       = "/console"
	consoleSignInPath = consolePath + "/signin"
)

// errNoSession is every refusal of a session, whatever the cause.
func errNoSession() *Error { return Errorf(CodeUnauthorized, "sign in with an API token") }

// SignIn opens a session for the holder of an API token, by the rules of
// Tokens.Authenticate (format, constant-time comparison, expiry,
// revocation). The session lasts the configured lifetime, never past the
// token's expiry. A refused token is audited as a denied console.signin
// naming the reason, and answered with CodeUnauthorized only.
func (cn *Console) SignIn(ctx context.Context, bearer, addr string) (_ Session, err error) {
	caller, actor, err := cn.tokens.Authenticate(ctx, bearer)
	var refused *AuthError
	switch {
	case errors.As(err, &refused):
		cn.rec.Record(ctx, store.AuditEvent{Actor: actor, Action: ActionConsoleSignIn, Subject: consoleSignInPath,
			Outcome: "denied", Detail: refused.Reason, RemoteAddr: addr})
		return Session{}, errNoSession()
	case err != nil:
		cn.rec.Record(ctx, store.AuditEvent{Actor: actor, Action: ActionConsoleSignIn, Subject: consoleSignInPath,
			Outcome: "error", Detail: CodeInternal, RemoteAddr: addr})
		return Session{}, &Error{Code: CodeInternal, Err: err}
	}
	caller.Addr = addr
	c := caller.begin(ActionConsoleSignIn)
	defer func() { err = cn.finish(ctx, c, err) }()
	c.subject = consoleSignInPath
	now := cn.now().UTC()
	expires := now.Add(cn.cfg.SessionLifetime)
	if exp := caller.Token.ExpiresAt; !exp.IsZero() && exp.Before(expires) {
		expires = exp
	}
	var secret SessionSecret
	if _, err := rand.Read(secret[:]); err != nil {
		return Session{}, fmt.Errorf("session secret: %w", err)
	}
	// Sign-ins are rare: a good time to forget the sessions that ended
	// without a sign-out, so the table holds live ones and a few more.
	if _, err := cn.store.DeleteExpiredConsoleSessions(ctx, now); err != nil {
		return Session{}, err
	}
	err = cn.store.CreateConsoleSession(ctx, store.ConsoleSession{IDHash: secret.Hash(), TokenID: caller.Token.ID,
		CreatedAt: now, ExpiresAt: expires, RemoteAddr: truncate(addr, store.MaxSessionRemoteAddr-len("…"))})
	if err != nil {
		return Session{}, err
	}
	c.detail = "session until " + expires.Format(time.RFC3339)
	return Session{Secret: secret, Caller: caller, ExpiresAt: expires}, nil
}

// Authenticate returns the live session of secret, its token read afresh:
// a session past its expiry, or whose token was revoked or expired since,
// is ended (deleted) and refused. Every refusal is CodeUnauthorized; the
// end of a session by its token's fate is audited once, when it is
// noticed. The lookup is by the secret's SHA-256, so its timing tells
// nothing of any stored secret.
func (cn *Console) Authenticate(ctx context.Context, secret SessionSecret, addr string) (Session, error) {
	hash := secret.Hash()
	s, err := cn.store.GetConsoleSession(ctx, hash)
	if errors.Is(err, store.ErrNotFound) {
		return Session{}, errNoSession()
	}
	if err != nil {
		return Session{}, &Error{Code: CodeInternal, Err: err}
	}
	now := cn.now()
	if !now.Before(s.ExpiresAt) {
		return Session{}, cn.end(ctx, hash)
	}
	tok, err := cn.store.GetToken(ctx, s.TokenID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return Session{}, cn.end(ctx, hash)
	case err != nil:
		return Session{}, &Error{Code: CodeInternal, Err: err}
	}
	if reason := tokenRefusal(tok, now); reason != "" {
		cn.rec.Record(ctx, store.AuditEvent{Actor: "token:" + tok.ID, Action: ActionConsoleSignOut, Subject: consolePath,
			Outcome: "denied", Detail: "session ended: " + reason, RemoteAddr: addr})
		return Session{}, cn.end(ctx, hash)
	}
	return Session{Secret: secret, Caller: Caller{Token: tok, Addr: addr}, ExpiresAt: s.ExpiresAt}, nil
}

// end deletes a session that may no longer be used and returns the
// refusal to answer with.
func (cn *Console) end(ctx context.Context, hash [32]byte) error {
	if err := cn.store.DeleteConsoleSession(ctx, hash); err != nil {
		return &Error{Code: CodeInternal, Err: err}
	}
	return errNoSession()
}

// SignOut ends s: deleted from the store, so its cookie opens nothing
// even if kept.
func (cn *Console) SignOut(ctx context.Context, s Session) (err error) {
	c := s.Caller.begin(ActionConsoleSignOut)
	defer func() { err = cn.finish(ctx, c, err) }()
	c.subject = consolePath + "/signout"
	return cn.store.DeleteConsoleSession(ctx, s.Secret.Hash())
}

// Authorize refuses, with CodeForbidden and a denied audit event of
// action on subject (the caller's route when ""), a caller whose token
// lacks scope: the admin use cases leave the scope of a call to the front
// door, as the API's route table does.
func (cn *Console) Authorize(ctx context.Context, caller Caller, action, subject, scope string) error {
	if caller.HasScope(scope) {
		return nil
	}
	if subject == "" {
		subject = caller.Route
	}
	cn.rec.Record(ctx, store.AuditEvent{Actor: caller.Actor(), Action: action, Subject: subject,
		Outcome: "denied", Detail: "missing scope " + scope, RemoteAddr: caller.Addr})
	return Errorf(CodeForbidden, "this token lacks the scope %q", scope)
}

// require is Authorize inside a call, whose one event records the
// refusal.
func require(c *call, scope string) error {
	if c.HasScope(scope) {
		return nil
	}
	c.detail = "missing scope " + scope
	return Errorf(CodeForbidden, "this token lacks the scope %q", scope)
}

// FleetSummary returns the fleet at a glance (scope devices:read): the
// store's summary, computed at most once per SummaryTTL for all callers,
// so that the overview answers at once however large the fleet. Its
// aggregates take a few hundred milliseconds with a million devices
// (docs/performance.md), so no view waits for them but the very first:
// a view that finds the summary stale gets it as it is (its At says how
// old) and starts one refresh in the background for the views after.
func (cn *Console) FleetSummary(ctx context.Context, caller Caller) (_ store.FleetSummary, err error) {
	c := caller.begin(ActionFleetSummary)
	defer func() { err = cn.finish(ctx, c, err) }()
	c.subject = consolePath
	if err := require(c, ScopeDevicesRead); err != nil {
		return store.FleetSummary{}, err
	}
	cn.summaryMu.Lock()
	defer cn.summaryMu.Unlock()
	now := cn.now()
	if cn.summaryAt.IsZero() {
		sum, err := cn.store.FleetSummary(ctx, now.UTC(), cn.cfg.ExpiringWithin, cn.cfg.SilentAfter)
		if err != nil {
			return store.FleetSummary{}, err
		}
		cn.summary, cn.summaryAt = sum, now
		return sum, nil
	}
	if (now.Sub(cn.summaryAt) >= cn.cfg.SummaryTTL || now.Before(cn.summaryAt)) && !cn.refreshing {
		cn.refreshing = true
		cn.refreshed.Add(1)
		go cn.refreshSummary(context.WithoutCancel(ctx))
	}
	return cn.summary, nil
}

// refreshSummary computes the summary anew and keeps it; on an error it
// keeps the one it has, and the next view tries again.
func (cn *Console) refreshSummary(ctx context.Context) {
	defer cn.refreshed.Done()
	ctx, cancel := context.WithTimeout(ctx, summaryRefreshTimeout)
	defer cancel()
	now := cn.now()
	sum, err := cn.store.FleetSummary(ctx, now.UTC(), cn.cfg.ExpiringWithin, cn.cfg.SilentAfter)
	cn.summaryMu.Lock()
	defer cn.summaryMu.Unlock()
	cn.refreshing = false
	if err == nil && now.After(cn.summaryAt) {
		cn.summary, cn.summaryAt = sum, now
	}
}

// SummaryWindows are what the summary counts as expiring soon and silent.
func (cn *Console) SummaryWindows() (expiringWithin, silentAfter time.Duration) {
	return cn.cfg.ExpiringWithin, cn.cfg.SilentAfter
}

// ListBatches returns one page of batches, newest first (scope
// devices:read). An After naming no batch is CodeNotFound.
func (cn *Console) ListBatches(ctx context.Context, caller Caller, f store.BatchFilter) (_ []store.Batch, err error) {
	c := caller.begin(ActionBatchList)
	defer func() { err = cn.finish(ctx, c, err) }()
	if err := require(c, ScopeDevicesRead); err != nil {
		return nil, err
	}
	list, err := cn.store.ListBatches(ctx, f)
	if errors.Is(err, store.ErrNotFound) {
		return nil, Errorf(CodeNotFound, "no batch %q to list after", truncate(f.After, 80))
	}
	return list, err
}

// ListEvents returns one page of the device event log in commit order,
// with scope devices:read, as GET /v1/admin/events does.
func (cn *Console) ListEvents(ctx context.Context, caller Caller, f store.EventFilter) (_ []store.DeviceEvent, err error) {
	c := caller.begin(ActionEventList)
	defer func() { err = cn.finish(ctx, c, err) }()
	if err := require(c, ScopeDevicesRead); err != nil {
		return nil, err
	}
	return cn.store.ListEvents(ctx, f)
}

// FollowEvents is ListEvents for a page's live view, which polls every
// few seconds after the page was read: the page's read was audited, and
// an event per poll would bury the audit log, so only a refusal is.
func (cn *Console) FollowEvents(ctx context.Context, caller Caller, f store.EventFilter) ([]store.DeviceEvent, error) {
	if err := cn.Authorize(ctx, caller, ActionEventList, "", ScopeDevicesRead); err != nil {
		return nil, err
	}
	list, err := cn.store.ListEvents(ctx, f)
	if err != nil {
		return nil, &Error{Code: CodeInternal, Err: err}
	}
	return list, nil
}

// DeviceDetail is what a device's console page shows beyond
// Devices.Get: its last status report and its lineage.
type DeviceDetail struct {
	// Status is the device's latest report, if HasStatus: it sent one.
	Status    store.DeviceStatus
	HasStatus bool
	// Lineage is its neighbours through migrations (nil where none).
	Lineage store.DeviceLineage
}

// DeviceDetail reads a device's last status report and lineage (scope
// devices:read). It is read with the device's page, whose device.get
// event records the read; only a refusal is audited apart.
func (cn *Console) DeviceDetail(ctx context.Context, caller Caller, id identity.ID) (DeviceDetail, error) {
	if err := cn.Authorize(ctx, caller, ActionDeviceGet, "device:"+id.String(), ScopeDevicesRead); err != nil {
		return DeviceDetail{}, err
	}
	var d DeviceDetail
	st, err := cn.store.GetStatus(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return DeviceDetail{}, &Error{Code: CodeInternal, Err: err}
	default:
		d.Status, d.HasStatus = st, true
	}
	d.Lineage, err = cn.store.GetLineage(ctx, id)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return DeviceDetail{}, &Error{Code: CodeInternal, Err: err}
	}
	return d, nil
}
