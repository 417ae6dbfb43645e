package app

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/httpapi"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/monitoring"
	"github.com/hallmark-iot/hallmark/internal/pki"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// Attacks monitoring watches for (docs/lifecycle.md, "Monitoring"), over
// HTTPS as an attacker or an operator meets them: two devices sharing one
// identity's key, a burst of guessed proofs for a registered identity, an
// identity onboarded again from elsewhere, firmware behind its product's
// minimum, and each product's own heartbeat.

// fromSource is an HTTPS client of p presenting cert (nil: none) whose
// connections leave from source, a loopback address.
func fromSource(p *Platform, source string, cert *tls.Certificate) *http.Client {
	c := tlsClient(p, cert)
	c.Transport.(*http.Transport).DialContext = (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(source)}, Timeout: 5 * time.Second}).DialContext
	return c
}

// reportFrom sends r with cert from source.
func (e *monitoringEnv) reportFrom(t *testing.T, source string, cert *tls.Certificate, r monitoring.StatusReport) {
	t.Helper()
	tr := &httpapi.OnboardingTransport{BaseURL: e.p.URL(), HTTP: fromSource(e.p, source, cert)}
	if _, err := tr.ReportStatus(context.Background(), r); err != nil {
		t.Fatalf("status report from %s: %v", source, err)
	}
}

// events lists the events of kind, read from the API.
func (e *monitoringEnv) events(t *testing.T, kind store.EventKind) []httpapi.Event {
	t.Helper()
	list, err := e.admin.ListEvents(context.Background(), httpapi.EventQuery{Kind: string(kind)})
	if err != nil {
		t.Fatal(err)
	}
	return list.Events
}

