package httpapi

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/manifest"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// importFixture imports two batches: 30 Ed25519 and 10 ECDSA devices of
// product sensor in batch a, 5 Ed25519 of product gauge in batch b.
func importFixture(t *testing.T, e *env) (a, b []manifest.Record) {
	t.Helper()
	station := e.registry(t)
	e.call(t, "POST", "/v1/admin/products", e.admin, ProductRequest{
		ID: "gauge", Name: "Gauge", CertValidity: "720h", CloudEndpoint: "https://gauge.example.com",
	}).decode(t, 201, &Product{})
	a = append(devices(t, sigalg.Ed25519, "a", 30), devices(t, sigalg.ECDSAP256, "a", 10)...)
	b = devices(t, sigalg.Ed25519, "b", 5)
	e.importManifest(t, "sensor", writeManifest(t, station, "a", a)).decode(t, 201, &ImportResult{})
	e.importManifest(t, "gauge", writeManifest(t, station, "b", b)).decode(t, 201, &ImportResult{})
	return a, b
}

func TestDeviceListFilterAndPaging(t *testing.T) {
	e := newEnv(t)
	a, b := importFixture(t, e)
	for _, tc := range []struct {
		query string
		want  int
	}{
		{"", 45},
		{"product=sensor", 40},
		{"product=gauge", 5},
		{"batch=b", 5},
		{"algorithm=ecdsa-p256", 10},
		{"algorithm=ed25519&product=sensor", 30},
		{"state=registered", 45},
		{"state=onboarded", 0},
		{"product=nothing", 0},
	} {
		t.Run(tc.query, func(t *testing.T) {
			got := e.listAll(t, tc.query, 7)
			if len(got) != tc.want {
				t.Fatalf("%d devices, want %d", len(got), tc.want)
			}
			if !slices.IsSortedFunc(got, func(x, y identity.ID) int { return bytes.Compare(x[:], y[:]) }) {
				t.Fatal("not in identity order")
			}
			if len(slices.Compact(slices.Clone(got))) != len(got) {
				t.Fatal("a device on two pages")
			}
		})
	}
	// A page is complete: the filter's fields are all there.
	var page DeviceList
	e.call(t, "GET", "/v1/admin/devices?batch=b&limit=1000", e.admin, nil).decode(t, 200, &page)
	if page.Next != "" || len(page.Devices) != 5 {
		t.Fatalf("page %+v", page)
	}
	d := page.Devices[0]
	if d.Product != "gauge" || d.Batch != "b" || d.State != "registered" || d.Algorithm != "ed25519" || len(d.PublicKey) == 0 ||
		d.OnboardedAt != nil || d.RevokedAt != nil || !slices.ContainsFunc(b, func(r manifest.Record) bool { return r.Identity == d.Identity }) {
		t.Fatalf("device %+v", d)
	}
	_ = a
	for _, bad := range []string{
		"state=lost", "algorithm=rsa", "algorithm=ED25519", "after=xyz", "limit=0", "limit=1001", "limit=01", "limit=x",
		"product=Not_A_Slug", "batch=" + strings.Repeat("x", 65), "sate=revoked", "state=revoked&state=onboarded", "a=%zz",
	} {
		t.Run("bad "+bad, func(t *testing.T) {
			e.call(t, "GET", "/v1/admin/devices?"+bad, e.admin, nil).wantProblem(t, 400, "malformed-request")
		})
	}
}

// listAll follows next cursors and returns every identity listed.
func (e *env) listAll(t *testing.T, query string, limit int) []identity.ID {
	t.Helper()
	var ids []identity.ID
	after := ""
	for pages := 0; ; pages++ {
		q := fmt.Sprintf("limit=%d", limit)
		if query != "" {
			q += "&" + query
		}
		if after != "" {
			q += "&after=" + after
		}
		var page DeviceList
		e.call(t, "GET", "/v1/admin/devices?"+q, e.admin, nil).decode(t, 200, &page)
		for _, d := range page.Devices {
			ids = append(ids, d.Identity)
		}
		if page.Next == "" {
			return ids
		}
		if len(page.Devices) != limit || page.Next != page.Devices[limit-1].Identity.String() || pages > 100 {
			t.Fatalf("page of %d with next %q", len(page.Devices), page.Next)
		}
		after = page.Next
	}
}

