package app

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hallmark-iot/hallmark/internal/httpapi"
	"github.com/hallmark-iot/hallmark/internal/ota"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// Campaigns over HTTPS (docs/ota.md, "Campaigns"): real devices,
// onboarded, poll for their assignment with their certificates and
// report their progress; the administrator creates, follows, pauses,
// resumes and cancels campaigns with the admin client.

type campaignEnv struct {
	p     *Platform
	f     *fleet
	admin *httpapi.Client
	certs []*tls.Certificate
	image string // hex digest of the image record
}

func newCampaignEnv(t testing.TB, n int) *campaignEnv {
	t.Helper()
	algs := make([]sigalg.ID, n)
	for i := range algs {
		algs[i] = sigalg.ECDSAP256
	}
	p, err := Start(context.Background(), Config{DataDir: newDataDir(t), Listen: "127.0.0.1:0", ServerName: "localhost", CASuite: sigalg.ECDSAP256})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	e := &campaignEnv{p: p, f: newFleet(t, algs...), admin: adminClient(t, p)}
	e.f.register(t, e.admin)
	for i, d := range e.f.devices {
		op, err := d.OperationalKey(sigalg.ECDSAP256)
		if err != nil {
			t.Fatal(err)
		}
		creds, err := deviceClient(p.URL(), tlsClient(p, nil)).OnboardWithKey(context.Background(), d, e.f.ids[i], op)
		if err != nil {
			t.Fatal(err)
		}
		cert := &tls.Certificate{PrivateKey: op}
		for _, c := range creds.CertificateChain {
			block, _ := pem.Decode([]byte(c))
			cert.Certificate = append(cert.Certificate, block.Bytes)
		}
		e.certs = append(e.certs, cert)
	}
	// The image's record, as the firmware repository keeps it; the
	// campaign reads only the record.
	digest := sha256.Sum256([]byte("meter image 2.0.0"))
	if _, _, err := p.Store.PutFirmwareImage(context.Background(), store.FirmwareImage{Digest: digest, ProductID: "meter",
		Type: "app", Version: "2.0.0", SecurityCounter: 2, Size: 4096, UploadedAt: time.Now(), UploadedBy: "token:test"}); err != nil {
		t.Fatal(err)
	}
	e.image = hex.EncodeToString(digest[:])
	return e
}

func (e *campaignEnv) ids(idx ...int) []string {
	var out []string
	for _, i := range idx {
		out = append(out, e.f.ids[i].String())
	}
	return out
}

