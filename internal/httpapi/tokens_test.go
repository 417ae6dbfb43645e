package httpapi

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestTokenLifetimeRule: a token that expires creates only tokens that
// expire no later, so nothing it made outlives it.
func TestTokenLifetimeRule(t *testing.T) {
	e := newEnv(t)
	var parent NewTokenResponse
	e.call(t, "POST", "/v1/admin/tokens", e.admin, TokenRequest{Name: "short", Scopes: []string{ScopeAdmin}, TTL: "2m"}).decode(t, 201, &parent)
	before, _ := e.store.ListTokens(context.Background())
	for _, ttl := range []string{"8760h", "", "2m1s"} {
		p := e.call(t, "POST", "/v1/admin/tokens", parent.Secret, TokenRequest{Name: "child", Scopes: []string{ScopeDevicesRead}, TTL: ttl}).
			wantProblem(t, 403, "token-outlives-creator")
		if !strings.Contains(p.Detail, "at most 2m0s") {
			t.Errorf("ttl %q: detail %q does not say what is allowed", ttl, p.Detail)
		}
	}
	if after, _ := e.store.ListTokens(context.Background()); len(after) != len(before) {
		t.Fatal("a refused token was stored")
	}
	if ev := e.lastAudit(t); ev.Action != "token.create" || ev.Outcome != "denied" || ev.Detail != "token-outlives-creator" {
		t.Fatalf("refusal audited as %+v", ev)
	}
	// Thirty seconds on, a child may live the 90 seconds its parent has
	// left, to the second, and then both end together.
	e.clock.Advance(30 * time.Second)
	e.call(t, "POST", "/v1/admin/tokens", parent.Secret, TokenRequest{Name: "child", Scopes: []string{ScopeAdmin}, TTL: "91s"}).
		wantProblem(t, 403, "token-outlives-creator")
	var child NewTokenResponse
	e.call(t, "POST", "/v1/admin/tokens", parent.Secret, TokenRequest{Name: "child", Scopes: []string{ScopeAdmin}, TTL: "90s"}).decode(t, 201, &child)
	if !child.Token.ExpiresAt.Equal(*parent.Token.ExpiresAt) {
		t.Fatalf("child expires %v, parent %v", child.Token.ExpiresAt, parent.Token.ExpiresAt)
	}
	e.call(t, "GET", "/v1/admin/tokens", child.Secret, nil).decode(t, 200, &TokenList{})
	// With less than the shortest ttl left, nothing can be made.
	e.clock.Advance(61 * time.Second)
	p := e.call(t, "POST", "/v1/admin/tokens", child.Secret, TokenRequest{Name: "grandchild", Scopes: []string{ScopeAdmin}, TTL: "1m"}).
		wantProblem(t, 403, "token-outlives-creator")
	if !strings.Contains(p.Detail, "too soon") {
		t.Fatalf("detail %q", p.Detail)
	}
	e.clock.Advance(29 * time.Second)
	for _, secret := range []string{parent.Secret, child.Secret} {
		e.call(t, "GET", "/v1/admin/tokens", secret, nil).wantProblem(t, 401, "unauthorized")
	}
	// A token that never expires may make long-lived ones.
	e.call(t, "POST", "/v1/admin/tokens", e.admin, TokenRequest{Name: "year", Scopes: []string{ScopeAuditRead}, TTL: "8760h"}).decode(t, 201, &NewTokenResponse{})
}

// TestTokenRevokeRule: a token revokes only tokens whose every scope it
// holds; a narrow tokens:write token cannot take the admin token away.
func TestTokenRevokeRule(t *testing.T) {
	e := newEnv(t)
	adminID, _, _ := parseBearer(e.admin)
	narrow := e.token(t, "narrow", ScopeTokensWrite)
	wide := e.token(t, "wide", ScopeTokensWrite, ScopeDevicesRead, ScopeDevicesRevoke)
	reader := e.token(t, "reader", ScopeDevicesRead)
	readerID, _, _ := parseBearer(reader)
	wideID, _, _ := parseBearer(wide)

	p := e.call(t, "DELETE", "/v1/admin/tokens/"+adminID, narrow, nil).wantProblem(t, 403, "forbidden")
	if !strings.Contains(p.Detail, `"admin"`) {
		t.Fatalf("detail %q", p.Detail)
	}
	if ev := e.lastAudit(t); ev.Action != "token.revoke" || ev.Outcome != "denied" || ev.Subject != "token:"+adminID {
		t.Fatalf("refusal audited as %+v", ev)
	}
	e.call(t, "DELETE", "/v1/admin/tokens/"+wideID, narrow, nil).wantProblem(t, 403, "forbidden")
	e.call(t, "DELETE", "/v1/admin/tokens/"+readerID, narrow, nil).wantProblem(t, 403, "forbidden")
	// Nothing was revoked: the admin token works.
	e.call(t, "GET", "/v1/admin/tokens", e.admin, nil).decode(t, 200, &TokenList{})
	// A token holding the scopes may; one may revoke itself; admin any.
	e.call(t, "DELETE", "/v1/admin/tokens/"+readerID, wide, nil).decode(t, 200, &Token{})
	e.call(t, "DELETE", "/v1/admin/tokens/"+wideID, wide, nil).decode(t, 200, &Token{})
	narrowID, _, _ := parseBearer(narrow)
	e.call(t, "DELETE", "/v1/admin/tokens/"+narrowID, e.admin, nil).decode(t, 200, &Token{})
	e.call(t, "GET", "/v1/admin/tokens", narrow, nil).wantProblem(t, 401, "unauthorized")
}
