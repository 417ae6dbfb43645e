package admin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/connector"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
)

func TestAuthenticate(t *testing.T) {
	ctx := context.Background()
	st := &fakeTokens{}
	tokens := NewTokens(st, nil, testNow)
	store1 := func(name string, mod func(*store.Token)) string {
		secret, tok := NewToken(name, []string{ScopeAdmin}, 0)
		mod(&tok)
		st.CreateToken(ctx, tok)
		return secret
	}
	good := store1("good", func(*store.Token) {})
	revoked := store1("revoked", func(tok *store.Token) { tok.RevokedAt = testStart })
	expired := store1("expired", func(tok *store.Token) { tok.ExpiresAt = testStart })
	later := store1("revoked later", func(tok *store.Token) { tok.RevokedAt = testStart.Add(time.Second) })
	unknown, _ := NewToken("never stored", nil, 0)
	goodID, _, _ := ParseBearer(good)
	for _, tc := range []struct {
		bearer, actor, reason string
	}{
		{good, "token:" + goodID, ""},
		{later, "", ""},
		{"hm_nope", "anonymous", ReasonMalformedToken},
		{unknown, "", ReasonUnknownToken},
		{good[:len(good)-2] + map[bool]string{true: "BA", false: "AA"}[strings.HasSuffix(good, "AA")], "token:" + goodID, ReasonUnknownToken},
		{revoked, "", ReasonTokenRevoked},
		{expired, "", ReasonTokenExpired},
	} {
		c, actor, err := tokens.Authenticate(ctx, tc.bearer)
		if tc.actor != "" && actor != tc.actor {
			t.Errorf("%s: actor %q, want %q", tc.bearer, actor, tc.actor)
		}
		var refused *AuthError
		switch {
		case tc.reason == "" && (err != nil || c.Actor() != actor):
			t.Errorf("%s: %+v, %v; want admitted as %s", tc.bearer, c, err, actor)
		case tc.reason != "" && (!errors.As(err, &refused) || refused.Reason != tc.reason):
			t.Errorf("%s: %v, want refused for %s", tc.bearer, err, tc.reason)
		}
	}
	// A store that fails is not a refusal.
	st.err = errors.New("disk on fire")
	if _, actor, err := tokens.Authenticate(ctx, good); err == nil || errors.As(err, new(*AuthError)) || actor != "token:"+goodID {
		t.Errorf("failing store: %q, %v", actor, err)
	}
}

