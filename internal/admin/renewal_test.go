package admin

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// fakeGrants is a RenewalStore over a map of device states.
type fakeGrants struct {
	states map[identity.ID]store.DeviceState
	grants map[identity.ID]store.RenewalGrant
}

func (f *fakeGrants) GrantRenewal(_ context.Context, g store.RenewalGrant) error {
	state, ok := f.states[g.Identity]
	switch {
	case !ok:
		return store.ErrNotFound
	case state != store.StateOnboarded:
		return &store.StateError{State: state}
	}
	f.grants[g.Identity] = g
	return nil
}

// TestForceRenewal: an onboarded device is granted one renewal, audited
// with the reason; an unknown device is not found, one in another state
// a conflict naming it, a bad reason malformed; each call is one event.
func TestForceRenewal(t *testing.T) {
	ctx := context.Background()
	onboarded, suspended, unknown := identity.ID{1}, identity.ID{2}, identity.ID{3}
	st := &fakeGrants{states: map[identity.ID]store.DeviceState{onboarded: store.StateOnboarded, suspended: store.StateSuspended},
		grants: map[identity.ID]store.RenewalGrant{}}
	rec, log := newRecorder()
	r := NewRenewals(st, rec, testNow)

	g, err := r.ForceRenewal(ctx, caller(ScopeDevicesSuspend), onboarded, ForceRenewalRequest{Reason: "key rotation"})
	want := store.RenewalGrant{Identity: onboarded, GrantedAt: testStart, Reason: "key rotation"}
	if err != nil || g != want || st.grants[onboarded] != want {
		t.Fatalf("ForceRenewal = %+v, %v; stored %+v", g, err, st.grants[onboarded])
	}
	if ev := log.only(t); ev.Action != ActionDeviceForceRenewal || ev.Outcome != "ok" || ev.Subject != "device:"+onboarded.String() || ev.Detail != "key rotation" {
		t.Fatalf("audit event %+v", ev)
	}
	for _, c := range []struct {
		name   string
		id     identity.ID
		reason string
		code   string
	}{
		{"unknown device", unknown, "x", CodeNotFound},
		{"suspended device", suspended, "x", CodeConflict},
		{"no reason", onboarded, "", CodeMalformed},
		{"a control character", onboarded, "a\nb", CodeMalformed},
	} {
		_, err := r.ForceRenewal(ctx, caller(ScopeDevicesSuspend), c.id, ForceRenewalRequest{Reason: c.reason})
		var e *Error
		if !errors.As(err, &e) || e.Code != c.code {
			t.Errorf("%s: %v, want %s", c.name, err, c.code)
		}
		if ev := log.only(t); ev.Outcome != "error" || ev.Action != ActionDeviceForceRenewal {
			t.Errorf("%s: audit event %+v", c.name, ev)
		}
	}
}

// TestProductRenewalWindow: a product's renewal window is a duration
// from zero to its validity, empty for none.
func TestProductRenewalWindow(t *testing.T) {
	base := ProductRequest{ID: "p", Name: "P", CertValidity: "720h", CloudEndpoint: "mqtts://b.example.com"}
	for _, c := range []struct {
		window string
		want   time.Duration
		ok     bool
	}{
		{"", 0, true}, {"0s", 0, true}, {"240h", 240 * time.Hour, true}, {"720h", 720 * time.Hour, true},
		{"721h", 0, false}, {"-1h", 0, false}, {"a third", 0, false},
	} {
		req := base
		req.RenewalWindow = c.window
		err := req.Validate()
		if (err == nil) != c.ok {
			t.Errorf("renewal window %q: %v, want ok %v", c.window, err, c.ok)
			continue
		}
		var e *Error
		if err != nil && (!errors.As(err, &e) || e.Code != CodeMalformed) {
			t.Errorf("renewal window %q: %v, want malformed-request", c.window, err)
		}
		if got, err := parseRenewalWindow(c.window, 720*time.Hour); c.ok && (err != nil || got != c.want) {
			t.Errorf("parseRenewalWindow(%q) = %v, %v; want %v", c.window, got, err, c.want)
		}
	}
}
