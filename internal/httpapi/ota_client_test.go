package httpapi_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/device"
	"github.com/hallmark-iot/hallmark/internal/httpapi"
	"github.com/hallmark-iot/hallmark/internal/ota"
	"github.com/hallmark-iot/hallmark/internal/ota/otatest"
	"github.com/hallmark-iot/hallmark/internal/pki"
)

// otaBench is a device and the test platform's update routes over HTTPS
// with mutual TLS.
type otaBench struct {
	vendor *otatest.Vendor
	plat   *otatest.Platform
	state  string
	url    string
	hc     *http.Client
}

func newOTABench(t *testing.T) *otaBench {
	t.Helper()
	b := &otaBench{vendor: otatest.NewVendor(t, 1), plat: otatest.New(), state: filepath.Join(t.TempDir(), "chip.json")}
	_, cert := b.vendor.Device(t, device.ClassKeygen, nil, b.state)
	srv, rootPEM := b.plat.Serve(t)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(rootPEM)
	b.url = srv.URL
	b.hc = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: pki.ClientTLSConfig(roots, cert)}}
	return b
}

func (b *otaBench) agent(t *testing.T) *ota.Agent {
	t.Helper()
	dev, err := device.Load(b.state, nil)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := httpapi.NewOTATransport(b.url, b.hc)
	if err != nil {
		t.Fatal(err)
	}
	return &ota.Agent{Device: dev, StatePath: b.state, Transport: tr}
}

// TestOTAOverHTTPSResumesWithRange: the server cuts the connection after
// 4,000 bytes of the image; the next step asks for bytes=4000- and the
// slot ends with the identical image.
func TestOTAOverHTTPSResumesWithRange(t *testing.T) {
	b := newOTABench(t)
	b.plat.SetRetryAfter(42 * time.Second)
	img := b.vendor.Image(t, otatest.ImageSpec{Counter: 2, Payload: strings.Repeat("firmware ", 30000)})
	b.plat.Offer("cmp_1", img, otatest.Version(2), 2)
	b.plat.CutNextDownload(4000)
	if _, err := b.agent(t).Step(context.Background()); err == nil || !strings.Contains(err.Error(), "interrupted at byte 4000") {
		t.Fatalf("cut download: %v", err)
	}
	res, err := b.agent(t).Step(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Outcome == nil || res.Outcome.State != ota.StateBooted || res.RetryAfter != 42*time.Second {
		t.Fatalf("result %+v", res)
	}
	if got := b.plat.Ranges(); !slices.Equal(got, []string{"", "bytes=4000-"}) {
		t.Fatalf("Range headers %q", got)
	}
	if got := b.plat.States(); !slices.Equal(got, []ota.DeviceState{ota.StateDownloading, ota.StateInstalled, ota.StateBooted}) {
		t.Fatalf("reports %v", got)
	}
	dev, _ := device.Load(b.state, nil)
	if err := dev.Boot(); err != nil {
		t.Fatal(err)
	}
	if h, _ := dev.ActiveHeader(); h.Version.String() != "2.0.2" {
		t.Fatalf("active %s", h.Version)
	}
	// The slot holds exactly the served bytes: a reinstall of them is
	// what the ROM saw (its digest check passed on the whole image).
	if _, err := os.Stat(ota.PartialPath(b.state)); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("partial download left behind")
	}
}

func TestOTATransportAnswers(t *testing.T) {
	b := newOTABench(t)
	tr, _ := httpapi.NewOTATransport(b.url, b.hc)
	ctx := context.Background()
	b.plat.SetRetryAfter(7 * time.Second)
	a, wait, err := tr.Assignment(ctx)
	if err != nil || a != nil || wait != 7*time.Second {
		t.Fatalf("204 poll: %v, %v, %v", a, wait, err)
	}
	img := b.vendor.Image(t, otatest.ImageSpec{Counter: 2, Payload: "two"})
	want := b.plat.Offer("cmp_1", img, otatest.Version(2), 2)
	if a, _, err = tr.Assignment(ctx); err != nil || *a != want {
		t.Fatalf("200 poll: %+v, %v", a, err)
	}
	body, total, err := tr.Download(ctx, want.Image.Path, 10)
	if err != nil || total != int64(len(img)) {
		t.Fatalf("download: %d, %v", total, err)
	}
	var rest bytes.Buffer
	rest.ReadFrom(body)
	body.Close()
	if !bytes.Equal(rest.Bytes(), img[10:]) {
		t.Fatal("ranged download returned other bytes")
	}
	// A report the platform refuses is a *Problem and ota.ErrRefused.
	err = tr.Report(ctx, ota.Report{CampaignID: "cmp_1", State: ota.StatePending})
	var p *httpapi.Problem
	if !errors.As(err, &p) || p.Code != "malformed-request" || !errors.Is(err, ota.ErrRefused) {
		t.Fatalf("refused report: %v", err)
	}
	_, _, err = tr.Download(ctx, ota.PathFirmware+strings.Repeat("00", 32), 0)
	if !errors.As(err, &p) || p.Status != 404 || !errors.Is(err, ota.ErrRefused) {
		t.Fatalf("missing image: %v", err)
	}
	if _, _, err := tr.Download(ctx, "/v1/admin/tokens", 0); err == nil {
		t.Fatal("downloaded from outside the firmware route")
	}
	// Without the device certificate the TLS handshake fails.
	bare := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: b.hc.Transport.(*http.Transport).TLSClientConfig.RootCAs}}}
	anon, _ := httpapi.NewOTATransport(b.url, bare)
	if _, _, err := anon.Assignment(ctx); err == nil {
		t.Fatal("polled without a client certificate")
	}
}