// TestCreateTokenRules: a token grants only what it holds and outlives
// nothing; every call is one audit event.
func TestCreateTokenRules(t *testing.T) {
	ctx := context.Background()
	rec, log := newRecorder()
	st := &fakeTokens{}
	tokens := NewTokens(st, rec, testNow)

	narrow := caller(ScopeTokensWrite)
	_, _, err := tokens.Create(ctx, narrow, TokenRequest{Name: "more", Scopes: []string{ScopeAdmin}, TTL: "1h"})
	if e := wantCode(t, err, CodeForbidden); e.Message != `cannot grant scope "admin": the token does not hold it` {
		t.Errorf("message %q", e.Message)
	}
	if ev := log.only(t); ev.Outcome != "denied" || ev.Detail != "forbidden" || ev.Subject != "/v1/admin/x" ||
		ev.Actor != "token:abcdefgh1234" || ev.RemoteAddr != "192.0.2.1" {
		t.Errorf("event %+v", ev)
	}

	short := caller(ScopeAdmin)
	short.Token.ExpiresAt = testStart.Add(time.Hour)
	_, _, err = tokens.Create(ctx, short, TokenRequest{Name: "long", Scopes: []string{ScopeAuditRead}})
	if e := wantCode(t, err, CodeTokenOutlivesCreator); !strings.Contains(e.Message, "the default ttl of 2160h0m0s would outlive this token") {
		t.Errorf("message %q", e.Message)
	}
	if ev := log.only(t); ev.Outcome != "denied" || ev.Detail != "token-outlives-creator" {
		t.Errorf("event %+v", ev)
	}

	_, _, err = tokens.Create(ctx, short, TokenRequest{Name: "bad\n", Scopes: []string{ScopeAuditRead}})
	wantCode(t, err, CodeMalformed)
	if ev := log.only(t); ev.Outcome != "error" || ev.Detail != "malformed-request" {
		t.Errorf("event %+v", ev)
	}

	secret, tok, err := tokens.Create(ctx, short, TokenRequest{Name: "ok", Scopes: []string{ScopeAuditRead, ScopeDevicesRead}, TTL: "30m"})
	if err != nil || !tok.ExpiresAt.Equal(testStart.Add(30*time.Minute)) || !strings.HasPrefix(secret, "hm_"+tok.ID+"_") {
		t.Fatalf("created %+v, %v", tok, err)
	}
	if ev := log.only(t); ev.Outcome != "ok" || ev.Subject != "token:"+tok.ID || ev.Detail != "scopes audit:read,devices:read" {
		t.Errorf("event %+v", ev)
	}
	if _, ok := st.tokens[tok.ID]; !ok {
		t.Error("token not stored")
	}

	st.err = fmt.Errorf("write: %w", errors.New("disk on fire"))
	_, _, err = tokens.Create(ctx, short, TokenRequest{Name: "x", Scopes: []string{ScopeAuditRead}, TTL: "1m"})
	if e := wantCode(t, err, CodeInternal); e.Message != "" || !strings.Contains(e.Error(), "disk on fire") {
		t.Errorf("internal error %q (message %q)", e.Error(), e.Message)
	}
	if ev := log.only(t); ev.Outcome != "error" || ev.Detail != "internal: scopes audit:read" || strings.Contains(ev.Detail, "fire") {
		t.Errorf("event %+v", ev)
	}
}

func TestRevokeTokenRules(t *testing.T) {
	ctx := context.Background()
	rec, log := newRecorder()
	st := &fakeTokens{}
	tokens := NewTokens(st, rec, testNow)
	_, wide := NewToken("wide", []string{ScopeAdmin}, 0)
	st.CreateToken(ctx, wide)

	_, err := tokens.Revoke(ctx, caller(ScopeTokensWrite), wide.ID)
	wantCode(t, err, CodeForbidden)
	if ev := log.only(t); ev.Outcome != "denied" || ev.Subject != "token:"+wide.ID || !st.tokens[wide.ID].RevokedAt.IsZero() {
		t.Errorf("event %+v, token %+v", ev, st.tokens[wide.ID])
	}
	_, err = tokens.Revoke(ctx, caller(ScopeAdmin), "NO_SUCH\n")
	if e := wantCode(t, err, CodeNotFound); e.Message != `no token "NO_SUCH\n"` {
		t.Errorf("message %q", e.Message)
	}
	if ev := log.only(t); ev.Subject != "token:(invalid)" {
		t.Errorf("event %+v", ev)
	}
	got, err := tokens.Revoke(ctx, caller(ScopeAdmin), wide.ID)
	if err != nil || !got.RevokedAt.Equal(testStart) {
		t.Fatalf("revoked %+v, %v", got, err)
	}
	if ev := log.only(t); ev.Outcome != "ok" {
		t.Errorf("event %+v", ev)
	}
}

