package httpapi

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/admin"
)

func TestAuthFailures(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	revoked := e.token(t, "revoked", ScopeAdmin)
	id, _, _ := parseBearer(revoked)
	if err := e.store.RevokeToken(ctx, id, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	expiring, tok := tokenAt("expiring", []string{ScopeAdmin}, time.Minute, e.clock.Now().Add(-2*time.Minute))
	if err := e.store.CreateToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	reader := e.token(t, "reader", ScopeDevicesRead)
	wrongSecret := e.admin[:len(e.admin)-2] + "AA"
	if wrongSecret == e.admin {
		wrongSecret = e.admin[:len(e.admin)-2] + "BA"
	}
	unknownID, _ := admin.NewToken("never stored", []string{ScopeAdmin}, 0)

	unknownIDOf, _, _ := parseBearer(unknownID)
	for _, tc := range []struct {
		name, header        string
		status              int
		code, actor, reason string
	}{
		{"no token", "", 401, "unauthorized", "anonymous", "no-token"},
		{"not bearer", "Basic dXNlcjpwYXNz", 401, "unauthorized", "anonymous", "malformed-authorization"},
		{"malformed", "Bearer not-a-token", 401, "unauthorized", "anonymous", "malformed-token"},
		{"unknown id", "Bearer " + unknownID, 401, "unauthorized", "token:" + unknownIDOf, "unknown-token"},
		// The same address, action and reason again: counted, not
		// written on its own (the aggregator's summary holds it).
		{"wrong secret", "Bearer " + wrongSecret, 401, "unauthorized", "token:" + unknownIDOf, "unknown-token"},
		{"revoked", "Bearer " + revoked, 401, "unauthorized", "token:" + id, "token-revoked"},
		{"expired", "Bearer " + expiring, 401, "unauthorized", "token:" + tok.ID, "token-expired"},
		{"wrong scope", "Bearer " + reader, 403, "forbidden", "token:", "missing scope " + ScopeStationsWrite},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := StationRequest{Name: "x", PublicKey: stationPEM(t, deriveKey(t, "ed25519", tc.name, 0))}
			req := e.callAuth(t, "POST", "/v1/admin/stations", tc.header, body)
			p := req.wantProblem(t, tc.status, tc.code)
			if tc.status == 401 && req.header.Get("WWW-Authenticate") == "" {
				t.Fatal("401 without WWW-Authenticate")
			}
			if tc.status == 401 && p.Detail != errUnauthorized.Detail {
				t.Fatalf("401 detail %q tells failures apart", p.Detail)
			}
			last := e.lastAudit(t)
			if last.Outcome != "denied" || last.Action != "station.create" || !strings.HasPrefix(last.Actor, tc.actor) ||
				last.RemoteAddr != "127.0.0.1" || last.Detail != tc.reason {
				t.Fatalf("audit %+v", last)
			}
			if strings.Contains(last.Detail, "hm_") || strings.Contains(last.Actor, "_") {
				t.Fatalf("audit event holds token material: %+v", last)
			}
			stations, _ := e.store.ListStations(ctx)
			if len(stations) != 0 {
				t.Fatal("a denied request registered a station")
			}
		})
	}
	// The clock moving past an expiry ends a token.
	short, tok2 := tokenAt("short", []string{ScopeAdmin}, time.Hour, e.clock.Now())
	e.store.CreateToken(ctx, tok2)
	e.call(t, "GET", "/v1/admin/stations", short, nil).decode(t, 200, &StationList{})
	e.clock.Advance(time.Hour)
	e.call(t, "GET", "/v1/admin/stations", short, nil).wantProblem(t, 401, "unauthorized")
}

