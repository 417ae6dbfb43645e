package app

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/httpapi"
	"github.com/hallmark-iot/hallmark/internal/onboarding"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// Issue 12, "Certificates: renewal and supersession": a product's renewal
// window, attacked over HTTPS by a device renewing early and trying to
// grant itself a forced renewal.

const (
	windowValidity = 720 * time.Hour // the product's certificates: 30 days
	windowLength   = 240 * time.Hour // renewal allowed in the last 10 days
)

// startRenewalWindow starts a platform on clock, without a renewal limit
// (the window is what is tested), with f imported into a product with a
// renewal window.
func startRenewalWindow(t *testing.T, f *fleet, clock *testClock, configure func(*Config)) (*Platform, *httpapi.Client) {
	t.Helper()
	cfg := Config{DataDir: newDataDir(t), Listen: "127.0.0.1:0", ServerName: "localhost", CASuite: sigalg.ECDSAP256,
		Issuance: onboarding.IssuancePolicy{RenewLimit: -1}, Now: clock.now}
	if configure != nil {
		configure(&cfg)
	}
	p, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	admin := adminClient(t, p)
	ctx := context.Background()
	if _, err := admin.CreateStation(ctx, httpapi.StationRequest{Name: "line", PublicKey: string(f.stationPEM)}); err != nil {
		t.Fatal(err)
	}
	product, err := admin.CreateProduct(ctx, httpapi.ProductRequest{ID: "windowed", Name: "Windowed", CertValidity: "720h",
		CloudEndpoint: "mqtts://broker.test:8883", RenewalWindow: "240h"})
	if err != nil || product.RenewalWindow != "240h" {
		t.Fatalf("create a product with a renewal window: %+v, %v", product, err)
	}
	if _, err := admin.ImportManifest(ctx, "windowed", bytes.NewReader(f.manifest)); err != nil {
		t.Fatal(err)
	}
	return p, admin
}

// renewalProblem is err's problem, failing unless it has code and status.
func renewalProblem(t *testing.T, err error, code string, status int) *httpapi.Problem {
	t.Helper()
	var prob *httpapi.Problem
	if !errors.As(err, &prob) || prob.Code != code || prob.Status != status {
		t.Fatalf("got %v, want %d %s", err, status, code)
	}
	return prob
}

// TestAttackRenewalWindowEarlyRenewal: a device renewing before its
// product's window is refused with renewal-not-due and a Retry-After
// saying when the window opens, and nothing is issued; once the window
// is open it renews.
func TestAttackRenewalWindowEarlyRenewal(t *testing.T) {
	t.Parallel()
	clock := &testClock{}
	f := newFleet(t, sigalg.Ed25519)
	p, _ := startRenewalWindow(t, f, clock, nil)
	ctx := context.Background()
	op := issuanceOpKey(t, f.devices[0])
	creds, err := deviceClient(p.URL(), tlsClient(p, nil)).OnboardWithKey(ctx, f.devices[0], f.ids[0], op)
	if err != nil {
		t.Fatal(err)
	}
	if !creds.RenewAfter.Equal(creds.NotAfter.Add(-windowLength)) {
		t.Fatalf("renew_after %v, want not_after %v less the window", creds.RenewAfter, creds.NotAfter)
	}
	mtls := deviceClient(p.URL(), tlsClient(p, issuanceCert(t, creds, op)))
	_, err = mtls.RenewWithKey(ctx, f.ids[0], op)
	prob := renewalProblem(t, err, "renewal-not-due", http.StatusConflict)
	if !errors.Is(err, onboarding.ErrRenewalNotDue) {
		t.Fatalf("the client does not find onboarding.ErrRenewalNotDue in %v", err)
	}
	// The wait is the window's opening from the platform's clock; the
	// test's real time between the two readings is far under an hour.
	early := creds.RenewAfter.Sub(clock.now())
	if prob.RetryAfter > early+time.Second || prob.RetryAfter < early-time.Hour || !strings.Contains(prob.Detail, "window opens at") {
		t.Fatalf("Retry-After %v, detail %q; want about %v and the time the window opens", prob.RetryAfter, prob.Detail, early)
	}
	if certs := issuanceCerts(t, p, f.ids[0]); len(certs) != 1 {
		t.Fatalf("%d certificates after an early renewal, want 1", len(certs))
	}
	clock.advance(creds.RenewAfter.Sub(clock.now()) + time.Second)
	if _, err := mtls.RenewWithKey(ctx, f.ids[0], op); err != nil {
		t.Fatalf("a renewal once the window is open: %v", err)
	}
}