// TestRevokeDeviceOutbox: a revocation enqueues the outbox's deregister
// jobs with it, none for a device never onboarded, and revoking again
// changes nothing.
func TestRevokeDeviceOutbox(t *testing.T) {
	ctx := context.Background()
	rec, log := newRecorder()
	onboarded, registered := identity.ID{1}, identity.ID{2}
	st := &fakeDevices{devices: map[identity.ID]store.Device{
		onboarded:  {Identity: onboarded, State: store.StateOnboarded, OnboardedAt: testStart},
		registered: {Identity: registered, State: store.StateRegistered},
	}}
	devices := NewDevices(st, connector.Outbox{Connectors: []string{"mqtt", "hook"}}, rec, testNow)
	admin := caller(ScopeAdmin)

	got, err := devices.Revoke(ctx, admin, onboarded, RevokeRequest{Reason: "stolen"})
	if err != nil || got.State != store.StateRevoked || got.Cloud != store.CloudPending || got.Jobs != nil {
		t.Fatalf("revoked %+v, %v", got, err)
	}
	want := connector.Outbox{Connectors: []string{"mqtt", "hook"}}.Revoked(st.devices[onboarded])
	if len(st.enqueued) != 2 || fmt.Sprint(st.enqueued) != fmt.Sprint(want) || st.enqueued[0].Kind != store.JobDeregister {
		t.Fatalf("enqueued %+v, want %+v", st.enqueued, want)
	}
	if ev := log.only(t); ev.Outcome != "ok" || ev.Detail != "stolen" || ev.Subject != "device:"+onboarded.String() {
		t.Errorf("event %+v", ev)
	}

	if _, err := devices.Revoke(ctx, admin, registered, RevokeRequest{Reason: "lost"}); err != nil || len(st.enqueued) != 2 {
		t.Fatalf("never onboarded: %v, enqueued %+v", err, st.enqueued)
	}
	log.only(t)

	if _, err := devices.Revoke(ctx, admin, onboarded, RevokeRequest{Reason: "again"}); err != nil || st.revokes != 2 || len(st.enqueued) != 2 {
		t.Fatalf("again: %v, %d revocations, enqueued %+v", err, st.revokes, st.enqueued)
	}
	if ev := log.only(t); ev.Detail != "already revoked; nothing changed" {
		t.Errorf("event %+v", ev)
	}

	_, err = devices.Revoke(ctx, admin, identity.ID{3}, RevokeRequest{Reason: "x"})
	wantCode(t, err, CodeNotFound)
	if ev := log.only(t); ev.Outcome != "error" || ev.Detail != "not-found" {
		t.Errorf("event %+v", ev)
	}
	_, err = devices.Revoke(ctx, admin, onboarded, RevokeRequest{Reason: ""})
	wantCode(t, err, CodeMalformed)
	log.only(t)

	list, err := devices.List(ctx, admin, store.DeviceFilter{})
	if err != nil || len(list) != 2 || list[0].Cloud != store.CloudPending || list[1].Cloud != store.CloudNone {
		t.Fatalf("list %+v, %v", list, err)
	}
}