func TestDeviceGetAndRevoke(t *testing.T) {
	e := newEnv(t)
	a, _ := importFixture(t, e)
	id := a[0].Identity
	ctx := context.Background()
	// Give the device a certificate, as onboarding would.
	cert := store.Certificate{Serial: [16]byte{1, 2, 3}, Identity: id, NotBefore: testStart, NotAfter: testStart.Add(8760 * time.Hour),
		DER: []byte{0x30, 0}, IssuedAt: testStart}
	if err := e.store.RecordOnboarding(ctx, cert, testStart); err != nil {
		t.Fatal(err)
	}
	var d Device
	e.call(t, "GET", "/v1/admin/devices/"+id.String(), e.admin, nil).decode(t, 200, &d)
	if d.State != "onboarded" || d.OnboardedAt == nil || len(d.Certificates) != 1 ||
		d.Certificates[0].Serial != "01020300000000000000000000000000" || d.Certificates[0].RevokedAt != nil {
		t.Fatalf("device %+v", d)
	}
	e.call(t, "GET", "/v1/admin/devices/"+strings.Repeat("0", 64), e.admin, nil).wantProblem(t, 404, "not-found")
	e.call(t, "GET", "/v1/admin/devices/not-an-identity", e.admin, nil).wantProblem(t, 404, "not-found")

	// Revoke needs its scope and a reason.
	reader := e.token(t, "reader", ScopeDevicesRead)
	e.call(t, "POST", "/v1/admin/devices/"+id.String()+"/revoke", reader, RevokeRequest{Reason: "stolen"}).wantProblem(t, 403, "forbidden")
	e.call(t, "POST", "/v1/admin/devices/"+id.String()+"/revoke", e.admin, RevokeRequest{}).wantProblem(t, 400, "malformed-request")
	e.call(t, "POST", "/v1/admin/devices/"+id.String()+"/revoke", e.admin, `{"reason":"stolen","force":true}`).wantProblem(t, 400, "unknown-field")
	if got, _ := e.store.GetDevice(ctx, id); got.State != store.StateOnboarded {
		t.Fatalf("state %s after refused revocations", got.State)
	}
	e.clock.Advance(time.Hour)
	var revoked Device
	e.call(t, "POST", "/v1/admin/devices/"+id.String()+"/revoke", e.admin, RevokeRequest{Reason: "stolen from the warehouse"}).decode(t, 200, &revoked)
	if revoked.State != "revoked" || revoked.RevokedAt == nil || !revoked.RevokedAt.Equal(testStart.Add(time.Hour)) || revoked.RevokeReason != "stolen from the warehouse" {
		t.Fatalf("revoked %+v", revoked)
	}
	e.call(t, "GET", "/v1/admin/devices/"+id.String(), e.admin, nil).decode(t, 200, &d)
	if d.Certificates[0].RevokedAt == nil {
		t.Fatal("certificate not revoked with its device")
	}
	// Again: nothing changes, the first time stays.
	e.clock.Advance(time.Hour)
	e.call(t, "POST", "/v1/admin/devices/"+id.String()+"/revoke", e.admin, RevokeRequest{Reason: "again"}).decode(t, 200, &revoked)
	if !revoked.RevokedAt.Equal(testStart.Add(time.Hour)) {
		t.Fatalf("second revocation moved the time to %v", revoked.RevokedAt)
	}
	e.call(t, "POST", "/v1/admin/devices/"+strings.Repeat("ab", 32)+"/revoke", e.admin, RevokeRequest{Reason: "x"}).wantProblem(t, 404, "not-found")
	var list DeviceList
	e.call(t, "GET", "/v1/admin/devices?state=revoked", e.admin, nil).decode(t, 200, &list)
	if len(list.Devices) != 1 || list.Devices[0].Identity != id {
		t.Fatalf("revoked devices %+v", list.Devices)
	}
	ev := e.audit(t, store.AuditFilter{Action: "device.revoke", Subject: "device:" + id.String()})
	if len(ev) != 5 || ev[0].Outcome != "denied" || ev[1].Outcome != "error" || ev[3].Outcome != "ok" ||
		ev[3].Detail != "stolen from the warehouse" || ev[4].Detail != "already revoked; nothing changed" {
		t.Fatalf("revoke audit %+v", ev)
	}
}

func TestAuditListing(t *testing.T) {
	e := newEnv(t)
	importFixture(t, e)
	reader := e.token(t, "auditor", ScopeAuditRead)
	e.call(t, "GET", "/v1/admin/devices", reader, nil).wantProblem(t, 403, "forbidden")

	var all []AuditEvent
	after := int64(0)
	for {
		var page AuditList
		e.call(t, "GET", fmt.Sprintf("/v1/admin/audit?limit=3&after=%d", after), reader, nil).decode(t, 200, &page)
		all = append(all, page.Events...)
		if page.Next == 0 {
			break
		}
		after = page.Next
	}
	var actions []string
	for i, ev := range all {
		if i > 0 && ev.Seq <= all[i-1].Seq {
			t.Fatal("audit not in order")
		}
		actions = append(actions, ev.Action+"/"+ev.Outcome)
	}
	// Each page read is itself audited, after the events it read.
	want := []string{"station.create/ok", "product.create/ok", "product.create/ok", "manifest.import/ok", "manifest.import/ok", "device.list/denied", "audit.list/ok", "audit.list/ok"}
	if strings.Join(actions, " ") != strings.Join(want, " ") {
		t.Fatalf("audit actions %v, want %v", actions, want)
	}
	adminID, _, _ := parseBearer(e.admin)
	var byActor AuditList
	e.call(t, "GET", "/v1/admin/audit?actor=token:"+adminID+"&action=manifest.import", reader, nil).decode(t, 200, &byActor)
	if len(byActor.Events) != 2 || byActor.Events[0].Subject != "batch:a" || byActor.Events[0].RemoteAddr != "127.0.0.1" {
		t.Fatalf("filtered %+v", byActor.Events)
	}
	// The listing itself is audited.
	if ev := e.lastAudit(t); ev.Action != "audit.list" || ev.Outcome != "ok" {
		t.Fatalf("last %+v", ev)
	}
	e.call(t, "GET", "/v1/admin/audit?after=-1", reader, nil).wantProblem(t, 400, "malformed-request")
	e.call(t, "GET", "/v1/admin/audit?actor="+strings.Repeat("x", 600), reader, nil).wantProblem(t, 400, "malformed-request")
}