func (e *campaignEnv) create(t testing.TB, req httpapi.CampaignRequest) httpapi.Campaign {
	t.Helper()
	req.Product, req.Image = "meter", e.image
	c, err := e.admin.CreateCampaign(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// poll asks for device i's assignment: the status, the assignment (200)
// and the Retry-After seconds.
func (e *campaignEnv) poll(t testing.TB, i int) (int, *ota.Assignment, int) {
	t.Helper()
	resp, err := tlsClient(e.p, e.certs[i]).Get(e.p.URL() + ota.PathUpdate)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	retry, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, nil, retry
	}
	var a ota.Assignment
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, &a, retry
}

// report sends device i's report: the status and problem code.
func (e *campaignEnv) report(t *testing.T, i int, r ota.Report) (int, string) {
	t.Helper()
	body, _ := json.Marshal(r)
	req, _ := http.NewRequest("POST", e.p.URL()+ota.PathUpdateReport, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := tlsClient(e.p, e.certs[i]).Do(req)
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

func (e *campaignEnv) mustReport(t *testing.T, i int, id string, states ...ota.DeviceState) {
	t.Helper()
	for _, st := range states {
		r := ota.Report{CampaignID: id, State: st, FirmwareVersion: "2.0.0"}
		if st == ota.StateFailed || st == ota.StateRolledBack {
			r.Reason, r.FirmwareVersion = "no-boot", ""
		}
		if status, code := e.report(t, i, r); status != http.StatusNoContent {
			t.Fatalf("device %d reports %s: %d %s", i, st, status, code)
		}
	}
}

func (e *campaignEnv) get(t *testing.T, id string) httpapi.Campaign {
	t.Helper()
	c, err := e.admin.GetCampaign(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// offered polls every device of idx and returns those given an
// assignment of campaign id; the others must be answered 204.
func (e *campaignEnv) offered(t *testing.T, id string, idx []int) []int {
	t.Helper()
	var got []int
	for _, i := range idx {
		status, a, retry := e.poll(t, i)
		switch {
		case status == http.StatusOK && a.CampaignID == id:
			if a.Image.Digest != e.image || a.Image.Path != ota.PathFirmware+e.image || a.Image.Version != "2.0.0" || a.Migration != nil {
				t.Fatalf("assignment %+v", a)
			}
			got = append(got, i)
		case status != http.StatusNoContent:
			t.Fatalf("poll of device %d: %d", i, status)
		}
		if retry < 1 {
			t.Fatalf("poll of device %d: Retry-After %d", i, retry)
		}
	}
	return got
}

// TestCampaignCompletesInWaves: three waves open one after the other as
// their devices boot the image; the device outside the target is never
// offered it; the counts follow; the campaign completes.
func TestCampaignCompletesInWaves(t *testing.T) {
	t.Parallel()
	e := newCampaignEnv(t, 7)
	targeted := []int{0, 1, 2, 3, 4, 5}
	c := e.create(t, httpapi.CampaignRequest{Devices: e.ids(targeted...), Waves: "1,50%,100%"})
	if c.State != "running" || c.DeviceCount != 6 || len(c.Waves) != 3 || c.Waves[0].Size != 1 || c.Waves[1].Size != 2 || c.Waves[2].Size != 3 {
		t.Fatalf("created %+v", c)
	}
	if status, _, retry := e.poll(t, 6); status != http.StatusNoContent || retry < 60 {
		t.Fatalf("device outside the target: %d, Retry-After %d", status, retry)
	}
	done := map[int]bool{}
	for wave := 1; wave <= 3; wave++ {
		var open []int
		for _, i := range targeted {
			if !done[i] {
				open = append(open, i)
			}
		}
		got := e.offered(t, c.ID, open)
		if want := c.Waves[wave-1].Size; len(got) != want {
			t.Fatalf("wave %d: %d devices offered, want %d", wave, len(got), want)
		}
		if p := e.get(t, c.ID); p.CurrentWave != wave || p.Counts["offered"] != len(got) {
			t.Fatalf("wave %d: progress %+v", wave, p)
		}
		for _, i := range got {
			e.mustReport(t, i, c.ID, ota.StateDownloading, ota.StateInstalled, ota.StateInstalled, ota.StateBooted)
			done[i] = true
		}
		// A report may not move a device back, and one repeated is
		// accepted and changes nothing.
		if status, code := e.report(t, got[0], ota.Report{CampaignID: c.ID, State: ota.StateDownloading}); status != http.StatusConflict || code != "conflict" {
			t.Fatalf("report going back: %d %s", status, code)
		}
		e.mustReport(t, got[0], c.ID, ota.StateBooted)
	}
	p := e.get(t, c.ID)
	if p.State != "completed" || p.Counts["booted"] != 6 || len(p.Counts) != 1 {
		t.Fatalf("after three waves: %+v", p)
	}
	for i, w := range p.Waves {
		if w.Finished != w.Size || w.Failed != 0 || w.Counts["booted"] != w.Size {
			t.Errorf("wave %d: %+v", i+1, w)
		}
	}
	if status, _, _ := e.poll(t, 0); status != http.StatusNoContent {
		t.Fatalf("poll after completion: %d", status)
	}
	page, err := e.admin.ListCampaignDevices(context.Background(), c.ID, "booted", "", 4)
	if err != nil || len(page.Devices) != 4 || page.Next == "" || page.Devices[0].FirmwareVersion != "2.0.0" {
		t.Fatalf("devices page: %+v, %v", page, err)
	}
	rest, err := e.admin.ListCampaignDevices(context.Background(), c.ID, "booted", page.Next, 4)
	if err != nil || len(rest.Devices) != 2 {
		t.Fatalf("second page: %+v, %v", rest, err)
	}
	metrics := scrape(t, e.p)
	for _, want := range []string{`hallmark_campaigns{state="completed"} 1`, `hallmark_campaign_reports_total{reason="",state="booted"} 6`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func scrape(t *testing.T, p *Platform) string {
	t.Helper()
	resp, err := tlsClient(p, nil).Get(p.URL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return string(data)
}

// TestCampaignHaltsOnFailures: the first wave's failures pass the
// threshold, the campaign halts by itself, the later wave is never
// offered, and the halt is audited.
func TestCampaignHaltsOnFailures(t *testing.T) {
	t.Parallel()
	e := newCampaignEnv(t, 5)
	halt := 0.4
	c := e.create(t, httpapi.CampaignRequest{Waves: "2,100%", HaltAt: &halt, HaltMinFinished: 2})
	all := []int{0, 1, 2, 3, 4}
	first := e.offered(t, c.ID, all)
	if len(first) != 2 {
		t.Fatalf("first wave: %v", first)
	}
	e.mustReport(t, first[0], c.ID, ota.StateDownloading, ota.StateFailed)
	if p := e.get(t, c.ID); p.State != "running" {
		t.Fatalf("one failure of one finished (below the minimum of 2): %s", p.State)
	}
	e.mustReport(t, first[1], c.ID, ota.StateDownloading, ota.StateInstalled, ota.StateRolledBack)
	p := e.get(t, c.ID)
	if p.State != "halted" || !strings.Contains(p.Reason, "wave 1: 2 of 2") || p.Counts["pending"] != 3 {
		t.Fatalf("after two failures: %+v", p)
	}
	if got := e.offered(t, c.ID, all); len(got) != 0 {
		t.Fatalf("offered after the halt: %v", got)
	}
	events, err := e.admin.ListAudit(context.Background(), httpapi.AuditQuery{Action: "campaign.halt"})
	if err != nil || len(events.Events) != 1 || events.Events[0].Subject != "campaign:"+c.ID || events.Events[0].Actor != "system" {
		t.Fatalf("halt audit: %+v, %v", events, err)
	}
	metrics := scrape(t, e.p)
	if !strings.Contains(metrics, `hallmark_campaign_reports_total{reason="no-boot",state="rolled-back"} 1`) {
		t.Error("metrics lack the rollback")
	}
}

// TestCampaignPauseResumeCancel: a paused campaign offers nothing new, a
// resumed one does, a cancelled one withdraws its open assignments;
// reports about another device's campaign are refused, and so is a token
// without campaigns:write.
func TestCampaignPauseResumeCancel(t *testing.T) {
	t.Parallel()
	e := newCampaignEnv(t, 4)
	ctx := context.Background()
	c := e.create(t, httpapi.CampaignRequest{Devices: e.ids(0, 1, 2)})
	other := e.create(t, httpapi.CampaignRequest{Devices: e.ids(3)})

	if got := e.offered(t, c.ID, []int{0}); len(got) != 1 {
		t.Fatal("device 0 not offered")
	}
	if _, err := e.admin.CampaignAction(ctx, c.ID, "pause", "look at the canaries"); err != nil {
		t.Fatal(err)
	}
	if got := e.offered(t, c.ID, []int{1, 2}); len(got) != 0 {
		t.Fatalf("offered while paused: %v", got)
	}
	if got := e.offered(t, c.ID, []int{0}); len(got) != 1 {
		t.Fatal("a device under way loses its assignment while paused")
	}
	e.mustReport(t, 0, c.ID, ota.StateDownloading)
	if _, err := e.admin.CampaignAction(ctx, c.ID, "pause", "again"); err != nil {
		t.Fatalf("pausing a paused campaign: %v", err)
	}
	if _, err := e.admin.CampaignAction(ctx, c.ID, "resume", "canaries fine"); err != nil {
		t.Fatal(err)
	}
	if got := e.offered(t, c.ID, []int{1}); len(got) != 1 {
		t.Fatal("not offered after resume")
	}

	// Refusals: another device's campaign, a campaign that does not
	// exist, a report before the offer, migrated from a device.
	for _, r := range []struct {
		report ota.Report
		status int
		code   string
	}{
		{ota.Report{CampaignID: other.ID, State: ota.StateDownloading}, 404, "not-found"},
		{ota.Report{CampaignID: "cmp_0123456789abcdef", State: ota.StateDownloading}, 404, "not-found"},
		{ota.Report{CampaignID: "../x", State: ota.StateDownloading}, 404, "not-found"},
		{ota.Report{CampaignID: c.ID, State: ota.StateMigrated}, 409, "conflict"},
		{ota.Report{CampaignID: c.ID, State: "offered"}, 400, "malformed-request"},
		{ota.Report{CampaignID: c.ID, State: ota.StateFailed}, 400, "malformed-request"},
	} {
		if status, code := e.report(t, 1, r.report); status != r.status || code != r.code {
			t.Errorf("report %+v: %d %s, want %d %s", r.report, status, code, r.status, r.code)
		}
	}
	if status, code := e.report(t, 2, ota.Report{CampaignID: c.ID, State: ota.StateDownloading}); status != 409 || code != "conflict" {
		t.Errorf("report before the offer: %d %s", status, code)
	}

	// A token that may read campaigns but not change them.
	tok, err := e.admin.CreateToken(ctx, httpapi.TokenRequest{Name: "viewer", Scopes: []string{"campaigns:read"}, TTL: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	viewer, err := httpapi.NewClient(e.p.URL(), tok.Secret, rootPool(e.p))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := viewer.CampaignAction(ctx, c.ID, "cancel", "not mine"); !isProblem(err, "forbidden") {
		t.Fatalf("cancel without campaigns:write: %v", err)
	}
	if _, err := viewer.CreateCampaign(ctx, httpapi.CampaignRequest{Product: "meter", Image: e.image}); !isProblem(err, "forbidden") {
		t.Fatalf("create without campaigns:write: %v", err)
	}
	if got, err := viewer.GetCampaign(ctx, c.ID); err != nil || got.State != "running" {
		t.Fatalf("read with campaigns:read: %+v, %v", got, err)
	}

	p, err := e.admin.CampaignAction(ctx, c.ID, "cancel", "wrong image")
	if err != nil || p.State != "cancelled" || p.Reason != "wrong image" {
		t.Fatalf("cancel: %+v, %v", p, err)
	}
	if got := e.offered(t, c.ID, []int{0, 1, 2}); len(got) != 0 {
		t.Fatalf("assignments after cancel: %v", got)
	}
	// The device under way still reports what it did.
	e.mustReport(t, 0, c.ID, ota.StateInstalled)
	if _, err := e.admin.CampaignAction(ctx, c.ID, "resume", "oops"); !isProblem(err, "conflict") {
		t.Fatalf("resume after cancel: %v", err)
	}
	p = e.get(t, c.ID)
	if p.Counts["installed"] != 1 || p.Counts["offered"] != 1 || p.Counts["pending"] != 1 {
		t.Fatalf("counts after cancel: %+v", p.Counts)
	}
	events, err := e.admin.ListAudit(ctx, httpapi.AuditQuery{Subject: "campaign:" + c.ID})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, ev := range events.Events {
		if ev.Outcome == "ok" && ev.Action != "campaign.get" {
			actions = append(actions, ev.Action)
		}
	}
	if want := "campaign.create campaign.pause campaign.pause campaign.resume campaign.cancel"; strings.Join(actions, " ") != want {
		t.Errorf("audited %q, want %q", strings.Join(actions, " "), want)
	}
}

// TestCampaignCreateRefusals: bad requests are refused with their
// reason and create nothing.
func TestCampaignCreateRefusals(t *testing.T) {
	t.Parallel()
	e := newCampaignEnv(t, 1)
	ctx := context.Background()
	for _, r := range []struct {
		req  httpapi.CampaignRequest
		code string
	}{
		{httpapi.CampaignRequest{Product: "meter", Image: e.image, Waves: "10,5"}, "malformed-request"},
		{httpapi.CampaignRequest{Product: "meter", Image: e.image, Waves: "50%"}, "malformed-request"},
		{httpapi.CampaignRequest{Product: "meter", Image: strings.Repeat("ab", 32)}, "not-found"},
		{httpapi.CampaignRequest{Product: "nope", Image: e.image}, "unknown-product"},
		{httpapi.CampaignRequest{Product: "meter", Image: e.image, FirmwareBelow: "1.0.0"}, "malformed-request"}, // no device reported
		{httpapi.CampaignRequest{Product: "meter", Image: e.image, MigrateTo: "rot13"}, "malformed-request"},
		{httpapi.CampaignRequest{Product: "meter", Image: e.image, Devices: []string{"xyz"}}, "malformed-request"},
	} {
		if _, err := e.admin.CreateCampaign(ctx, r.req); !isProblem(err, r.code) {
			t.Errorf("create %+v: %v, want %s", r.req, err, r.code)
		}
	}
	list, err := e.admin.ListCampaigns(ctx, "", "")
	if err != nil || len(list) != 0 {
		t.Fatalf("campaigns after refusals: %+v, %v", list, err)
	}
}

func rootPool(p *Platform) *x509.CertPool {
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(p.CA.RootPEM())
	return roots
}

// BenchmarkCampaignPoll measures GET /v1/device/update over HTTPS with
// mutual TLS (keep-alive connections, SQLite on disk, client and server in
// one process): a device no campaign targets (answered from memory after
// the certificate chain check) and a targeted one whose assignment is
// open (authentication's store reads and the campaign's one read).
func BenchmarkCampaignPoll(b *testing.B) {
	e := newCampaignEnv(b, 2)
	c := e.create(b, httpapi.CampaignRequest{Devices: e.ids(0)})
	if status, a, _ := e.poll(b, 0); status != http.StatusOK || a.CampaignID != c.ID {
		b.Fatalf("first poll: %d", status)
	}
	for _, bc := range []struct {
		name   string
		device int
		want   int
	}{{"untargeted", 1, http.StatusNoContent}, {"targeted", 0, http.StatusOK}} {
		b.Run(bc.name, func(b *testing.B) {
			client := tlsClient(e.p, e.certs[bc.device])
			client.Transport.(*http.Transport).MaxIdleConnsPerHost = 16
			url := e.p.URL() + ota.PathUpdate
			b.SetParallelism(4)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					resp, err := client.Get(url)
					if err != nil {
						b.Error(err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != bc.want {
						b.Errorf("status %d", resp.StatusCode)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "polls/s")
		})
	}
}
