package admin

import (
	"context"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/audit"
	"github.com/hallmark-iot/hallmark/internal/store"
	"github.com/hallmark-iot/hallmark/internal/store/sqlite"
)

// consoleClock is a clock the console tests move.
type consoleClock struct{ at atomic.Int64 }

func (c *consoleClock) now() time.Time          { return time.Unix(0, c.at.Load()).UTC() }
func (c *consoleClock) advance(d time.Duration) { c.at.Add(int64(d)) }

// newConsoleTest is the console use cases on a real SQLite registry.
func newConsoleTest(t testing.TB, cfg ConsoleConfig) (*Console, *sqlite.Store, *consoleClock) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "hallmark.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	clock := &consoleClock{}
	clock.at.Store(testStart.UnixNano())
	tokens := NewTokens(st, audit.NewRecorder(st, nil, clock.now), clock.now)
	return NewConsole(st, tokens, cfg), st, clock
}

// mint stores a token and returns its bearer string.
func mint(t testing.TB, st *sqlite.Store, now time.Time, ttl time.Duration, scopes ...string) (string, store.Token) {
	t.Helper()
	secret, tok := newTokenAt("console", scopes, ttl, now)
	if err := st.CreateToken(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	return secret, tok
}

// lastEvent is the newest audit event of action.
func lastEvent(t *testing.T, st *sqlite.Store, action string) store.AuditEvent {
	t.Helper()
	list, err := st.ListAudit(context.Background(), store.AuditFilter{Action: action, Limit: store.MaxPageSize})
	if err != nil || len(list) == 0 {
		t.Fatalf("no audit event %s: %v", action, err)
	}
	return list[len(list)-1]
}

func hasCode(err error, code string) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}

func TestConsoleSessions(t *testing.T) {
	ctx := context.Background()
	cn, st, clock := newConsoleTest(t, ConsoleConfig{})
	bearer, tok := mint(t, st, clock.now(), 0, ScopeDevicesRead)

	s, err := cn.SignIn(ctx, bearer, "192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	if !s.ExpiresAt.Equal(clock.now().Add(DefaultSessionLifetime)) || s.Caller.Token.ID != tok.ID {
		t.Errorf("session until %v for %s", s.ExpiresAt, s.Caller.Token.ID)
	}
	kept, err := st.GetConsoleSession(ctx, s.Secret.Hash())
	if err != nil || kept.TokenID != tok.ID || kept.RemoteAddr != "192.0.2.1" {
		t.Fatalf("kept session %+v: %v", kept, err)
	}
	if e := lastEvent(t, st, ActionConsoleSignIn); e.Outcome != "ok" || e.Actor != "token:"+tok.ID {
		t.Errorf("sign-in event %+v", e)
	}
	got, err := cn.Authenticate(ctx, s.Secret, "192.0.2.1")
	if err != nil || got.Caller.Token.ID != tok.ID {
		t.Fatalf("authenticate: %v", err)
	}
	var other SessionSecret
	other[0] = 7
	if _, err := cn.Authenticate(ctx, other, ""); !hasCode(err, CodeUnauthorized) {
		t.Errorf("an unknown session: %v", err)
	}
	// Past its lifetime the session is refused and forgotten.
	clock.advance(DefaultSessionLifetime)
	if _, err := cn.Authenticate(ctx, s.Secret, ""); !hasCode(err, CodeUnauthorized) {
		t.Errorf("an expired session: %v", err)
	}
	if _, err := st.GetConsoleSession(ctx, s.Secret.Hash()); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the expired session is kept: %v", err)
	}

	// Sign-out deletes it.
	s, err = cn.SignIn(ctx, bearer, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := cn.SignOut(ctx, s); err != nil {
		t.Fatal(err)
	}
	if _, err := cn.Authenticate(ctx, s.Secret, ""); !hasCode(err, CodeUnauthorized) {
		t.Errorf("a signed-out session: %v", err)
	}
	if e := lastEvent(t, st, ActionConsoleSignOut); e.Outcome != "ok" {
		t.Errorf("sign-out event %+v", e)
	}
}

