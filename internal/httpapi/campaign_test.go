package httpapi

import (
	"context"
	"crypto/x509"
	"os"
	"strings"
	"testing"

	"github.com/hallmark-iot/hallmark/internal/campaign"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/onboarding"
)

// refuseDevices is a device authenticator that knows no device: these
// tests reach the device routes without a client certificate.
type refuseDevices struct{}

func (refuseDevices) AuthenticateDevice(context.Context, *x509.Certificate, string, string) (identity.ID, error) {
	return identity.ID{}, onboarding.ErrNotOnboarded
}

func campaignEnv(t *testing.T) *env {
	t.Helper()
	e := newEnv(t)
	svc, err := campaign.New(campaign.Config{Store: e.store, Images: e.store, Devices: refuseDevices{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.srv.HandleCampaigns(svc, nil); err != nil {
		t.Fatal(err)
	}
	return e
}

// TestCampaignRoutesDocumented: the campaign routes are in the OpenAPI
// document and in docs/api.md.
func TestCampaignRoutesDocumented(t *testing.T) {
	e := campaignEnv(t)
	checkOpenAPISync(t, e.srv)
	api, err := os.ReadFile("../../docs/api.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, rt := range e.srv.Routes() {
		if (strings.Contains(rt.Path, "campaign") || strings.Contains(rt.Path, "/update")) && !strings.Contains(string(api), rt.Method+" "+rt.Path) {
			t.Errorf("docs/api.md does not describe %s", rt.Pattern())
		}
	}
}

// TestCampaignRouteRefusals: requests the routes refuse before or at the
// use case, each with its problem code.
func TestCampaignRouteRefusals(t *testing.T) {
	e := campaignEnv(t)
	reader := e.token(t, "reader", ScopeCampaignsRead)
	for _, c := range []struct {
		method, path, token string
		body                any
		status              int
		code                string
	}{
		{"GET", "/v1/device/update", "", nil, 401, "not-onboarded"},
		{"POST", "/v1/device/update/report", "", `{"campaign_id":"cmp_0123456789abcdef","state":"booted"}`, 401, "not-onboarded"},
		{"POST", PathAdminCampaigns, reader, `{"product":"p","image":"00"}`, 403, "forbidden"},
		{"POST", PathAdminCampaigns, e.admin, `{"product":"p","image":"00","surprise":1}`, 400, "unknown-field"},
		{"POST", PathAdminCampaigns, e.admin, `{"product":"p","image":"00","devices":["nope"]}`, 400, "malformed-request"},
		{"POST", PathAdminCampaigns, e.admin, `{"product":"no-such","image":"` + strings.Repeat("0", 64) + `"}`, 422, "unknown-product"},
		{"POST", PathAdminCampaigns, e.admin, `{"product":"p","image":"00","waves":"1,1"}`, 400, "malformed-request"},
		{"GET", PathAdminCampaigns + "?state=sleeping", reader, nil, 400, "malformed-request"},
		{"GET", PathAdminCampaigns + "/cmp_0123456789abcdef", reader, nil, 404, "not-found"},
		{"GET", PathAdminCampaigns + "/..%2f..", reader, nil, 404, "not-found"},
		{"GET", PathAdminCampaigns + "/cmp_0123456789abcdef/devices?after=xyz", reader, nil, 400, "malformed-request"},
		{"GET", PathAdminCampaigns + "/cmp_0123456789abcdef/devices?state=asleep", reader, nil, 400, "malformed-request"},
		{"POST", PathAdminCampaigns + "/cmp_0123456789abcdef/pause", reader, `{"reason":"x"}`, 403, "forbidden"},
		{"POST", PathAdminCampaigns + "/cmp_0123456789abcdef/pause", e.admin, `{"reason":""}`, 400, "malformed-request"},
		{"POST", PathAdminCampaigns + "/cmp_0123456789abcdef/cancel", e.admin, `{"reason":"gone"}`, 404, "not-found"},
	} {
		r := e.call(t, c.method, c.path, c.token, c.body)
		if p := r.problem(t); r.status != c.status || p.Code != c.code {
			t.Errorf("%s %s: %d %s, want %d %s", c.method, c.path, r.status, p.Code, c.status, c.code)
		}
	}
	r := e.call(t, "GET", PathAdminCampaigns, reader, nil)
	var list CampaignList
	r.decode(t, 200, &list)
	if len(list.Campaigns) != 0 {
		t.Fatalf("campaigns: %+v", list)
	}
}