func TestImportManifest(t *testing.T) {
	ctx := context.Background()
	rec, log := newRecorder()
	station := deriveKey(t, sigalg.Ed25519, "station", 0)
	spki, _ := sigalg.MarshalPublicKey(station.Public())
	stationID := identity.FromSPKI(spki)
	st := &fakeManifests{
		products: map[string]store.Product{"sensor": {ID: "sensor"}, "gauge": {ID: "gauge"}},
		stations: map[identity.ID]store.Station{stationID: {ID: stationID, Algorithm: sigalg.Ed25519, PublicKey: spki}},
		batches:  map[string]store.Batch{}, devices: map[identity.ID]string{},
	}
	manifests := NewManifests(st, rec, testNow)
	admin := caller(ScopeAdmin)
	data := writeManifest(t, station, "b1", "dev", 3)

	_, err := manifests.Import(ctx, admin, "nope", bytes.NewReader(data))
	wantCode(t, err, CodeUnknownProduct)
	if ev := log.only(t); ev.Subject != "product:nope" || ev.Detail != "unknown-product" {
		t.Errorf("event %+v", ev)
	}

	res, err := manifests.Import(ctx, admin, "sensor", bytes.NewReader(data))
	if err != nil || res.Imported != 3 || res.AlreadyImported || res.Batch.StationID != stationID || res.Batch.DeviceCount != 3 {
		t.Fatalf("import %+v, %v", res, err)
	}
	if ev := log.only(t); ev.Subject != "batch:b1" || ev.Detail != "3 devices imported" {
		t.Errorf("event %+v", ev)
	}

	res, err = manifests.Import(ctx, admin, "sensor", bytes.NewReader(data))
	if err != nil || !res.AlreadyImported || res.Imported != 0 {
		t.Fatalf("again %+v, %v", res, err)
	}
	if ev := log.only(t); ev.Detail != "already imported; nothing changed" {
		t.Errorf("event %+v", ev)
	}

	_, err = manifests.Import(ctx, admin, "gauge", bytes.NewReader(data))
	if e := wantCode(t, err, CodeConflict); e.Message != `batch "b1" was imported into product "sensor", not "gauge"` {
		t.Errorf("message %q", e.Message)
	}
	log.only(t)

	// Other batch, same devices.
	_, err = manifests.Import(ctx, admin, "sensor", bytes.NewReader(writeManifest(t, station, "b2", "dev", 2)))
	var dup *DuplicateDevicesError
	if wantCode(t, err, CodeDuplicateDevices); !errors.As(err, &dup) || len(dup.Identities) != 2 {
		t.Fatalf("duplicates %v", err)
	}
	if ev := log.only(t); ev.Subject != "batch:b2" || ev.Detail != "duplicate-devices: 2 devices registered by other batches" {
		t.Errorf("event %+v", ev)
	}

	// Altered: one byte of a device line.
	bad := bytes.Replace(data, []byte(`"puf"`), []byte(`"inj"`), 1)
	_, err = manifests.Import(ctx, admin, "sensor", bytes.NewReader(bad))
	wantCode(t, err, CodeManifestInvalid)
	if ev := log.only(t); ev.Subject != "station:"+stationID.String() {
		t.Errorf("event %+v", ev)
	}

	// A new batch whose station signature fails once every record has
	// verified and gone to the store: nothing of it is kept.
	devicesBefore := len(st.devices)
	unsigned := writeManifest(t, station, "b3", "unsigned", 3)
	at := bytes.LastIndex(unsigned, []byte(`"signature":"`)) + len(`"signature":"`)
	unsigned[at] = map[bool]byte{true: 'B', false: 'A'}[unsigned[at] == 'A']
	_, err = manifests.Import(ctx, admin, "sensor", bytes.NewReader(unsigned))
	if e := wantCode(t, err, CodeManifestInvalid); !strings.Contains(e.Message, "signature") {
		t.Errorf("message %q", e.Message)
	}
	if _, ok := st.batches["b3"]; ok || len(st.devices) != devicesBefore {
		t.Errorf("a manifest with a bad signature left batch b3 or %d devices", len(st.devices)-devicesBefore)
	}
	log.only(t)

	// Truncated, and a front door's own refusal passing through.
	_, err = manifests.Import(ctx, admin, "sensor", bytes.NewReader(data[:len(data)/2]))
	wantCode(t, err, CodeManifestInvalid)
	log.only(t)
	limit := &Error{Code: CodeBodyTooLarge, Message: "too large"}
	_, err = manifests.Import(ctx, admin, "sensor", errAfterReader{data[:100], limit})
	if wantCode(t, err, CodeBodyTooLarge); log.only(t).Detail != "body-too-large" {
		t.Error("body-too-large not audited as such")
	}
}

// errAfterReader returns data, then err.
type errAfterReader struct {
	data []byte
	err  error
}

func (r errAfterReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.err
	}
	n := copy(p, r.data)
	return n, r.err
}

func TestClassify(t *testing.T) {
	for err, want := range map[error]string{
		fmt.Errorf("get: %w", store.ErrNotFound): "not-found: no such record",
		store.ErrExists:                          "conflict: the record exists already",
		store.ErrConflict:                        "conflict: the record's state refuses the change",
		context.Canceled:                         "internal: ",
		Errorf(CodeForbidden, "no"):              "forbidden: no",
	} {
		e := Classify(err)
		if got := e.Code + ": " + e.Message; got != want {
			t.Errorf("Classify(%v) = %q, want %q", err, got, want)
		}
	}
}