func TestConsoleSessionFollowsItsToken(t *testing.T) {
	ctx := context.Background()
	cn, st, clock := newConsoleTest(t, ConsoleConfig{SessionLifetime: 2 * time.Hour})
	bearer, tok := mint(t, st, clock.now(), time.Hour, ScopeAdmin)
	s, err := cn.SignIn(ctx, bearer, "")
	if err != nil {
		t.Fatal(err)
	}
	if !s.ExpiresAt.Equal(tok.ExpiresAt) {
		t.Errorf("session until %v, want the token's expiry %v", s.ExpiresAt, tok.ExpiresAt)
	}
	// Revoked: the live session ends at its next request.
	if err := st.RevokeToken(ctx, tok.ID, clock.now()); err != nil {
		t.Fatal(err)
	}
	clock.advance(time.Second)
	if _, err := cn.Authenticate(ctx, s.Secret, ""); !hasCode(err, CodeUnauthorized) {
		t.Errorf("the session of a revoked token: %v", err)
	}
	if _, err := st.GetConsoleSession(ctx, s.Secret.Hash()); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the revoked token's session is kept: %v", err)
	}
	if e := lastEvent(t, st, ActionConsoleSignOut); e.Outcome != "denied" || e.Detail != "session ended: "+ReasonTokenRevoked {
		t.Errorf("end of session event %+v", e)
	}
	for _, bearer := range []string{bearer, "hm_zzzzzzzzzzzz_" + bearer[len(bearer)-43:], "garbage"} {
		if _, err := cn.SignIn(ctx, bearer, "198.51.100.9"); !hasCode(err, CodeUnauthorized) {
			t.Errorf("sign in with %.20q: %v", bearer, err)
		}
	}
	if e := lastEvent(t, st, ActionConsoleSignIn); e.Outcome != "denied" || e.Detail != ReasonMalformedToken || e.RemoteAddr != "198.51.100.9" {
		t.Errorf("refused sign-in event %+v", e)
	}
}

func TestConsoleAuthorizeAndSummary(t *testing.T) {
	ctx := context.Background()
	cn, st, clock := newConsoleTest(t, ConsoleConfig{SummaryTTL: time.Minute})
	_, none := mint(t, st, clock.now(), 0, ScopeAuditRead)
	_, reader := mint(t, st, clock.now(), 0, ScopeDevicesRead)
	outsider, allowed := Caller{Token: none, Route: "/console"}, Caller{Token: reader}
	if _, err := cn.FleetSummary(ctx, outsider); !hasCode(err, CodeForbidden) {
		t.Errorf("summary without devices:read: %v", err)
	}
	if e := lastEvent(t, st, ActionFleetSummary); e.Outcome != "denied" {
		t.Errorf("refused summary event %+v", e)
	}
	if err := cn.Authorize(ctx, outsider, ActionDeviceSuspend, "", ScopeDevicesSuspend); !hasCode(err, CodeForbidden) {
		t.Errorf("authorize without the scope: %v", err)
	}
	if e := lastEvent(t, st, ActionDeviceSuspend); e.Outcome != "denied" || e.Subject != "/console" || e.Detail != "missing scope devices:suspend" {
		t.Errorf("refusal event %+v", e)
	}
	first, err := cn.FleetSummary(ctx, allowed)
	if err != nil {
		t.Fatal(err)
	}
	clock.advance(30 * time.Second)
	again, _ := cn.FleetSummary(ctx, allowed)
	if !again.At.Equal(first.At) {
		t.Errorf("within the TTL the summary was read again (%v, %v)", first.At, again.At)
	}
	clock.advance(31 * time.Second)
	// After the TTL a view gets the summary it finds, at once, and starts
	// one refresh; the views after it get the refreshed one.
	stale, _ := cn.FleetSummary(ctx, allowed)
	if !stale.At.Equal(first.At) {
		t.Errorf("the view that found the summary stale waited for a new one (%v)", stale.At)
	}
	cn.refreshed.Wait()
	fresh, _ := cn.FleetSummary(ctx, allowed)
	if !fresh.At.After(first.At) {
		t.Errorf("after the TTL and a refresh the summary is still of %v", fresh.At)
	}
	if _, err := cn.ListBatches(ctx, allowed, store.BatchFilter{After: "nope"}); !hasCode(err, CodeNotFound) {
		t.Errorf("batches after an unknown batch: %v", err)
	}
	if _, err := cn.ListEvents(ctx, outsider, store.EventFilter{}); !hasCode(err, CodeForbidden) {
		t.Errorf("events without devices:read: %v", err)
	}
}

// BenchmarkFleetSummaryCached is the overview's summary when cached: what
// most views of the overview cost, whatever the fleet's size.
func BenchmarkFleetSummaryCached(b *testing.B) {
	cn, st, _ := newConsoleTest(b, ConsoleConfig{SummaryTTL: time.Hour})
	_, reader := mint(b, st, testStart, 0, ScopeDevicesRead)
	ctx := context.Background()
	for b.Loop() {
		if _, err := cn.FleetSummary(ctx, Caller{Token: reader}); err != nil {
			b.Fatal(err)
		}
	}
}