func TestTokens(t *testing.T) {
	e := newEnv(t)
	// An admin creates a token that may only manage tokens and read devices.
	var created NewTokenResponse
	e.call(t, "POST", "/v1/admin/tokens", e.admin, TokenRequest{
		Name: "ops", Scopes: []string{ScopeTokensWrite, ScopeDevicesRead}, TTL: "24h",
	}).decode(t, 201, &created)
	if created.Secret == "" || created.Token.ExpiresAt == nil || !created.Token.ExpiresAt.Equal(testStart.Add(24*time.Hour)) {
		t.Fatalf("created %+v", created)
	}
	// It works, and cannot mint a more powerful token.
	e.call(t, "GET", "/v1/admin/devices", created.Secret, nil).decode(t, 200, &DeviceList{})
	e.call(t, "POST", "/v1/admin/tokens", created.Secret, TokenRequest{Name: "escalate", Scopes: []string{ScopeAdmin}}).
		wantProblem(t, 403, "forbidden")
	e.call(t, "POST", "/v1/admin/tokens", created.Secret, TokenRequest{Name: "escalate", Scopes: []string{ScopeDevicesRevoke}}).
		wantProblem(t, 403, "forbidden")
	if ev := e.lastAudit(t); ev.Outcome != "denied" || ev.Action != "token.create" {
		t.Fatalf("escalation audited as %+v", ev)
	}
	// The default lifetime would outlive the 24-hour token: refused.
	e.call(t, "POST", "/v1/admin/tokens", created.Secret, TokenRequest{Name: "reader", Scopes: []string{ScopeDevicesRead}}).
		wantProblem(t, 403, "token-outlives-creator")
	var sub NewTokenResponse
	e.call(t, "POST", "/v1/admin/tokens", created.Secret, TokenRequest{Name: "reader", Scopes: []string{ScopeDevicesRead}, TTL: "12h"}).decode(t, 201, &sub)
	if !sub.Token.ExpiresAt.Equal(testStart.Add(12 * time.Hour)) {
		t.Fatalf("12h TTL: expires %v", sub.Token.ExpiresAt)
	}
	var never NewTokenResponse
	e.call(t, "POST", "/v1/admin/tokens", e.admin, TokenRequest{Name: "default", Scopes: []string{ScopeAuditRead}}).decode(t, 201, &never)
	if !never.Token.ExpiresAt.Equal(testStart.Add(admin.DefaultTokenTTL)) {
		t.Fatalf("default TTL: expires %v", never.Token.ExpiresAt)
	}
	// Bad requests.
	for name, req := range map[string]TokenRequest{
		"no scopes":     {Name: "x"},
		"unknown scope": {Name: "x", Scopes: []string{"root"}},
		"twice":         {Name: "x", Scopes: []string{ScopeAuditRead, ScopeAuditRead}},
		"ttl too long":  {Name: "x", Scopes: []string{ScopeAuditRead}, TTL: "8761h"},
		"ttl bad":       {Name: "x", Scopes: []string{ScopeAuditRead}, TTL: "forever"},
		"no name":       {Scopes: []string{ScopeAuditRead}},
	} {
		t.Run(name, func(t *testing.T) {
			e.call(t, "POST", "/v1/admin/tokens", e.admin, req).wantProblem(t, 400, "malformed-request")
		})
	}
	// Listing never shows a secret.
	r := e.call(t, "GET", "/v1/admin/tokens", e.admin, nil)
	var list TokenList
	r.decode(t, 200, &list)
	if len(list.Tokens) != 4 || strings.Contains(string(r.body), created.Secret[len(created.Secret)-43:]) {
		t.Fatalf("token list %s", r.body)
	}
	// Revoking ends it at once.
	var revoked Token
	e.call(t, "DELETE", "/v1/admin/tokens/"+sub.Token.ID, created.Secret, nil).decode(t, 200, &revoked)
	if revoked.RevokedAt == nil {
		t.Fatalf("revoked %+v", revoked)
	}
	e.call(t, "GET", "/v1/admin/devices", sub.Secret, nil).wantProblem(t, 401, "unauthorized")
	e.call(t, "DELETE", "/v1/admin/tokens/nosuchtoken", e.admin, nil).wantProblem(t, 404, "not-found")
	e.call(t, "DELETE", "/v1/admin/tokens/NO_SUCH", e.admin, nil).wantProblem(t, 404, "not-found")
}
