package httpapi

import (
	"context"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/monitoring"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// Routes of monitoring (docs/lifecycle.md, "Monitoring").
const (
	PathDeviceStatus = "/v1/device/status"
	PathAdminEvents  = "/v1/admin/events"
)

// ActionEventList is the audit action of reading the event log.
const ActionEventList = "event.list"

// Monitor is the monitoring use case (monitoring.Service).
type Monitor interface {
	ReportStatus(ctx context.Context, leaf *x509.Certificate, r monitoring.StatusReport, addr string) (monitoring.Receipt, error)
	ListEvents(ctx context.Context, f store.EventFilter) ([]store.DeviceEvent, error)
}

// Event is one entry of the device event log.
type Event struct {
	Seq      int64     `json:"seq"`
	Time     time.Time `json:"time"`
	Kind     string    `json:"kind" enum:"device.onboarded,device.renewed,device.suspended,device.resumed,device.revoked,device.decommissioned,device.reprovisioned,certificate.expiring,device.silent"`
	Identity string    `json:"identity"`
	Serial   string    `json:"serial,omitempty" doc:"The certificate the event is about (a renewal's new one, an expiring one), hex."`
	Detail   string    `json:"detail,omitempty" doc:"A transition's reason, the threshold of an expiring certificate, the last report of a silent device."`
}

// EventList is one page of the event log, in commit order.
type EventList struct {
	Events []Event `json:"events"`
	Next   int64   `json:"next,omitempty" doc:"Pass as ?after= for the next page; absent on the last page."`
}

// HandleMonitoring adds the status report route (a device route,
// authenticated by the device certificate as /v1/device/credentials is)
// and the admin event log.
func (s *Server) HandleMonitoring(m Monitor, verify DeviceVerifier) error {
	h := monitorHandlers{s: s, m: m, device: onboardHandlers{s: s, verify: verify}}
	for _, rt := range h.routes() {
		if err := s.Handle(rt); err != nil {
			return err
		}
	}
	return nil
}

type monitorHandlers struct {
	s      *Server
	m      Monitor
	device onboardHandlers // for its client certificate check
}

func (h monitorHandlers) routes() []Route {
	return []Route{
		{Method: "POST", Path: PathDeviceStatus, Handler: http.HandlerFunc(h.status), Doc: RouteDoc{
			OperationID: "deviceStatus", Summary: "Report the device's status; the platform keeps the latest and the time it came.", Tag: "device",
			Description: "Refused like /v1/device/credentials for a device that is not onboarded, suspended, revoked or decommissioned, and nothing is kept. Accepted reports are not audited: they are the device's heartbeat.",
			Auth:        AuthMutualTLS, Request: monitoring.StatusReport{},
			Responses: []Response{{Status: 200, Description: "Kept.", Body: monitoring.Receipt{}}},
			Problems:  []string{"not-onboarded", "certificate-superseded", "device-revoked", "device-suspended", "device-decommissioned"},
		}},
		{Method: "GET", Path: PathAdminEvents, Handler: h.s.admin(ActionEventList, ScopeDevicesRead, h.listEvents), Doc: RouteDoc{
			OperationID: "listEvents", Summary: "Read the device event log, in commit order, one page at a time.", Tag: "devices",
			Description: "Lifecycle events are written in the transaction of the change; certificate.expiring and device.silent by the platform's periodic sweep. Follow the log by polling with ?after= the last seq seen.",
			Auth:        AuthBearer, Scope: ScopeDevicesRead,
			Query: []Param{
				{Name: "kind", Description: "Only events of this kind, e.g. device.revoked."},
				{Name: "identity", Description: "Only events of this device."},
				{Name: "after", Type: "integer", Description: "The last seq of the previous page."},
				limitParam,
			},
			Responses: []Response{{Status: 200, Description: "One page.", Body: EventList{}}},
		}},
	}
}

func (h monitorHandlers) status(w http.ResponseWriter, r *http.Request) {
	// The certificate first: an unauthenticated client's body is not read.
	leaf, err := h.device.clientCertificate(r)
	if err != nil {
		h.s.writeProblem(w, r, onboardingProblem(err))
		return
	}
	var req monitoring.StatusReport
	if err := decodeJSON(r, monitoring.MaxReportBody, &req); err != nil {
		h.s.writeProblem(w, r, err)
		return
	}
	receipt, err := h.m.ReportStatus(r.Context(), leaf, req, remoteAddr(r))
	if err != nil {
		if errors.Is(err, monitoring.ErrMalformedReport) {
			h.s.writeProblem(w, r, NewProblem("malformed-request", err.Error()))
			return
		}
		h.s.writeProblem(w, r, onboardingProblem(err))
		return
	}
	h.s.writeJSON(w, http.StatusOK, receipt)
}

func eventFilter(q url.Values) (store.EventFilter, error) {
	var f store.EventFilter
	if kind := q.Get("kind"); kind != "" {
		if f.Kind = store.EventKind(kind); !f.Kind.Valid() {
			return f, fieldError("kind", "must be one of %v", store.EventKinds)
		}
	}
	if v := q.Get("identity"); v != "" {
		id, err := identity.Parse(v)
		if err != nil {
			return f, fieldError("identity", "must be an identity, 64 lowercase hex characters")
		}
		f.Identity = id
	}
	var err error
	if f.AfterSeq, err = afterSeq(q.Get("after")); err != nil {
		return f, err
	}
	f.Limit, err = pageLimit(q.Get("limit"))
	return f, err
}

func (h monitorHandlers) listEvents(r *http.Request, _ *adminCall) (int, any, error) {
	f, err := eventFilter(r.URL.Query())
	if err != nil {
		return 0, nil, err
	}
	list, err := h.m.ListEvents(r.Context(), f)
	if err != nil {
		return 0, nil, err
	}
	out := EventList{Events: make([]Event, 0, len(list))}
	for _, e := range list {
		ev := Event{Seq: e.Seq, Time: e.Time, Kind: string(e.Kind), Identity: e.Identity.String(), Detail: e.Detail}
		if e.Serial != ([16]byte{}) {
			ev.Serial = hex.EncodeToString(e.Serial[:])
		}
		out.Events = append(out.Events, ev)
	}
	if len(list) == f.Limit {
		out.Next = list[len(list)-1].Seq
	}
	return http.StatusOK, out, nil
}