// TestDeviceTransitions: each lifecycle use case is one audit event under
// its own action, enqueues the outbox's jobs for the device as it was,
// and refuses a transition the state does not allow with
// transition-not-allowed naming the state, changing nothing.
func TestDeviceTransitions(t *testing.T) {
	ctx := context.Background()
	rec, log := newRecorder()
	id := identity.ID{1}
	st := &fakeDevices{devices: map[identity.ID]store.Device{
		id: {Identity: id, State: store.StateOnboarded, OnboardedAt: testStart},
	}}
	outbox := connector.Outbox{Connectors: []string{"mqtt"}}
	devices := NewDevices(st, outbox, rec, testNow)
	admin := caller(ScopeAdmin)
	type call func(context.Context, Caller, identity.ID, TransitionRequest) (DeviceStatus, error)
	for _, c := range []struct {
		name      string
		call      call
		action    string
		wantState store.DeviceState
		wantJob   string // the kind of the one job enqueued; "" for none
		wantCode  string
	}{
		{"suspend", devices.Suspend, ActionDeviceSuspend, store.StateSuspended, store.JobDeregister, ""},
		{"suspend again", devices.Suspend, ActionDeviceSuspend, store.StateSuspended, "", ""},
		{"resume", devices.Resume, ActionDeviceResume, store.StateOnboarded, store.JobRegister, ""},
		{"reprovision an onboarded device", devices.Reprovision, ActionDeviceReprovision, store.StateOnboarded, "", CodeTransitionNotAllowed},
		{"decommission", devices.Decommission, ActionDeviceDecommission, store.StateDecommissioned, store.JobDeregister, ""},
		{"resume a decommissioned device", devices.Resume, ActionDeviceResume, store.StateDecommissioned, "", CodeTransitionNotAllowed},
		{"reprovision", devices.Reprovision, ActionDeviceReprovision, store.StateRegistered, "", ""},
		{"suspend a registered device", devices.Suspend, ActionDeviceSuspend, store.StateRegistered, "", CodeTransitionNotAllowed},
		{"revoke a never onboarded device", devices.Revoke, ActionDeviceRevoke, store.StateRevoked, "", ""},
		{"resume a revoked device", devices.Resume, ActionDeviceResume, store.StateRevoked, "", CodeTransitionNotAllowed},
		{"reprovision a revoked device", devices.Reprovision, ActionDeviceReprovision, store.StateRevoked, "", CodeTransitionNotAllowed},
	} {
		t.Run(c.name, func(t *testing.T) {
			jobsBefore := len(st.enqueued)
			got, err := c.call(ctx, admin, id, TransitionRequest{Reason: "ticket 42"})
			ev := log.only(t)
			if ev.Action != c.action || ev.Subject != "device:"+id.String() {
				t.Errorf("event %+v, want %s on the device", ev, c.action)
			}
			if st.devices[id].State != c.wantState {
				t.Errorf("device %s, want %s", st.devices[id].State, c.wantState)
			}
			if c.wantCode != "" {
				wantCode(t, err, c.wantCode)
				if msg := err.(*Error).Message; !strings.Contains(msg, "that is "+string(c.wantState)) {
					t.Errorf("message %q does not name the state %s", msg, c.wantState)
				}
				if ev.Outcome != "error" || !strings.HasPrefix(ev.Detail, CodeTransitionNotAllowed+": ") {
					t.Errorf("event %+v, want an error naming the code", ev)
				}
				if len(st.enqueued) != jobsBefore {
					t.Errorf("a refused transition enqueued %+v", st.enqueued[jobsBefore:])
				}
				return
			}
			if err != nil || got.State != c.wantState || ev.Outcome != "ok" {
				t.Fatalf("%+v, %v, event %+v", got.Device, err, ev)
			}
			jobs := st.enqueued[jobsBefore:]
			switch {
			case c.wantJob == "" && len(jobs) != 0:
				t.Errorf("enqueued %+v, want none", jobs)
			case c.wantJob != "" && (len(jobs) != 1 || jobs[0].Kind != c.wantJob || jobs[0].Identity != id):
				t.Errorf("enqueued %+v, want one %s job", jobs, c.wantJob)
			}
		})
	}
	_, err := devices.Suspend(ctx, admin, id, TransitionRequest{Reason: "bad\x00reason"})
	wantCode(t, err, CodeMalformed)
	log.only(t)
}