// TestDeviceTransitionRoutes: the lifecycle routes need their scope
// (devices:suspend for suspend and resume, devices:revoke for the rest),
// answer transition-not-allowed naming the state, and the list filters
// by the new states.
func TestDeviceTransitionRoutes(t *testing.T) {
	e := newEnv(t)
	a, _ := importFixture(t, e)
	id := a[0].Identity
	ctx := context.Background()
	cert := store.Certificate{Serial: [16]byte{4, 5, 6}, Identity: id, NotBefore: testStart, NotAfter: testStart.Add(8760 * time.Hour),
		DER: []byte{0x30, 0}, IssuedAt: testStart}
	if err := e.store.RecordOnboarding(ctx, cert, testStart); err != nil {
		t.Fatal(err)
	}
	path := func(tr string) string { return "/v1/admin/devices/" + id.String() + "/" + tr }
	reason := TransitionRequest{Reason: "ticket 4711"}
	reader := e.token(t, "reader", ScopeDevicesRead)
	suspender := e.token(t, "suspender", ScopeDevicesSuspend)
	revoker := e.token(t, "revoker", ScopeDevicesRevoke)
	for _, c := range []struct{ token, transition string }{
		{reader, "suspend"}, {revoker, "suspend"}, {revoker, "resume"},
		{suspender, "revoke"}, {suspender, "decommission"}, {suspender, "reprovision"},
	} {
		e.call(t, "POST", path(c.transition), c.token, reason).wantProblem(t, 403, "forbidden")
	}
	if got, _ := e.store.GetDevice(ctx, id); got.State != store.StateOnboarded {
		t.Fatalf("state %s after refused transitions", got.State)
	}
	var d Device
	e.call(t, "POST", path("suspend"), suspender, reason).decode(t, 200, &d)
	if d.State != "suspended" || d.StateReason != "ticket 4711" || d.StateChangedAt == nil {
		t.Fatalf("suspended %+v", d)
	}
	e.call(t, "GET", "/v1/admin/devices/"+id.String(), e.admin, nil).decode(t, 200, &d)
	if d.Certificates[0].RevokedAt == nil || d.Certificates[0].RevocationReason != "certificate-hold" {
		t.Fatalf("certificate of a suspended device %+v", d.Certificates[0])
	}
	var list DeviceList
	e.call(t, "GET", "/v1/admin/devices?state=suspended", e.admin, nil).decode(t, 200, &list)
	if len(list.Devices) != 1 || list.Devices[0].Identity != id {
		t.Fatalf("suspended devices %+v", list.Devices)
	}
	e.call(t, "GET", "/v1/admin/devices?state=quarantined", e.admin, nil).wantProblem(t, 400, "malformed-request")
	p := e.call(t, "POST", path("reprovision"), revoker, reason).wantProblem(t, 409, "transition-not-allowed")
	if !strings.Contains(p.Detail, "suspended") {
		t.Fatalf("detail %q does not name the state", p.Detail)
	}
	e.call(t, "POST", path("revoke"), revoker, reason).decode(t, 200, &d)
	p = e.call(t, "POST", path("resume"), suspender, reason).wantProblem(t, 409, "transition-not-allowed")
	if !strings.Contains(p.Detail, "revoked") {
		t.Fatalf("detail %q does not name the state", p.Detail)
	}
	e.call(t, "GET", "/v1/admin/devices/"+id.String(), e.admin, nil).decode(t, 200, &d)
	if d.State != "revoked" || d.Certificates[0].RevocationReason != "key-compromise" {
		t.Fatalf("revoked %+v", d)
	}
	for _, action := range []string{"device.suspend", "device.resume", "device.revoke", "device.reprovision"} {
		if ev := e.audit(t, store.AuditFilter{Action: action, Subject: "device:" + id.String()}); len(ev) == 0 {
			t.Errorf("no %s event", action)
		}
	}
}
