package httpapi

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/admin"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// countingStore counts the token lookups and audit appends that reach
// the store.
type countingStore struct {
	store.Store
	lookups, appends atomic.Int64
}

func (c *countingStore) GetToken(ctx context.Context, id string) (store.Token, error) {
	c.lookups.Add(1)
	return c.Store.GetToken(ctx, id)
}

func (c *countingStore) AppendAudit(ctx context.Context, e store.AuditEvent) (int64, error) {
	c.appends.Add(1)
	return c.Store.AppendAudit(ctx, e)
}

// lockoutEnv is a server with a small AuthLimit on a counting store.
func lockoutEnv(t *testing.T, limit AuthLimit) (*env, *countingStore) {
	t.Helper()
	base := newEnv(t)
	counting := &countingStore{Store: base.store}
	srv, err := New(storeConfig(counting, Config{Now: base.clock.Now, AuthLimit: limit}))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{srv: srv, store: base.store, ts: httptest.NewServer(srv), clock: base.clock, admin: base.admin}
	t.Cleanup(e.ts.Close)
	return e, counting
}

// callFrom sends a GET to srv as if from addr, returning the status and
// Retry-After.
func callFrom(srv http.Handler, addr, path, token string) (int, string) {
	req := httptest.NewRequest("GET", path, nil)
	req.RemoteAddr = addr
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, req)
	return rec.Code, rec.Header().Get("Retry-After")
}

func TestAuthLockout(t *testing.T) {
	e, counting := lockoutEnv(t, AuthLimit{Failures: 3, Window: time.Minute, Lockout: time.Minute, MaxLockout: 8 * time.Minute})
	wrong, _ := admin.NewToken("guess", []string{ScopeAdmin}, 0)
	const attacker, other = "192.0.2.66:4000", "198.51.100.7:5000"
	// Requests without a credential guess nothing and lock nothing.
	for range 5 {
		if code, _ := callFrom(e.srv, attacker, "/v1/admin/stations", ""); code != 401 {
			t.Fatalf("no token: %d", code)
		}
	}
	for i := range 3 {
		if code, _ := callFrom(e.srv, attacker, "/v1/admin/stations", wrong); code != 401 {
			t.Fatalf("wrong token %d: %d", i, code)
		}
	}
	// Locked out: 429 with Retry-After, for a valid token too, and
	// without a token lookup or an audit event.
	lookups, appends := counting.lookups.Load(), counting.appends.Load()
	for _, token := range []string{wrong, e.admin, wrong} {
		if code, retry := callFrom(e.srv, attacker, "/v1/admin/stations", token); code != 429 || retry != "60" {
			t.Fatalf("locked out: %d, Retry-After %q", code, retry)
		}
	}
	if counting.lookups.Load() != lookups || counting.appends.Load() != appends {
		t.Fatalf("a locked-out request reached the store: %d lookups, %d appends", counting.lookups.Load()-lookups, counting.appends.Load()-appends)
	}
	// Another address is not affected, and its success unlocks nothing.
	if code, _ := callFrom(e.srv, other, "/v1/admin/stations", e.admin); code != 200 {
		t.Fatalf("another address: %d", code)
	}
	if code, _ := callFrom(e.srv, attacker, "/v1/admin/stations", e.admin); code != 429 {
		t.Fatalf("after another address's success: %d", code)
	}
	// After the lock-out a valid token works; each further failure locks
	// again at once, twice as long, up to MaxLockout.
	e.clock.Advance(time.Minute)
	if code, _ := callFrom(e.srv, attacker, "/v1/admin/stations", e.admin); code != 200 {
		t.Fatalf("after the lock-out: %d", code)
	}
	for _, want := range []time.Duration{2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 8 * time.Minute} {
		if code, _ := callFrom(e.srv, attacker, "/v1/admin/stations", wrong); code != 401 {
			t.Fatalf("failure after a lock-out: %d", code)
		}
		if _, retry := callFrom(e.srv, attacker, "/v1/admin/stations", wrong); retry != strconv.Itoa(int(want.Seconds())) {
			t.Fatalf("Retry-After %q, want %v", retry, want)
		}
		e.clock.Advance(want)
	}
	// Quiet for MaxLockout after its last lock-out, the address starts
	// afresh.
	e.clock.Advance(8 * time.Minute)
	for i := range 3 {
		if code, _ := callFrom(e.srv, attacker, "/v1/admin/stations", wrong); code != 401 {
			t.Fatalf("afresh, wrong token %d: %d", i, code)
		}
	}
}

func TestAuthLockoutIPv6Prefix(t *testing.T) {
	e, _ := lockoutEnv(t, AuthLimit{Failures: 2})
	wrong, _ := admin.NewToken("guess", []string{ScopeAdmin}, 0)
	callFrom(e.srv, "[2001:db8:1:2::1]:1", "/v1/admin/stations", wrong)
	callFrom(e.srv, "[2001:db8:1:2::ffff]:1", "/v1/admin/stations", wrong)
	// The /64 is locked out, another /64 is not.
	if code, _ := callFrom(e.srv, "[2001:db8:1:2:aaaa::9]:1", "/v1/admin/stations", e.admin); code != 429 {
		t.Fatalf("same /64: %d", code)
	}
	if code, _ := callFrom(e.srv, "[2001:db8:1:3::1]:1", "/v1/admin/stations", e.admin); code != 200 {
		t.Fatalf("other /64: %d", code)
	}
}

func TestAuthLockoutDisabled(t *testing.T) {
	e, _ := lockoutEnv(t, AuthLimit{Failures: -1})
	wrong, _ := admin.NewToken("guess", []string{ScopeAdmin}, 0)
	for range 2 * DefaultAuthFailures {
		if code, _ := callFrom(e.srv, "192.0.2.1:1", "/v1/admin/stations", wrong); code != 401 {
			t.Fatalf("status %d with the limit disabled", code)
		}
	}
}