// TestAttackRenewalWindowForced: an administrator's forced renewal lets
// one renewal through outside the window, not two, however often it was
// forced; a device cannot force its own, neither with its certificate
// nor with a token lacking devices:suspend; a suspended device cannot be
// granted one.
func TestAttackRenewalWindowForced(t *testing.T) {
	t.Parallel()
	clock := &testClock{}
	f := newFleet(t, sigalg.ECDSAP256, sigalg.Ed25519)
	p, admin := startRenewalWindow(t, f, clock, nil)
	ctx := context.Background()
	op := issuanceOpKey(t, f.devices[0])
	cert := issuanceOnboard(t, p, f, 0, op)

	// The device tries the admin route with its own certificate, with and
	// without a made-up token: unauthorized, and nothing granted.
	asDevice := tlsClient(p, cert)
	for _, bearer := range []string{"", "Bearer hm_device0_notatoken"} {
		req, _ := http.NewRequest("POST", p.URL()+"/v1/admin/devices/"+f.ids[0].String()+"/force-renewal", strings.NewReader(`{"reason":"me"}`))
		req.Header.Set("Content-Type", "application/json")
		if bearer != "" {
			req.Header.Set("Authorization", bearer)
		}
		resp, err := asDevice.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("the device forcing its own renewal (%q): %s, want 401", bearer, resp.Status)
		}
	}
	reader, err := admin.CreateToken(ctx, httpapi.TokenRequest{Name: "reader", Scopes: []string{"devices:read"}})
	if err != nil {
		t.Fatal(err)
	}
	readOnly := adminClient(t, p)
	readOnly.Token = reader.Secret
	_, err = readOnly.ForceRenewal(ctx, f.ids[0], "not allowed")
	renewalProblem(t, err, "forbidden", http.StatusForbidden)
	mtls := deviceClient(p.URL(), tlsClient(p, cert))
	_, err = mtls.RenewWithKey(ctx, f.ids[0], op)
	renewalProblem(t, err, "renewal-not-due", http.StatusConflict)

	// Forced twice: still one renewal.
	for range 2 {
		if g, err := admin.ForceRenewal(ctx, f.ids[0], "CA key rotation"); err != nil || g.Identity != f.ids[0] || g.Reason != "CA key rotation" {
			t.Fatalf("force renewal: %+v, %v", g, err)
		}
	}
	renewed, err := mtls.RenewWithKey(ctx, f.ids[0], op)
	if err != nil {
		t.Fatalf("the forced renewal: %v", err)
	}
	_, err = deviceClient(p.URL(), tlsClient(p, issuanceCert(t, renewed, op))).RenewWithKey(ctx, f.ids[0], op)
	renewalProblem(t, err, "renewal-not-due", http.StatusConflict)
	if certs := issuanceCerts(t, p, f.ids[0]); len(certs) != 2 {
		t.Fatalf("%d certificates, want the onboarding's and the forced renewal's", len(certs))
	}
	var forced, grants int
	for _, ev := range auditEvents(t, admin) {
		switch {
		case ev.Action == "device.renew" && ev.Outcome == "ok" && ev.Detail == "forced":
			forced++
		case ev.Action == "device.force-renewal" && ev.Outcome == "ok" && ev.Actor != "device:"+f.ids[0].String():
			grants++
		}
	}
	if forced != 1 || grants != 2 {
		t.Fatalf("audit: %d forced renewals and %d grants, want 1 and 2", forced, grants)
	}

	// A suspended device cannot be granted a renewal.
	issuanceOnboard(t, p, f, 1, issuanceOpKey(t, f.devices[1]))
	if _, err := admin.TransitionDevice(ctx, f.ids[1], "suspend", "quarantine"); err != nil {
		t.Fatal(err)
	}
	_, err = admin.ForceRenewal(ctx, f.ids[1], "while suspended")
	renewalProblem(t, err, "conflict", http.StatusConflict)
}
