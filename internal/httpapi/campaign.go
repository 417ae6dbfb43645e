package httpapi

import (
	"context"
	"crypto/x509"
	"encoding/hex"
	"net/http"
	"strconv"
	"time"

	"github.com/hallmark-iot/hallmark/internal/admin"
	"github.com/hallmark-iot/hallmark/internal/audit"
	"github.com/hallmark-iot/hallmark/internal/campaign"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/ota"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// Routes of update campaigns (docs/ota.md, "Campaigns").
const (
	PathAdminCampaigns = "/v1/admin/campaigns"
	// MaxCampaignBody bounds a campaign's creation: an explicit list of
	// campaign.MaxDevices identities is about 6.7 MB of JSON.
	MaxCampaignBody = 8 << 20
)

// Scopes of the campaign routes.
const (
	ScopeCampaignsWrite = admin.ScopeCampaignsWrite
	ScopeCampaignsRead  = admin.ScopeCampaignsRead
)

// Campaigns is the campaign use case (campaign.Service).
type Campaigns interface {
	Create(ctx context.Context, caller admin.Caller, req campaign.CreateRequest) (campaign.Created, error)
	List(ctx context.Context, caller admin.Caller, f store.CampaignFilter) ([]store.Campaign, error)
	Get(ctx context.Context, caller admin.Caller, id string) (campaign.Progress, error)
	Devices(ctx context.Context, caller admin.Caller, id string, f store.CampaignDeviceFilter) ([]store.CampaignDevice, error)
	Pause(ctx context.Context, caller admin.Caller, id, reason string) (campaign.Progress, error)
	Resume(ctx context.Context, caller admin.Caller, id, reason string) (campaign.Progress, error)
	Cancel(ctx context.Context, caller admin.Caller, id, reason string) (campaign.Progress, error)
	Poll(ctx context.Context, leaf *x509.Certificate, addr string) (*ota.Assignment, time.Duration, error)
	Report(ctx context.Context, leaf *x509.Certificate, r ota.Report, addr string) error
}

// CampaignRequest creates a campaign.
type CampaignRequest struct {
	Product         string   `json:"product" doc:"The product whose devices are targeted."`
	Image           string   `json:"image" doc:"The SHA-256 of the image file, 64 lowercase hex; the image must be in the firmware repository for the product."`
	Batch           string   `json:"batch,omitempty" doc:"Only devices of this batch."`
	FirmwareBelow   string   `json:"firmware_below,omitempty" doc:"Only devices whose last status report names a firmware version below this one; devices that never reported are left out."`
	Algorithm       string   `json:"algorithm,omitempty" doc:"Only devices enrolled with this suite, e.g. ecdsa-p256."`
	Devices         []string `json:"devices,omitempty" doc:"Only these identities (at most 100,000); listed devices that do not match are counted in unmatched."`
	Waves           string   `json:"waves,omitempty" doc:"Cumulative waves, counts or percentages of the target, e.g. 10,25%,100% (default 100%)."`
	HaltAt          *float64 `json:"halt_at,omitempty" doc:"The failure rate of a wave (failed and rolled back over finished) above which the campaign halts, 0 to 1 (default 0.2)."`
	HaltMinFinished int      `json:"halt_min_finished,omitempty" doc:"Finished devices a wave needs before the halt rule applies (default 5, or the whole of a smaller wave)."`
	MigrateTo       string   `json:"migrate_to,omitempty" doc:"Make a migration campaign: once the image boots, the device moves its enrolment key to this suite, e.g. ml-dsa-65."`
}

// CampaignImage is the image a campaign rolls out.
type CampaignImage struct {
	Digest          string `json:"digest"`
	Version         string `json:"version"`
	Size            int64  `json:"size"`
	SecurityCounter uint32 `json:"security_counter"`
}

// CampaignWave is one wave's progress.
type CampaignWave struct {
	Wave     int            `json:"wave" doc:"From 1."`
	Size     int            `json:"size"`
	Finished int            `json:"finished"`
	Failed   int            `json:"failed"`
	Open     bool           `json:"open" doc:"Its devices may be offered the update."`
	Counts   map[string]int `json:"counts,omitempty" doc:"Devices by state."`
}

// Campaign is a campaign and its progress.
type Campaign struct {
	ID              string         `json:"id"`
	Product         string         `json:"product"`
	Image           CampaignImage  `json:"image"`
	MigrateTo       string         `json:"migrate_to,omitempty"`
	Target          string         `json:"target"`
	WaveSpec        string         `json:"wave_spec"`
	HaltAt          float64        `json:"halt_at"`
	HaltMinFinished int            `json:"halt_min_finished"`
	State           string         `json:"state" enum:"running,paused,halted,cancelled,completed"`
	CurrentWave     int            `json:"current_wave" doc:"The last wave opened, from 1."`
	Reason          string         `json:"reason,omitempty" doc:"Why it last changed state: the halt rule's finding, or the administrator's reason."`
	DeviceCount     int            `json:"device_count"`
	Counts          map[string]int `json:"counts,omitempty" doc:"Devices by state (not in listings)."`
	Waves           []CampaignWave `json:"waves"`
	CreatedBy       string         `json:"created_by"`
	CreatedAt       time.Time      `json:"created_at"`
	UpdatedAt       time.Time      `json:"updated_at"`
	Unmatched       int            `json:"unmatched,omitempty" doc:"At creation: listed devices left out."`
	Busy            int            `json:"busy,omitempty" doc:"At creation: devices left out because an open campaign targets them."`
}

// CampaignList is a page of campaigns, newest first.
type CampaignList struct {
	Campaigns []Campaign `json:"campaigns"`
}

// CampaignDevice is one device's part in a campaign.
type CampaignDevice struct {
	Identity        string    `json:"identity"`
	Wave            int       `json:"wave" doc:"From 1."`
	State           string    `json:"state" enum:"pending,offered,downloading,installed,booted,migrated,failed,rolled-back"`
	Reason          string    `json:"reason,omitempty"`
	Detail          string    `json:"detail,omitempty"`
	FirmwareVersion string    `json:"firmware_version,omitempty"`
	UpdatedAt       time.Time `json:"updated_at"`
}

// CampaignDeviceList is a page of a campaign's devices by identity.
type CampaignDeviceList struct {
	Devices []CampaignDevice `json:"devices"`
	Next    string           `json:"next,omitempty" doc:"Pass as ?after= for the next page; absent on the last page."`
}

// HandleCampaigns adds the campaign admin routes and the device routes
// of the update protocol (authenticated by the device certificate as
// /v1/device/status is).
func (s *Server) HandleCampaigns(c Campaigns, verify DeviceVerifier) error {
	h := campaignHandlers{s: s, c: c, device: onboardHandlers{s: s, verify: verify}}
	for _, rt := range h.routes() {
		if err := s.Handle(rt); err != nil {
			return err
		}
	}
	return nil
}

type campaignHandlers struct {
	s      *Server
	c      Campaigns
	device onboardHandlers
}

var campaignParam = map[string]string{"id": "Campaign ID: cmp_ and 16 hex characters."}

func (h campaignHandlers) routes() []Route {
	p := PathAdminCampaigns
	rts := []Route{
		{Method: "POST", Path: p, Handler: h.s.admin(campaign.ActionCreate, ScopeCampaignsWrite, h.create), Doc: RouteDoc{
			OperationID: "createCampaign", Summary: "Create an update campaign; it starts running.", Tag: "campaigns",
			Description: "The target is resolved once, now: the onboarded devices of the product matching every criterion given, less those an open campaign targets already, shuffled into the waves. Nothing is created when no device matches.",
			Auth:        AuthBearer, Scope: ScopeCampaignsWrite, Request: CampaignRequest{},
			Responses: []Response{{Status: 201, Description: "Created, running.", Body: Campaign{}}},
			Problems:  []string{"not-found", "conflict", "unknown-product"},
		}},
		{Method: "GET", Path: p, Handler: h.s.admin(campaign.ActionList, ScopeCampaignsRead, h.list), Doc: RouteDoc{
			OperationID: "listCampaigns", Summary: "List campaigns, newest first.", Tag: "campaigns",
			Auth: AuthBearer, Scope: ScopeCampaignsRead,
			Query: []Param{
				{Name: "state", Description: "Only campaigns in this state.", Enum: []string{"running", "paused", "halted", "cancelled", "completed"}},
				{Name: "product", Description: "Only campaigns of this product."},
				limitParam,
			},
			Responses: []Response{{Status: 200, Description: "Campaigns.", Body: CampaignList{}}},
		}},
		{Method: "GET", Path: p + "/{id}", Handler: h.s.admin(campaign.ActionGet, ScopeCampaignsRead, h.get), Doc: RouteDoc{
			OperationID: "getCampaign", Summary: "A campaign's state and progress: devices by state, overall and per wave.", Tag: "campaigns",
			Auth: AuthBearer, Scope: ScopeCampaignsRead, PathParams: campaignParam,
			Responses: []Response{{Status: 200, Description: "The campaign.", Body: Campaign{}}},
			Problems:  []string{"not-found"},
		}},
		{Method: "GET", Path: p + "/{id}/devices", Handler: h.s.admin(campaign.ActionDevices, ScopeCampaignsRead, h.devices), Doc: RouteDoc{
			OperationID: "listCampaignDevices", Summary: "A campaign's devices, by identity, one page at a time.", Tag: "campaigns",
			Auth: AuthBearer, Scope: ScopeCampaignsRead, PathParams: campaignParam,
			Query: []Param{
				{Name: "state", Description: "Only devices in this state.", Enum: otaStateNames()},
				{Name: "after", Description: "The last identity of the previous page."},
				limitParam,
			},
			Responses: []Response{{Status: 200, Description: "One page.", Body: CampaignDeviceList{}}},
			Problems:  []string{"not-found"},
		}},
	}
	for _, t := range []struct{ verb, action, summary string }{
		{"pause", campaign.ActionPause, "Pause a running campaign: no new offers; devices under way may finish and report."},
		{"resume", campaign.ActionResume, "Resume a paused campaign."},
		{"cancel", campaign.ActionCancel, "Cancel a running or paused campaign for good: open assignments are withdrawn."},
	} {
		rts = append(rts, Route{Method: "POST", Path: p + "/{id}/" + t.verb,
			Handler: h.s.admin(t.action, ScopeCampaignsWrite, h.transition(t.verb)), Doc: RouteDoc{
				OperationID: t.verb + "Campaign", Summary: t.summary, Tag: "campaigns",
				Description: "Asking for the state the campaign is in already changes nothing; a state the action does not start from is a conflict.",
				Auth:        AuthBearer, Scope: ScopeCampaignsWrite, PathParams: campaignParam, Request: TransitionRequest{},
				Responses: []Response{{Status: 200, Description: "The campaign after.", Body: Campaign{}}},
				Problems:  []string{"not-found", "conflict"},
			}})
	}
	return append(rts, h.deviceRoutes()...)
}

func otaStateNames() []string {
	out := make([]string, len(ota.DeviceStates))
	for i, s := range ota.DeviceStates {
		out[i] = string(s)
	}
	return out
}

func (h campaignHandlers) create(r *http.Request, c *adminCall) (int, any, error) {
	var req CampaignRequest
	if err := decodeJSON(r, MaxCampaignBody, &req); err != nil {
		return 0, nil, err
	}
	in := campaign.CreateRequest{Target: campaign.Target{Product: req.Product, Batch: req.Batch, FirmwareBelow: req.FirmwareBelow,
		Algorithm: sigalg.ID(req.Algorithm)}, Image: req.Image, Waves: req.Waves, HaltAt: req.HaltAt,
		HaltMinFinished: req.HaltMinFinished, MigrateTo: sigalg.ID(req.MigrateTo)}
	if len(req.Devices) > campaign.MaxDevices {
		return 0, nil, fieldError("devices", "at most %d", campaign.MaxDevices)
	}
	for i, v := range req.Devices {
		id, err := identity.Parse(v)
		if err != nil {
			return 0, nil, fieldError("devices", "item %d is not an identity, 64 lowercase hex characters", i+1)
		}
		in.Target.Devices = append(in.Target.Devices, id)
	}
	out, err := h.c.Create(r.Context(), c.use(), in)
	if err != nil {
		return 0, nil, err
	}
	v := campaignView(out.Progress)
	v.Unmatched, v.Busy = out.Unmatched, out.Busy
	return http.StatusCreated, v, nil
}

func (h campaignHandlers) list(r *http.Request, c *adminCall) (int, any, error) {
	q := r.URL.Query()
	var f store.CampaignFilter
	if st := q.Get("state"); st != "" {
		f.States = []store.CampaignState{store.CampaignState(st)}
	}
	if f.ProductID = q.Get("product"); f.ProductID != "" && !audit.ProductIDPattern.MatchString(f.ProductID) {
		return 0, nil, fieldError("product", "is not a product ID")
	}
	var err error
	if f.Limit, err = pageLimit(q.Get("limit")); err != nil {
		return 0, nil, err
	}
	list, err := h.c.List(r.Context(), c.use(), f)
	if err != nil {
		return 0, nil, err
	}
	out := CampaignList{Campaigns: make([]Campaign, 0, len(list))}
	for _, cp := range list {
		out.Campaigns = append(out.Campaigns, campaignView(campaign.Progress{Campaign: cp}))
	}
	return http.StatusOK, out, nil
}

func (h campaignHandlers) get(r *http.Request, c *adminCall) (int, any, error) {
	p, err := h.c.Get(r.Context(), c.use(), r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, campaignView(p), nil
}

func (h campaignHandlers) devices(r *http.Request, c *adminCall) (int, any, error) {
	q := r.URL.Query()
	f := store.CampaignDeviceFilter{State: q.Get("state")}
	if after := q.Get("after"); after != "" {
		id, err := identity.Parse(after)
		if err != nil {
			return 0, nil, fieldError("after", "must be an identity, 64 lowercase hex characters")
		}
		f.After = id
	}
	var err error
	if f.Limit, err = pageLimit(q.Get("limit")); err != nil {
		return 0, nil, err
	}
	list, err := h.c.Devices(r.Context(), c.use(), r.PathValue("id"), f)
	if err != nil {
		return 0, nil, err
	}
	out := CampaignDeviceList{Devices: make([]CampaignDevice, 0, len(list))}
	for _, d := range list {
		out.Devices = append(out.Devices, CampaignDevice{Identity: d.Identity.String(), Wave: d.Wave + 1, State: d.State,
			Reason: d.Reason, Detail: d.Detail, FirmwareVersion: d.FirmwareVersion, UpdatedAt: d.UpdatedAt})
	}
	if len(list) == f.Limit {
		out.Next = list[len(list)-1].Identity.String()
	}
	return http.StatusOK, out, nil
}

func (h campaignHandlers) transition(verb string) adminFunc {
	return func(r *http.Request, c *adminCall) (int, any, error) {
		var req TransitionRequest
		if err := decodeJSON(r, MaxJSONBody, &req); err != nil {
			return 0, nil, err
		}
		id := r.PathValue("id")
		var p campaign.Progress
		var err error
		switch verb {
		case "pause":
			p, err = h.c.Pause(r.Context(), c.use(), id, req.Reason)
		case "resume":
			p, err = h.c.Resume(r.Context(), c.use(), id, req.Reason)
		default:
			p, err = h.c.Cancel(r.Context(), c.use(), id, req.Reason)
		}
		if err != nil {
			return 0, nil, err
		}
		return http.StatusOK, campaignView(p), nil
	}
}

func campaignView(p campaign.Progress) Campaign {
	c := p.Campaign
	v := Campaign{ID: c.ID, Product: c.ProductID, MigrateTo: string(c.MigrateTo), Target: c.Target, WaveSpec: c.WaveSpec,
		Image: CampaignImage{Digest: hex.EncodeToString(c.Image.Digest[:]), Version: c.Image.Version, Size: c.Image.Size,
			SecurityCounter: c.Image.SecurityCounter},
		HaltAt: c.HaltThreshold, HaltMinFinished: c.HaltMinFinished, State: string(c.State), CurrentWave: c.CurrentWave + 1,
		Reason: c.Reason, DeviceCount: c.DeviceCount, CreatedBy: c.CreatedBy, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt,
		Waves: make([]CampaignWave, 0, len(c.Waves))}
	if p.Counts != nil {
		v.Counts = stateCounts(p.Counts)
	}
	for i, w := range c.Waves {
		cw := CampaignWave{Wave: i + 1, Size: w.Size, Finished: w.Finished, Failed: w.Failed, Open: i <= c.CurrentWave}
		if i < len(p.Waves) {
			cw.Counts = stateCounts(p.Waves[i].Counts)
		}
		v.Waves = append(v.Waves, cw)
	}
	return v
}

func stateCounts(m map[ota.DeviceState]int) map[string]int {
	out := make(map[string]int, len(m))
	for k, n := range m {
		out[string(k)] = n
	}
	return out
}

// The device routes.

func (h campaignHandlers) deviceRoutes() []Route {
	return []Route{
		{Method: "GET", Path: ota.PathUpdate, Handler: http.HandlerFunc(h.poll), Doc: RouteDoc{
			OperationID: "deviceUpdate", Summary: "The device's open assignment, if it has one; Retry-After says when to ask again.", Tag: "device",
			Description: "A device no open campaign targets is answered 204 from memory, without a store read, unless its certificate is on the in-memory list of revoked and held certificates: then it is authenticated and a suspended, revoked or decommissioned device refused (docs/ota.md). A targeted device is authenticated as on /v1/device/status; fetching a pending assignment of an open wave moves it to offered.",
			Auth:        AuthMutualTLS,
			Responses: []Response{{Status: 200, Description: "The assignment.", Body: ota.Assignment{}},
				{Status: 204, Description: "Nothing to do now."}},
			Problems: []string{"not-onboarded", "certificate-superseded", "device-revoked", "device-suspended", "device-decommissioned"},
		}},
		{Method: "POST", Path: ota.PathUpdateReport, Handler: http.HandlerFunc(h.report), Doc: RouteDoc{
			OperationID: "deviceUpdateReport", Summary: "Report the device's progress in its campaign.", Tag: "device",
			Description: "A report moves the device forward only; repeating its state changes nothing. A report about a campaign that does not target the device is not-found; one that would move it back, come before its offer, or follow the end of its part is a conflict. migrated is accepted only from the new identity of a device that migrated, and is about the identity it had. Refusals are audited.",
			Auth:        AuthMutualTLS, Request: ota.Report{},
			Responses: []Response{{Status: 204, Description: "Recorded."}},
			Problems:  []string{"not-found", "conflict", "not-onboarded", "certificate-superseded", "device-revoked", "device-suspended", "device-decommissioned"},
		}},
	}
}

func (h campaignHandlers) poll(w http.ResponseWriter, r *http.Request) {
	leaf, err := h.device.clientCertificate(r)
	if err != nil {
		h.s.writeProblem(w, r, onboardingProblem(err))
		return
	}
	a, wait, err := h.c.Poll(r.Context(), leaf, remoteAddr(r))
	if err != nil {
		h.s.writeProblem(w, r, onboardingProblem(err))
		return
	}
	w.Header().Set("Retry-After", strconv.Itoa(int(wait/time.Second)))
	if a == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	h.s.writeJSON(w, http.StatusOK, a)
}

func (h campaignHandlers) report(w http.ResponseWriter, r *http.Request) {
	leaf, err := h.device.clientCertificate(r)
	if err != nil {
		h.s.writeProblem(w, r, onboardingProblem(err))
		return
	}
	var rep ota.Report
	if err := decodeJSON(r, ota.MaxReportBody, &rep); err != nil {
		h.s.writeProblem(w, r, err)
		return
	}
	if err := h.c.Report(r.Context(), leaf, rep, remoteAddr(r)); err != nil {
		h.s.writeProblem(w, r, onboardingProblem(err))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
