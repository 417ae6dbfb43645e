package app

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"io"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/httpapi"
	"github.com/hallmark-iot/hallmark/internal/monitoring"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// Attacks on monitoring (docs/lifecycle.md, "Monitoring") over HTTPS:
// status reports from clients that are not the device, or that are but
// may not report, or that send what a device never would; the event log
// without its scope; and the sweeps, which report each finding once.

// monitoringEnv is a platform on a clock the test moves, with a
// registered fleet, and its admin client.
type monitoringEnv struct {
	p     *Platform
	f     *fleet
	admin *httpapi.Client
	clock *testClock
}

func newMonitoringEnv(t *testing.T, n int) *monitoringEnv {
	t.Helper()
	algs := make([]sigalg.ID, n)
	for i := range algs {
		algs[i] = sigalg.ECDSAP256
	}
	clock := &testClock{}
	// The sweeps run here when the test says: the background loop's
	// first sweep is at start, its next an hour later.
	p, err := Start(context.Background(), Config{DataDir: newDataDir(t), Listen: "127.0.0.1:0", ServerName: "localhost",
		CASuite: sigalg.ECDSAP256, Now: clock.now, Monitoring: MonitoringConfig{Heartbeat: time.Hour, SweepEvery: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	f := newFleet(t, algs...)
	admin := adminClient(t, p)
	f.register(t, admin)
	return &monitoringEnv{p: p, f: f, admin: admin, clock: clock}
}

func goodReport() monitoring.StatusReport {
	return monitoring.StatusReport{FirmwareVersion: "1.4.2", SecurityCounter: 3, BootResult: "ok",
		EnrolmentAlgorithm: sigalg.ECDSAP256, OperationalAlgorithm: sigalg.ECDSAP256, UptimeSeconds: 120}
}

// report sends r with cert (nil: none) and wants code ("" for success).
func (e *monitoringEnv) report(t *testing.T, cert *tls.Certificate, r monitoring.StatusReport, code string) monitoring.Receipt {
	t.Helper()
	tr := &httpapi.OnboardingTransport{BaseURL: e.p.URL(), HTTP: tlsClient(e.p, cert)}
	receipt, err := tr.ReportStatus(context.Background(), r)
	if code == "" && err != nil || code != "" && !isProblem(err, code) {
		t.Fatalf("status report: %v, want %q", err, code)
	}
	return receipt
}

// rawReport posts body as a status report with cert and returns the
// status and problem code.
func (e *monitoringEnv) rawReport(t *testing.T, cert *tls.Certificate, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest("POST", e.p.URL()+httpapi.PathDeviceStatus, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := tlsClient(e.p, cert).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var p struct {
		Code string `json:"code"`
	}
	data, _ := io.ReadAll(resp.Body)
	json.Unmarshal(data, &p)
	return resp.StatusCode, p.Code
}

// status is device i's latest report in the store, or the zero value.
func (e *monitoringEnv) status(t *testing.T, i int) store.DeviceStatus {
	t.Helper()
	st, err := e.p.Store.GetStatus(context.Background(), e.f.ids[i])
	if err != nil && !strings.Contains(err.Error(), store.ErrNotFound.Error()) {
		t.Fatal(err)
	}
	return st
}

// foreignCertificate is a certificate from another CA for key, claiming
// the serial and subject of real, the device's own.
func foreignCertificate(t *testing.T, real *tls.Certificate) *tls.Certificate {
	t.Helper()
	leaf, err := x509.ParseCertificate(real.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	caKey := mustKey(t)
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Hallmark Issuing CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	forged := &x509.Certificate{SerialNumber: leaf.SerialNumber, Subject: leaf.Subject, NotBefore: leaf.NotBefore,
		NotAfter: leaf.NotAfter, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	signer := real.PrivateKey.(crypto.Signer)
	der, err := x509.CreateCertificate(rand.Reader, forged, caCert, signer.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{der, caDER}, PrivateKey: real.PrivateKey}
}

// TestAttackMonitoringStatusReports: only the onboarded device itself,
// in good standing, with a well-formed report of bounded size, changes
// its status; every other attempt is refused and changes nothing.
func TestAttackMonitoringStatusReports(t *testing.T) {
	t.Parallel()
	e := newMonitoringEnv(t, 2)
	_, cert, err := onboard(t, e.p, e.f.devices[0], e.f.ids[0])
	if err != nil {
		t.Fatal(err)
	}
	_, other, err := onboard(t, e.p, e.f.devices[1], e.f.ids[1])
	if err != nil {
		t.Fatal(err)
	}
	receipt := e.report(t, cert, goodReport(), "")
	if receipt.Identity != e.f.ids[0] {
		t.Fatalf("receipt for %s, want %s", receipt.Identity, e.f.ids[0])
	}
	kept := e.status(t, 0)
	if kept.FirmwareVersion != "1.4.2" || kept.SecurityCounter != 3 || !kept.ReceivedAt.Equal(receipt.ReceivedAt) || kept.Uptime != 2*time.Minute {
		t.Fatalf("kept %+v", kept)
	}
	unchanged := func(what string) {
		t.Helper()
		if got := e.status(t, 0); got != kept {
			t.Errorf("%s changed the status: %+v, want %+v", what, got, kept)
		}
	}
	bad := goodReport()
	bad.FirmwareVersion = "9.9.9"
	e.report(t, nil, bad, "not-onboarded")
	unchanged("a report without a client certificate")
	e.report(t, foreignCertificate(t, cert), bad, "not-onboarded")
	unchanged("a report with another CA's certificate for the device's serial")

	huge, _ := json.Marshal(map[string]any{"firmware_version": strings.Repeat("9", monitoring.MaxReportBody), "security_counter": 1,
		"boot_result": "ok", "enrolment_algorithm": "ecdsa-p256", "operational_algorithm": "ecdsa-p256", "uptime_seconds": 1})
	if status, code := e.rawReport(t, cert, huge); status != http.StatusRequestEntityTooLarge || code != "body-too-large" {
		t.Errorf("oversized report: %d %q, want 413 body-too-large", status, code)
	}
	unchanged("an oversized report")
	for name, body := range map[string]string{
		"unknown member":    `{"firmware_version":"9.9.9","security_counter":1,"boot_result":"ok","enrolment_algorithm":"ecdsa-p256","operational_algorithm":"ecdsa-p256","uptime_seconds":1,"admin":true}`,
		"version with text": `{"firmware_version":"9.9 <script>","security_counter":1,"boot_result":"ok","enrolment_algorithm":"ecdsa-p256","operational_algorithm":"ecdsa-p256","uptime_seconds":1}`,
		"unknown boot":      `{"firmware_version":"9.9.9","security_counter":1,"boot_result":"pwned","enrolment_algorithm":"ecdsa-p256","operational_algorithm":"ecdsa-p256","uptime_seconds":1}`,
		"unknown suite":     `{"firmware_version":"9.9.9","security_counter":1,"boot_result":"ok","enrolment_algorithm":"rsa-512","operational_algorithm":"ecdsa-p256","uptime_seconds":1}`,
		"negative counter":  `{"firmware_version":"9.9.9","security_counter":-1,"boot_result":"ok","enrolment_algorithm":"ecdsa-p256","operational_algorithm":"ecdsa-p256","uptime_seconds":1}`,
		"counter overflow":  `{"firmware_version":"9.9.9","security_counter":4294967296,"boot_result":"ok","enrolment_algorithm":"ecdsa-p256","operational_algorithm":"ecdsa-p256","uptime_seconds":1}`,
		"negative uptime":   `{"firmware_version":"9.9.9","security_counter":1,"boot_result":"ok","enrolment_algorithm":"ecdsa-p256","operational_algorithm":"ecdsa-p256","uptime_seconds":-5}`,
		"not an object":     `["9.9.9"]`,
		"two objects":       `{"firmware_version":"9.9.9"}{}`,
	} {
		want := "malformed-request"
		if name == "unknown member" {
			want = "unknown-field"
		}
		if status, code := e.rawReport(t, cert, []byte(body)); status != http.StatusBadRequest || code != want {
			t.Errorf("%s: %d %q, want 400 %s", name, status, code, want)
		}
		unchanged(name)
	}

	// A suspended device is refused like its credentials; resumed, it
	// reports again. A revoked one is refused for good.
	if _, err := e.admin.TransitionDevice(context.Background(), e.f.ids[0], "suspend", "quarantine"); err != nil {
		t.Fatal(err)
	}
	e.report(t, cert, bad, "device-suspended")
	unchanged("a suspended device's report")
	if _, err := e.admin.TransitionDevice(context.Background(), e.f.ids[0], "resume", "cleared"); err != nil {
		t.Fatal(err)
	}
	e.report(t, cert, bad, "")
	if got := e.status(t, 0); got.FirmwareVersion != "9.9.9" {
		t.Errorf("after resume: %+v", got)
	}
	if _, err := e.admin.TransitionDevice(context.Background(), e.f.ids[1], "revoke", "key leaked"); err != nil {
		t.Fatal(err)
	}
	e.report(t, other, goodReport(), "device-revoked")
	if got := e.status(t, 1); got != (store.DeviceStatus{}) {
		t.Errorf("a revoked device's report was kept: %+v", got)
	}
}

// TestAttackMonitoringEventsScope: the event log needs devices:read; it
// lists the lifecycle events written with each change, with reasons.
func TestAttackMonitoringEventsScope(t *testing.T) {
	t.Parallel()
	e := newMonitoringEnv(t, 1)
	if _, _, err := onboard(t, e.p, e.f.devices[0], e.f.ids[0]); err != nil {
		t.Fatal(err)
	}
	for _, tr := range []string{"suspend", "resume", "decommission", "reprovision"} {
		if _, err := e.admin.TransitionDevice(context.Background(), e.f.ids[0], tr, "ticket "+tr); err != nil {
			t.Fatal(err)
		}
	}
	env := &lifecycleEnv{p: e.p, f: e.f, admin: e.admin}
	for _, scope := range []string{httpapi.ScopeAuditRead, httpapi.ScopeDevicesSuspend, httpapi.ScopeDevicesRevoke} {
		if _, err := env.tokenClient(t, scope).ListEvents(context.Background(), httpapi.EventQuery{}); !isProblem(err, "forbidden") {
			t.Errorf("events with a %s token: %v, want forbidden", scope, err)
		}
	}
	for _, token := range []string{"", "hm_not-a-token"} {
		if status := rawAdminRequest(t, e.p, "GET", httpapi.PathAdminEvents, token); status != http.StatusUnauthorized {
			t.Errorf("events with token %q: %d, want 401", token, status)
		}
	}
	reader := env.tokenClient(t, httpapi.ScopeDevicesRead)
	if _, err := reader.ListEvents(context.Background(), httpapi.EventQuery{Kind: "device.pwned"}); !isProblem(err, "malformed-request") {
		t.Errorf("unknown kind: %v, want malformed-request", err)
	}
	list, err := reader.ListEvents(context.Background(), httpapi.EventQuery{Identity: e.f.ids[0].String()})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ev := range list.Events {
		got = append(got, ev.Kind+":"+ev.Detail)
	}
	want := []string{"device.onboarded:", "device.suspended:ticket suspend", "device.resumed:ticket resume",
		"device.decommissioned:ticket decommission", "device.reprovisioned:ticket reprovision"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("events:\n got %v\nwant %v", got, want)
	}
}

// TestMonitoringSweepsReportOnce: each (certificate, threshold) is
// reported expiring once, and each silence once, however often the
// sweep runs; the metrics count them.
func TestMonitoringSweepsReportOnce(t *testing.T) {
	t.Parallel()
	e := newMonitoringEnv(t, 2)
	_, cert, err := onboard(t, e.p, e.f.devices[0], e.f.ids[0]) // a 30-day certificate (product "meter")
	if err != nil {
		t.Fatal(err)
	}
	e.report(t, cert, goodReport(), "")
	ctx := context.Background()
	sweep := func(wantExpiring, wantSilent int) {
		t.Helper()
		res, err := e.p.monitor.Sweep(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if res.Expiring != wantExpiring || res.Silent != wantSilent {
			t.Errorf("sweep: %+v, want %d expiring, %d silent", res, wantExpiring, wantSilent)
		}
	}
	e.clock.advance(24 * time.Hour) // 29 days left: within 30
	sweep(1, 1)
	sweep(0, 0)
	e.clock.advance(22 * 24 * time.Hour) // 7 days left
	sweep(1, 0)
	sweep(0, 0)
	e.report(t, cert, goodReport(), "") // heard from again, then silent again
	e.clock.advance(2 * time.Hour)
	sweep(0, 1)
	sweep(0, 0)

	reader := &lifecycleEnv{p: e.p, f: e.f, admin: e.admin}
	list, err := reader.tokenClient(t, httpapi.ScopeDevicesRead).ListEvents(ctx, httpapi.EventQuery{Kind: string(store.EventCertificateExpiring)})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Events) != 2 || list.Events[0].Detail != store.ExpiringDetail(30*24*time.Hour) ||
		list.Events[1].Detail != store.ExpiringDetail(7*24*time.Hour) || list.Events[0].Identity != e.f.ids[0].String() {
		t.Errorf("expiring events: %+v", list.Events)
	}
	metrics := scrapeMetrics(t, e.p)
	for _, line := range []string{
		`hallmark_devices{product="meter",state="onboarded"} 1`,
		`hallmark_devices{product="meter",state="registered"} 1`,
		`hallmark_certificates_expiring{within="7d"} 1`,
		`hallmark_certificates_expiring{within="30d"} 1`,
		`hallmark_devices_silent 1`,
		`hallmark_device_events_total{kind="certificate.expiring"} 2`,
		`hallmark_device_events_total{kind="device.silent"} 2`,
		`hallmark_device_events_total{kind="device.onboarded"} 1`,
	} {
		if !strings.Contains(metrics, line+"\n") {
			t.Errorf("metrics lack %q", line)
		}
	}
}

func scrapeMetrics(t *testing.T, p *Platform) string {
	t.Helper()
	resp, err := tlsClient(p, nil).Get(p.URL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
