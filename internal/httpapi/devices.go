package httpapi

import (
	"encoding/hex"
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"github.com/hallmark-iot/hallmark/internal/admin"
	"github.com/hallmark-iot/hallmark/internal/audit"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/manifest"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// Page sizes of the list routes.
const (
	defaultPageLimit = 100
	maxPageLimit     = 1000
)

var limitParam = Param{Name: "limit", Type: "integer", Description: "Page size, 1 to 1000; default 100."}

func (s *Server) deviceRoutes() []Route {
	return append([]Route{
		{Method: "GET", Path: "/v1/admin/devices", Handler: s.admin(admin.ActionDeviceList, ScopeDevicesRead, s.listDevices), Doc: RouteDoc{
			OperationID: "listDevices", Summary: "List devices, filtered, one page at a time.", Tag: "devices",
			Description: "Devices in identity order. Keyset pagination: pass the response's next as after.",
			Auth:        AuthBearer, Scope: ScopeDevicesRead,
			Query: []Param{
				{Name: "state", Description: "Only devices in this state.", Enum: deviceStateNames()},
				{Name: "product", Description: "Only devices of this product."},
				{Name: "batch", Description: "Only devices of this batch."},
				{Name: "algorithm", Description: "Only devices whose enrolment key has this suite.", Enum: sigalg.Names()},
				{Name: "after", Description: "The last identity of the previous page.", Pattern: "^[0-9a-f]{64}$"},
				limitParam,
			},
			Responses: []Response{{Status: 200, Description: "One page.", Body: DeviceList{}}},
		}},
		{Method: "GET", Path: "/v1/admin/devices/{identity}", Handler: s.admin(admin.ActionDeviceGet, ScopeDevicesRead, s.getDevice), Doc: RouteDoc{
			OperationID: "getDevice", Summary: "Get a device with its certificates.", Tag: "devices",
			Auth: AuthBearer, Scope: ScopeDevicesRead, PathParams: identityParam,
			Responses: []Response{{Status: 200, Description: "The device.", Body: Device{}}},
			Problems:  []string{"not-found"},
		}},
	}, s.transitionRoutes()...)
}

// transitionDocs documents each lifecycle route (docs/lifecycle.md).
var transitionDocs = map[store.Transition]struct {
	scope, summary, description, response string
}{
	store.TransitionSuspend: {ScopeDevicesSuspend, "Suspend an onboarded device (quarantine).",
		"Its certificates are put on hold (CRL reason certificateHold), its onboarding, credentials and renewals are refused (device-suspended) and its cloud access is withdrawn (a deregister job per connector), until it is resumed.", "Suspended."},
	store.TransitionResume: {ScopeDevicesSuspend, "Resume a suspended device.",
		"Its certificates are released from hold and good again, and its cloud access is restored (a register job per connector).", "Onboarded again."},
	store.TransitionRevoke: {ScopeDevicesRevoke, "Revoke a device and its certificates, for good.",
		"Allowed from registered, onboarded and suspended. Its certificates are revoked (CRL reason keyCompromise) and it is refused from then on: onboarding, credentials and renewal (device-revoked). Revoking a revoked device changes nothing.", "Revoked."},
	store.TransitionDecommission: {ScopeDevicesRevoke, "Decommission a device at the end of its service.",
		"Allowed from registered, onboarded and suspended. Its certificates are revoked (CRL reason cessationOfOperation) and it is refused (device-decommissioned) until it is reprovisioned.", "Decommissioned."},
	store.TransitionReprovision: {ScopeDevicesRevoke, "Reprovision a decommissioned device.",
		"The device returns to registered and must onboard afresh; its old certificates stay revoked.", "Registered again."},
}

// transitionRoutes are POST /v1/admin/devices/{identity}/{transition},
// one per lifecycle transition, each with a reason.
func (s *Server) transitionRoutes() []Route {
	var routes []Route
	for _, t := range store.Transitions {
		doc := transitionDocs[t]
		action := admin.TransitionAction(t)
		routes = append(routes, Route{Method: "POST", Path: "/v1/admin/devices/{identity}/" + string(t),
			Handler: s.admin(action, doc.scope, s.transitionDevice(t)), Doc: RouteDoc{
				OperationID: string(t) + "Device", Summary: doc.summary, Tag: "devices",
				Description: doc.description + " Asking for the state the device is in already changes nothing; any other transition its state does not allow is refused with transition-not-allowed, naming the state.",
				Auth:        AuthBearer, Scope: doc.scope, PathParams: identityParam, Request: TransitionRequest{},
				Responses: []Response{{Status: 200, Description: doc.response, Body: Device{}}},
				Problems:  []string{"not-found", "transition-not-allowed"},
			}})
	}
	return routes
}

// parseQuery parses a raw query, refusing bad escapes and semicolons.
func parseQuery(raw string) (url.Values, error) {
	q, err := url.ParseQuery(raw)
	if err != nil {
		return nil, problemf("malformed-request", "the query string does not parse")
	}
	return q, nil
}

// deviceFilter reads the device list's query parameters.
func deviceFilter(q url.Values) (store.DeviceFilter, error) {
	var f store.DeviceFilter
	if state := store.DeviceState(q.Get("state")); state == "" || slices.Contains(store.DeviceStates, state) {
		f.State = state
	} else {
		return f, fieldError("state", "must be one of %v", store.DeviceStates)
	}
	if f.ProductID = q.Get("product"); f.ProductID != "" && !audit.ProductIDPattern.MatchString(f.ProductID) {
		return f, fieldError("product", "is not a product ID")
	}
	if f.BatchID = q.Get("batch"); f.BatchID != "" && !audit.BatchPattern.MatchString(f.BatchID) {
		return f, fieldError("batch", "is not a batch name")
	}
	if alg := q.Get("algorithm"); alg != "" {
		suite, err := sigalg.Lookup(alg)
		if err != nil || string(suite.ID()) != alg {
			return f, fieldError("algorithm", "must be one of %v", sigalg.Names())
		}
		f.Algorithm = suite.ID()
	}
	if after := q.Get("after"); after != "" {
		id, err := identity.Parse(after)
		if err != nil {
			return f, fieldError("after", "must be an identity, 64 lowercase hex characters")
		}
		f.After = id
	}
	var err error
	f.Limit, err = pageLimit(q.Get("limit"))
	return f, err
}

func pageLimit(v string) (int, error) {
	if v == "" {
		return defaultPageLimit, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxPageLimit || strconv.Itoa(n) != v {
		return 0, fieldError("limit", "must be an integer from 1 to %d", maxPageLimit)
	}
	return n, nil
}

func (s *Server) listDevices(r *http.Request, c *adminCall) (int, any, error) {
	f, err := deviceFilter(r.URL.Query())
	if err != nil {
		return 0, nil, err
	}
	list, err := s.svc.Devices.List(r.Context(), c.use(), f)
	if err != nil {
		return 0, nil, err
	}
	out := DeviceList{Devices: make([]Device, 0, len(list))}
	for _, d := range list {
		out.Devices = append(out.Devices, deviceView(d))
	}
	if len(list) == f.Limit {
		out.Next = list[len(list)-1].Identity.String()
	}
	return http.StatusOK, out, nil
}

// pathIdentity reads the {identity} path parameter; a malformed one names
// no device, so it is not found.
func pathIdentity(r *http.Request, c *adminCall) (identity.ID, error) {
	id, err := admin.ParseIdentity(r.PathValue("identity"))
	if err != nil {
		c.subject = "device:" + audit.Invalid
		return id, err
	}
	c.subject = "device:" + id.String()
	return id, nil
}

func (s *Server) getDevice(r *http.Request, c *adminCall) (int, any, error) {
	id, err := pathIdentity(r, c)
	if err != nil {
		return 0, nil, err
	}
	d, err := s.svc.Devices.Get(r.Context(), c.use(), id)
	if err != nil {
		return 0, nil, err
	}
	view := deviceView(d)
	for _, cert := range d.Certificates {
		view.Certificates = append(view.Certificates, Certificate{
			Serial: hex.EncodeToString(cert.Serial[:]), NotBefore: cert.NotBefore.UTC(), NotAfter: cert.NotAfter.UTC(),
			IssuedAt: cert.IssuedAt.UTC(), RevokedAt: optionalTime(cert.RevokedAt), RevocationReason: revocationReason(cert),
			SupersededAt: optionalTime(cert.SupersededAt),
		})
	}
	for _, j := range d.Jobs {
		view.Cloud.Jobs = append(view.Cloud.Jobs, Job{ID: j.ID, Kind: j.Kind, Connector: j.Connector,
			State: string(j.State), Attempts: j.Attempts, NextRunAt: j.NextRunAt.UTC(), LastError: j.LastError, Worker: j.Worker,
			CreatedAt: j.CreatedAt.UTC(), UpdatedAt: j.UpdatedAt.UTC()})
	}
	return http.StatusOK, view, nil
}

func (req *TransitionRequest) validate() error { return admin.TransitionRequest(*req).Validate() }

// transitionDevice is the handler of transition t's route.
func (s *Server) transitionDevice(t store.Transition) func(r *http.Request, c *adminCall) (int, any, error) {
	return func(r *http.Request, c *adminCall) (int, any, error) {
		id, err := pathIdentity(r, c)
		if err != nil {
			return 0, nil, err
		}
		var req TransitionRequest
		if err := decodeJSON(r, MaxJSONBody, &req); err != nil {
			return 0, nil, err
		}
		d, err := s.svc.Devices.Transition(r.Context(), c.use(), id, t, admin.TransitionRequest(req))
		if err != nil {
			return 0, nil, err
		}
		return http.StatusOK, deviceView(d), nil
	}
}

func deviceStateNames() []string {
	names := make([]string, len(store.DeviceStates))
	for i, st := range store.DeviceStates {
		names[i] = string(st)
	}
	return names
}

// reasonNames are the RFC 5280 CRLReason names of the codes the store
// gives certificates.
var reasonNames = map[int]string{
	store.ReasonUnspecified: "unspecified", store.ReasonKeyCompromise: "key-compromise", store.ReasonAffiliationChanged: "affiliation-changed",
	store.ReasonSuperseded: "superseded", store.ReasonCessationOfOperation: "cessation-of-operation",
	store.ReasonCertificateHold: "certificate-hold",
}

// revocationReason names a revoked certificate's reason; "" for a good one.
func revocationReason(c store.Certificate) string {
	if c.RevokedAt.IsZero() {
		return ""
	}
	if name, ok := reasonNames[c.RevocationReason]; ok {
		return name
	}
	return "unspecified"
}

func deviceView(d admin.DeviceStatus) Device {
	return Device{
		Identity: d.Identity, State: string(d.State), Algorithm: string(d.Algorithm), PublicKey: d.PublicKey,
		RootOfTrust: d.RootOfTrust, Injection: d.Injection, Locks: manifest.Locks(d.Locks).Label(), Product: d.ProductID, Batch: d.BatchID,
		Station: d.StationID, CreatedAt: d.CreatedAt.UTC(), OnboardedAt: optionalTime(d.OnboardedAt),
		RevokedAt: optionalTime(d.RevokedAt), RevokeReason: d.RevokeNote,
		StateChangedAt: optionalTime(d.StateChangedAt), StateReason: d.StateReason,
		Cloud: Cloud{State: d.Cloud, LastError: d.CloudError},
	}
}
