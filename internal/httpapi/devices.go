package httpapi

import (
	"encoding/hex"
	"net/http"
	"net/url"
	"strconv"

	"github.com/hallmark-iot/hallmark/internal/admin"
	"github.com/hallmark-iot/hallmark/internal/audit"
	"github.com/hallmark-iot/hallmark/internal/identity"
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
	return []Route{
		{Method: "GET", Path: "/v1/admin/devices", Handler: s.admin(admin.ActionDeviceList, ScopeDevicesRead, s.listDevices), Doc: RouteDoc{
			OperationID: "listDevices", Summary: "List devices, filtered, one page at a time.", Tag: "devices",
			Description: "Devices in identity order. Keyset pagination: pass the response's next as after.",
			Auth:        AuthBearer, Scope: ScopeDevicesRead,
			Query: []Param{
				{Name: "state", Description: "Only devices in this state.", Enum: []string{"registered", "onboarded", "revoked"}},
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
		{Method: "POST", Path: "/v1/admin/devices/{identity}/revoke", Handler: s.admin(admin.ActionDeviceRevoke, ScopeDevicesRevoke, s.revokeDevice), Doc: RouteDoc{
			OperationID: "revokeDevice", Summary: "Revoke a device and its certificates.", Tag: "devices",
			Description: "The device is refused from then on: onboarding, credentials and renewal. Revoking a revoked device changes nothing.",
			Auth:        AuthBearer, Scope: ScopeDevicesRevoke, PathParams: identityParam, Request: RevokeRequest{},
			Responses: []Response{{Status: 200, Description: "Revoked.", Body: Device{}}},
			Problems:  []string{"not-found"},
		}},
	}
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
	switch state := store.DeviceState(q.Get("state")); state {
	case "", store.StateRegistered, store.StateOnboarded, store.StateRevoked:
		f.State = state
	default:
		return f, fieldError("state", "must be registered, onboarded or revoked")
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
			IssuedAt: cert.IssuedAt.UTC(), RevokedAt: optionalTime(cert.RevokedAt), SupersededAt: optionalTime(cert.SupersededAt),
		})
	}
	for _, j := range d.Jobs {
		view.Cloud.Jobs = append(view.Cloud.Jobs, Job{ID: j.ID, Kind: j.Kind, Connector: j.Connector,
			State: string(j.State), Attempts: j.Attempts, NextRunAt: j.NextRunAt.UTC(), LastError: j.LastError, Worker: j.Worker,
			CreatedAt: j.CreatedAt.UTC(), UpdatedAt: j.UpdatedAt.UTC()})
	}
	return http.StatusOK, view, nil
}

func (req *RevokeRequest) validate() error { return admin.RevokeRequest(*req).Validate() }

func (s *Server) revokeDevice(r *http.Request, c *adminCall) (int, any, error) {
	id, err := pathIdentity(r, c)
	if err != nil {
		return 0, nil, err
	}
	var req RevokeRequest
	if err := decodeJSON(r, MaxJSONBody, &req); err != nil {
		return 0, nil, err
	}
	d, err := s.svc.Devices.Revoke(r.Context(), c.use(), id, admin.RevokeRequest(req))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, deviceView(d), nil
}

func deviceView(d admin.DeviceStatus) Device {
	return Device{
		Identity: d.Identity, State: string(d.State), Algorithm: string(d.Algorithm), PublicKey: d.PublicKey,
		RootOfTrust: d.RootOfTrust, Injection: d.Injection, Product: d.ProductID, Batch: d.BatchID,
		Station: d.StationID, CreatedAt: d.CreatedAt.UTC(), OnboardedAt: optionalTime(d.OnboardedAt),
		RevokedAt: optionalTime(d.RevokedAt), RevokeReason: d.RevokeNote,
		Cloud: Cloud{State: d.Cloud, LastError: d.CloudError},
	}
}
