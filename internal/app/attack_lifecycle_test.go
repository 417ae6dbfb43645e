package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/httpapi"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// Attacks on the device lifecycle (docs/lifecycle.md) over the real HTTPS
// interface: a device an administrator suspended, revoked or
// decommissioned keeps its certificate and its enrolment key, and tries
// them all; a token without the lifecycle scopes tries the transitions.

// lifecycleEnv is a platform with a registered fleet and a client per
// lifecycle scope.
type lifecycleEnv struct {
	p                         *Platform
	f                         *fleet
	admin, suspender, revoker *httpapi.Client
	reader                    *httpapi.Client
}

func newLifecycleEnv(t *testing.T, algs ...sigalg.ID) *lifecycleEnv {
	t.Helper()
	p := start(t, newDataDir(t), sigalg.ECDSAP256)
	f := newFleet(t, algs...)
	admin := adminClient(t, p)
	f.register(t, admin)
	e := &lifecycleEnv{p: p, f: f, admin: admin}
	e.suspender = e.tokenClient(t, httpapi.ScopeDevicesSuspend)
	e.revoker = e.tokenClient(t, httpapi.ScopeDevicesRevoke)
	e.reader = e.tokenClient(t, httpapi.ScopeDevicesRead)
	return e
}

func (e *lifecycleEnv) tokenClient(t *testing.T, scopes ...string) *httpapi.Client {
	t.Helper()
	tok, err := e.admin.CreateToken(context.Background(), httpapi.TokenRequest{Name: fmt.Sprint(scopes), Scopes: scopes, TTL: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(e.p.CA.RootPEM())
	c, err := httpapi.NewClient(e.p.URL(), tok.Secret, roots)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// move asks c for transition tr of device i and wants code ("" for
// success).
func (e *lifecycleEnv) move(t *testing.T, c *httpapi.Client, i int, tr, code string) httpapi.Device {
	t.Helper()
	d, err := c.TransitionDevice(context.Background(), e.f.ids[i], tr, "ticket "+tr)
	if code == "" && err != nil || code != "" && !isProblem(err, code) {
		t.Fatalf("%s device %d: %v, want %q", tr, i, err, code)
	}
	return d
}

// uses tries device i's certificate for its credentials and a renewal,
// and wants code ("" for success) from both.
func (e *lifecycleEnv) uses(t *testing.T, i int, cert *tls.Certificate, code string) {
	t.Helper()
	ctx := context.Background()
	mtls := deviceClient(e.p.URL(), tlsClient(e.p, cert))
	_, err := mtls.Credentials(ctx)
	if code == "" && err != nil || code != "" && !isProblem(err, code) {
		t.Fatalf("credentials of device %d: %v, want %q", i, err, code)
	}
	op, err := e.f.devices[i].OperationalKey(sigalg.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	_, err = mtls.RenewWithKey(ctx, e.f.ids[i], op)
	if code == "" && err != nil || code != "" && !isProblem(err, code) {
		t.Fatalf("renewal of device %d: %v, want %q", i, err, code)
	}
}

func (e *lifecycleEnv) onboard(t *testing.T, i int, code string) *tls.Certificate {
	t.Helper()
	_, cert, err := onboard(t, e.p, e.f.devices[i], e.f.ids[i])
	if code == "" && err != nil || code != "" && !isProblem(err, code) {
		t.Fatalf("onboarding device %d: %v, want %q", i, err, code)
	}
	return cert
}

// certificateReasons is the revocation reason of each of device i's
// certificates, newest first ("" for a good one).
func (e *lifecycleEnv) certificateReasons(t *testing.T, i int) []string {
	t.Helper()
	d, err := e.admin.GetDevice(context.Background(), e.f.ids[i])
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, c := range d.Certificates {
		out = append(out, c.RevocationReason)
	}
	return out
}

// TestAttackLifecycleSuspended: a suspended device's certificate is
// refused for credentials and renewal, and its enrolment key for a new
// onboarding, all with device-suspended; resumed, it works again.
func TestAttackLifecycleSuspended(t *testing.T) {
	t.Parallel()
	e := newLifecycleEnv(t, sigalg.ECDSAP256, sigalg.Ed25519)
	cert := e.onboard(t, 0, "")
	if d := e.move(t, e.suspender, 0, "suspend", ""); d.State != "suspended" {
		t.Fatalf("suspended device reads %s", d.State)
	}
	e.uses(t, 0, cert, "device-suspended")
	e.onboard(t, 0, "device-suspended")
	if got := fmt.Sprint(e.certificateReasons(t, 0)); got != "[certificate-hold]" {
		t.Fatalf("certificates of a suspended device: %s, want on hold", got)
	}
	// Resuming an onboarded device changes nothing; suspending again
	// neither.
	e.move(t, e.suspender, 0, "suspend", "")
	if d := e.move(t, e.suspender, 0, "resume", ""); d.State != "onboarded" {
		t.Fatalf("resumed device reads %s", d.State)
	}
	e.uses(t, 0, cert, "")
	if got := fmt.Sprint(e.certificateReasons(t, 0)); got != "[ ]" {
		t.Fatalf("certificates after resume and a renewal: %s, want both good", got)
	}
	// The bystander was never touched.
	e.onboard(t, 1, "")
}

// TestAttackLifecycleRevokedIsTerminal: a revoked device cannot be
// resumed, decommissioned or reprovisioned back into service, and its
// certificate and key are refused.
func TestAttackLifecycleRevokedIsTerminal(t *testing.T) {
	t.Parallel()
	e := newLifecycleEnv(t, sigalg.ECDSAP256)
	cert := e.onboard(t, 0, "")
	e.move(t, e.suspender, 0, "suspend", "")
	e.move(t, e.revoker, 0, "revoke", "")
	for _, c := range []struct {
		c  *httpapi.Client
		tr string
	}{{e.suspender, "resume"}, {e.suspender, "suspend"}, {e.revoker, "decommission"}, {e.revoker, "reprovision"}} {
		e.move(t, c.c, 0, c.tr, "transition-not-allowed")
	}
	e.uses(t, 0, cert, "device-revoked")
	e.onboard(t, 0, "device-revoked")
	if got := fmt.Sprint(e.certificateReasons(t, 0)); got != "[key-compromise]" {
		t.Fatalf("certificates of a revoked device: %s", got)
	}
}

// TestAttackLifecycleDecommissionReprovision: a decommissioned device
// cannot onboard or use its certificate; reprovisioned, its old
// certificate stays refused and it must onboard afresh.
func TestAttackLifecycleDecommissionReprovision(t *testing.T) {
	t.Parallel()
	e := newLifecycleEnv(t, sigalg.Ed25519)
	old := e.onboard(t, 0, "")
	e.move(t, e.revoker, 0, "decommission", "")
	e.uses(t, 0, old, "device-decommissioned")
	e.onboard(t, 0, "device-decommissioned")
	e.move(t, e.suspender, 0, "resume", "transition-not-allowed")
	if d := e.move(t, e.revoker, 0, "reprovision", ""); d.State != "registered" || d.OnboardedAt != nil {
		t.Fatalf("reprovisioned device: %s, onboarded at %v", d.State, d.OnboardedAt)
	}
	e.uses(t, 0, old, "not-onboarded")
	fresh := e.onboard(t, 0, "")
	e.uses(t, 0, fresh, "")
	e.uses(t, 0, old, "device-revoked")
	reasons := e.certificateReasons(t, 0)
	if len(reasons) != 3 || reasons[0] != "" || reasons[2] != "cessation-of-operation" {
		t.Fatalf("certificates after a fresh onboarding: %v, want the new ones good and the old one revoked", reasons)
	}
}

// TestAttackLifecycleScopes: a token without the transition's scope is
// refused (forbidden) and changes nothing; devices:suspend does not
// reach the transitions that end certificates, nor undo a
// decommission.
func TestAttackLifecycleScopes(t *testing.T) {
	t.Parallel()
	e := newLifecycleEnv(t, sigalg.ECDSAP256)
	cert := e.onboard(t, 0, "")
	for _, c := range []struct {
		c  *httpapi.Client
		tr string
	}{
		{e.reader, "suspend"}, {e.reader, "resume"}, {e.reader, "revoke"}, {e.reader, "decommission"}, {e.reader, "reprovision"},
		{e.suspender, "revoke"}, {e.suspender, "decommission"}, {e.suspender, "reprovision"},
		{e.revoker, "suspend"}, {e.revoker, "resume"},
	} {
		e.move(t, c.c, 0, c.tr, "forbidden")
	}
	d, err := e.admin.GetDevice(context.Background(), e.f.ids[0])
	if err != nil || d.State != "onboarded" || d.StateChangedAt != nil {
		t.Fatalf("device after refused transitions: %+v, %v", d, err)
	}
	e.uses(t, 0, cert, "")
	denied := 0
	for _, ev := range auditEvents(t, e.admin) {
		if ev.Subject == "device:"+e.f.ids[0].String() && ev.Outcome == "denied" {
			denied++
		}
	}
	if denied != 10 {
		t.Fatalf("%d denied transitions in the audit log, want 10", denied)
	}
}

// TestAttackLifecycleAuditOnePerTransition: every transition, allowed,
// idempotent or refused, is exactly one audit event under its action.
func TestAttackLifecycleAuditOnePerTransition(t *testing.T) {
	t.Parallel()
	e := newLifecycleEnv(t, sigalg.ECDSAP256)
	e.onboard(t, 0, "")
	subject := "device:" + e.f.ids[0].String()
	count := func() map[string]int {
		n := map[string]int{}
		for _, ev := range auditEvents(t, e.admin) {
			if ev.Subject == subject {
				n[ev.Action+"/"+ev.Outcome]++
			}
		}
		return n
	}
	for _, c := range []struct {
		c         *httpapi.Client
		tr, code  string
		wantEvent string
	}{
		{e.suspender, "suspend", "", "device.suspend/ok"},
		{e.suspender, "suspend", "", "device.suspend/ok"},
		{e.suspender, "resume", "", "device.resume/ok"},
		{e.revoker, "reprovision", "transition-not-allowed", "device.reprovision/error"},
		{e.revoker, "decommission", "", "device.decommission/ok"},
		{e.revoker, "reprovision", "", "device.reprovision/ok"},
		{e.revoker, "revoke", "", "device.revoke/ok"},
		{e.suspender, "resume", "transition-not-allowed", "device.resume/error"},
	} {
		before := count()
		e.move(t, c.c, 0, c.tr, c.code)
		after := count()
		total := 0
		for k, v := range after {
			total += v - before[k]
		}
		if total != 1 || after[c.wantEvent] != before[c.wantEvent]+1 {
			t.Fatalf("%s: audit went from %v to %v, want one more %s", c.tr, before, after, c.wantEvent)
		}
	}
}

// TestAttackLifecycleRace: a suspension and a revocation of one device
// sent at once, for several devices: whatever the order, each device
// ends revoked with its certificates revoked for key compromise, each
// call either succeeded or was refused as not allowed, and each left one
// audit event.
func TestAttackLifecycleRace(t *testing.T) {
	t.Parallel()
	algs := []sigalg.ID{sigalg.ECDSAP256, sigalg.Ed25519, sigalg.ECDSAP256, sigalg.Ed25519}
	e := newLifecycleEnv(t, algs...)
	for i := range algs {
		e.onboard(t, i, "")
	}
	ctx := context.Background()
	errs := make([][2]error, len(algs))
	var wg sync.WaitGroup
	for i := range algs {
		for j, c := range []struct {
			c  *httpapi.Client
			tr string
		}{{e.suspender, "suspend"}, {e.revoker, "revoke"}} {
			wg.Go(func() {
				_, errs[i][j] = c.c.TransitionDevice(ctx, e.f.ids[i], c.tr, "race")
			})
		}
	}
	wg.Wait()
	events := auditEvents(t, e.admin)
	for i, id := range e.f.ids {
		if errs[i][1] != nil {
			t.Fatalf("device %d: revoke %v", i, errs[i][1])
		}
		var prob *httpapi.Problem
		if err := errs[i][0]; err != nil && !(errors.As(err, &prob) && prob.Code == "transition-not-allowed") {
			t.Fatalf("device %d: suspend %v, want success or transition-not-allowed", i, err)
		}
		d, err := e.admin.GetDevice(ctx, id)
		if err != nil || d.State != "revoked" || len(d.Certificates) != 1 || d.Certificates[0].RevocationReason != "key-compromise" {
			t.Fatalf("device %d after the race: %+v, %v", i, d, err)
		}
		if n := transitionEvents(events, id); n != 2 {
			t.Fatalf("device %d: %d transition events, want 2", i, n)
		}
	}
}

func transitionEvents(events []httpapi.AuditEvent, id identity.ID) int {
	n := 0
	for _, ev := range events {
		if ev.Subject == "device:"+id.String() && (ev.Action == "device.suspend" || ev.Action == "device.revoke") {
			n++
		}
	}
	return n
}