// awaitEvents waits until there are want events of kind: the watch of
// onboarding outcomes runs off the request path. Not a timed assertion:
// the deadline only stops a broken test.
func (e *monitoringEnv) awaitEvents(t *testing.T, kind store.EventKind, want int) []httpapi.Event {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := e.events(t, kind)
		if len(got) >= want || time.Now().After(deadline) {
			return got
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestAttackCloneSharedKey: two devices with one identity's key report in
// turn. One device never boots earlier than it did nor lowers its
// security counter; the two together do both, and that is one
// device.clone_suspected event per hour, not one per report. An honest
// device changing networks is not flagged.
func TestAttackCloneSharedKey(t *testing.T) {
	t.Parallel()
	e := newMonitoringEnv(t, 2)
	_, cert, err := onboard(t, e.p, e.f.devices[0], e.f.ids[0])
	if err != nil {
		t.Fatal(err)
	}
	_, honest, err := onboard(t, e.p, e.f.devices[1], e.f.ids[1])
	if err != nil {
		t.Fatal(err)
	}
	original, clone := goodReport(), goodReport()
	original.UptimeSeconds = 10 * 86400 // up for ten days
	clone.UptimeSeconds = 60            // the clone booted a minute ago
	e.reportFrom(t, "127.0.0.2", cert, original)
	e.reportFrom(t, "127.0.0.3", cert, clone) // looks like a reboot: nothing yet
	if got := e.events(t, store.EventCloneSuspected); len(got) != 0 {
		t.Fatalf("a reboot flagged: %+v", got)
	}
	original.UptimeSeconds += 30
	e.reportFrom(t, "127.0.0.2", cert, original) // booted ten days before the report before
	for range 3 {                                // and so on, within the hour
		e.reportFrom(t, "127.0.0.3", cert, clone)
		e.reportFrom(t, "127.0.0.2", cert, original)
	}
	got := e.events(t, store.EventCloneSuspected)
	if len(got) != 1 || got[0].Identity != e.f.ids[0].String() || !strings.Contains(got[0].Detail, "boot time went back") {
		t.Fatalf("clone events: %+v, want one about the boot time", got)
	}

	// An hour on, the original updates (its counter rises); the clone
	// reports the old counter.
	e.clock.advance(time.Hour + time.Minute)
	original.SecurityCounter, original.UptimeSeconds = 4, 20
	clone.UptimeSeconds = 10
	e.reportFrom(t, "127.0.0.2", cert, original)
	e.reportFrom(t, "127.0.0.3", cert, clone)
	got = e.events(t, store.EventCloneSuspected)
	if len(got) != 2 || !strings.Contains(got[1].Detail, "security counter went down from 4 to 3") {
		t.Fatalf("clone events: %+v, want a second about the counter", got)
	}

	// The honest device moves between networks, its boot time steady.
	r := goodReport()
	for i, source := range []string{"127.0.0.4", "127.0.0.5", "127.0.0.6"} {
		r.UptimeSeconds = int64(120 + 60*i)
		e.reportFrom(t, source, honest, r)
		e.clock.advance(time.Minute)
	}
	list, err := e.admin.ListEvents(context.Background(), httpapi.EventQuery{Kind: string(store.EventCloneSuspected), Identity: e.f.ids[1].String()})
	if err != nil || len(list.Events) != 0 {
		t.Errorf("an address change flagged: %+v, %v", list.Events, err)
	}
	if m := scrapeMetrics(t, e.p); !strings.Contains(m, `hallmark_device_events_total{kind="device.clone_suspected"} 2`+"\n") {
		t.Errorf("metrics lack the clone events:\n%s", m)
	}
}

// failProof makes one proof of possession claiming id, from source, that
// cannot hold (signed by another device's key) and returns the problem
// code.
func (e *monitoringEnv) failProof(t *testing.T, id identity.ID, source string) string {
	t.Helper()
	csr, _ := pki.CreateCSR(mustKey(t), id.String())
	_, err := deviceClient(e.p.URL(), fromSource(e.p, source, nil)).Onboard(context.Background(), foreignProver{e.f.devices[1], id}, id, csr)
	var p *httpapi.Problem
	if !errors.As(err, &p) {
		t.Fatalf("proof claiming %s: %v, want a problem", id, err)
	}
	return p.Code
}

// TestAttackCloneFailedProofBurst: a burst of refused proofs for one
// registered identity is one clone event, however long the burst. The
// same burst for an unknown identity gets the same answer, and nothing:
// the registered identity's refusals are handed to monitoring off the
// request path, as everyone's are, so neither the answer nor the work
// done before it tells the two apart.
func TestAttackCloneFailedProofBurst(t *testing.T) {
	t.Parallel()
	e := newMonitoringEnv(t, 2)
	var unknown identity.ID
	copy(unknown[:], "an identity nobody registered...")
	for i := range 8 { // from several addresses, as a distributed guesser would
		source := "127.0.1." + strconv.Itoa(1+i%3)
		registered, stranger := e.failProof(t, e.f.ids[0], source), e.failProof(t, unknown, source)
		if registered != "proof-rejected" || stranger != registered {
			t.Fatalf("attempt %d: registered identity %q, unknown identity %q; want proof-rejected for both", i, registered, stranger)
		}
	}
	got := e.awaitEvents(t, store.EventCloneSuspected, 1)
	if len(got) != 1 || got[0].Identity != e.f.ids[0].String() || !strings.Contains(got[0].Detail, "5 refused proofs of possession within 10m0s") {
		t.Fatalf("clone events: %+v, want one for the registered identity", got)
	}
	// The queue is drained in order: a later onboarding outcome handled
	// means the burst's tail was too, and it added no second event.
	if _, _, err := onboard(t, e.p, e.f.devices[1], e.f.ids[1]); err != nil {
		t.Fatal(err)
	}
	awaitSource(t, e, e.f.ids[1])
	if got := e.events(t, store.EventCloneSuspected); len(got) != 1 {
		t.Errorf("clone events after the burst: %+v, want still one", got)
	}
	if e.p.monitor.Dropped() != 0 {
		t.Errorf("%d outcomes dropped", e.p.monitor.Dropped())
	}
}

// awaitSource waits until monitoring has noted where id onboarded from.
func awaitSource(t *testing.T, e *monitoringEnv, id identity.ID) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		// Noting the same source again is harmless: it is what was noted.
		if before, err := e.p.Store.NoteOnboardingSource(context.Background(), id, "127.0.0.1", time.Now()); err == nil && before != "" {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("onboarding of %s never noted", id)
}

// TestAttackCloneOnboardedAgain: an onboarded identity onboarding again
// from another address (its key copied) is a clone event; the device
// onboarding again from where it did is not.
func TestAttackCloneOnboardedAgain(t *testing.T) {
	t.Parallel()
	e := newMonitoringEnv(t, 1)
	d, id := e.f.devices[0], e.f.ids[0]
	op, err := d.OperationalKey(sigalg.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	for _, source := range []string{"127.0.0.1", "127.0.0.1", "127.0.0.9"} {
		if _, err := deviceClient(e.p.URL(), fromSource(e.p, source, nil)).OnboardWithKey(context.Background(), d, id, op); err != nil {
			t.Fatalf("onboarding from %s: %v", source, err)
		}
	}
	got := e.awaitEvents(t, store.EventCloneSuspected, 1)
	if len(got) != 1 || got[0].Detail != "onboarded again from 127.0.0.9; it onboarded from 127.0.0.1 before" {
		t.Fatalf("clone events: %+v", got)
	}
}

// TestMonitoringFirmwareOutdated: an operator raises a product's minimum
// firmware version; a device below it is one firmware.outdated event per
// version it reports, not one per heartbeat, and again once the minimum
// rises past it. A minimum that cannot be compared is refused.
func TestMonitoringFirmwareOutdated(t *testing.T) {
	t.Parallel()
	e := newMonitoringEnv(t, 1)
	ctx := context.Background()
	_, cert, err := onboard(t, e.p, e.f.devices[0], e.f.ids[0])
	if err != nil {
		t.Fatal(err)
	}
	bad := "latest"
	if _, err := e.admin.UpdateProduct(ctx, "meter", httpapi.ProductUpdateRequest{MinFirmwareVersion: &bad}); !isProblem(err, "malformed-request") {
		t.Fatalf("a minimum that cannot be compared: %v, want malformed-request", err)
	}
	minimum := "1.5.0"
	p, err := e.admin.UpdateProduct(ctx, "meter", httpapi.ProductUpdateRequest{MinFirmwareVersion: &minimum})
	if err != nil || p.MinFirmwareVersion != "1.5.0" || p.CertValidity != "720h" {
		t.Fatalf("update: %+v, %v", p, err)
	}
	e.clock.advance(time.Minute) // products are read again at most every 30 s
	r := goodReport()            // 1.4.2
	for range 3 {
		e.report(t, cert, r, "")
	}
	r.FirmwareVersion = "1.4.3"
	e.report(t, cert, r, "")
	r.FirmwareVersion = "1.5.0"
	e.report(t, cert, r, "")
	e.report(t, cert, r, "")
	minimum = "1.6.0-rc.1"
	if _, err := e.admin.UpdateProduct(ctx, "meter", httpapi.ProductUpdateRequest{MinFirmwareVersion: &minimum}); err != nil {
		t.Fatal(err)
	}
	e.clock.advance(time.Minute) // products are read again at most every 30 s
	e.report(t, cert, r, "")
	e.report(t, cert, r, "")
	var details []string
	for _, ev := range e.events(t, store.EventFirmwareOutdated) {
		details = append(details, ev.Detail)
	}
	want := []string{"reports 1.4.2, product minimum 1.5.0", "reports 1.4.3, product minimum 1.5.0", "reports 1.5.0, product minimum 1.6.0-rc.1"}
	if strings.Join(details, "|") != strings.Join(want, "|") {
		t.Errorf("firmware.outdated events: %q, want %q", details, want)
	}
	audit, err := e.admin.ListAudit(ctx, httpapi.AuditQuery{Action: "product.update"})
	if err != nil || len(audit.Events) != 3 || audit.Events[1].Detail != "min_firmware_version=1.5.0" || audit.Events[0].Outcome == "ok" {
		t.Errorf("audit of product.update: %+v, %v", audit.Events, err)
	}
}

// TestMonitoringHeartbeatPerProduct: a product's own heartbeat interval
// decides when its devices are silent, not the platform's (an hour here).
func TestMonitoringHeartbeatPerProduct(t *testing.T) {
	t.Parallel()
	e := newMonitoringEnv(t, 1)
	ctx := context.Background()
	interval := "3h"
	if _, err := e.admin.UpdateProduct(ctx, "meter", httpapi.ProductUpdateRequest{HeartbeatInterval: &interval}); err != nil {
		t.Fatal(err)
	}
	_, cert, err := onboard(t, e.p, e.f.devices[0], e.f.ids[0])
	if err != nil {
		t.Fatal(err)
	}
	e.report(t, cert, goodReport(), "")
	sweep := func(want int) {
		t.Helper()
		res, err := e.p.monitor.Sweep(ctx)
		if err != nil || res.Silent != want {
			t.Errorf("sweep: %+v, %v; want %d silent", res, err, want)
		}
	}
	e.clock.advance(2 * time.Hour) // past the platform's hour, within the product's three
	sweep(0)
	if m := scrapeMetrics(t, e.p); !strings.Contains(m, "hallmark_devices_silent 0\n") {
		t.Errorf("metrics count a device silent before its product's interval")
	}
	e.clock.advance(time.Hour + time.Minute)
	sweep(1)
	sweep(0)
	if got := e.events(t, store.EventDeviceSilent); len(got) != 1 || got[0].Identity != e.f.ids[0].String() {
		t.Errorf("silent events: %+v", got)
	}
	if m := scrapeMetrics(t, e.p); !strings.Contains(m, "hallmark_devices_silent 1\n") {
		t.Errorf("metrics do not count the silent device")
	}
}
