package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/hallmark-iot/hallmark/internal/admin"
	"github.com/hallmark-iot/hallmark/internal/identity"
)

// The renewal policy's admin route (docs/lifecycle.md, "Renewal and
// supersession"): forcing a device's next renewal outside its product's
// window.

// PathForceRenewal is the route's path pattern.
const PathForceRenewal = "/v1/admin/devices/{identity}/force-renewal"

// ForceRenewalRequest forces a device's next renewal.
type ForceRenewalRequest struct {
	Reason string `json:"reason" doc:"Why, for the audit log: 1 to 256 printable characters."`
}

// RenewalGrant is a device's pending forced renewal.
type RenewalGrant struct {
	Identity  identity.ID `json:"identity"`
	GrantedAt time.Time   `json:"granted_at"`
	Reason    string      `json:"reason"`
}

func (s *Server) renewalRoutes() []Route {
	return []Route{
		{Method: "POST", Path: PathForceRenewal, Handler: s.admin(admin.ActionDeviceForceRenewal, ScopeDevicesSuspend, s.forceRenewal), Doc: RouteDoc{
			OperationID: "forceRenewal", Summary: "Allow a device's next renewal outside its product's renewal window, once.", Tag: "devices",
			Description: "The device's next renewal succeeds whether or not its certificate is in the window (the renewal limit still applies) and uses the grant up, in the transaction that records the new certificate; forcing again before it renews replaces the grant. Only an onboarded device can be granted one (conflict otherwise). The renewal's audit event says forced.",
			Auth:        AuthBearer, Scope: ScopeDevicesSuspend, PathParams: identityParam, Request: ForceRenewalRequest{},
			Responses: []Response{{Status: 200, Description: "The grant.", Body: RenewalGrant{}}},
			Problems:  []string{"not-found", "conflict"},
		}},
	}
}

func (req *ForceRenewalRequest) validate() error { return admin.ForceRenewalRequest(*req).Validate() }

func (s *Server) forceRenewal(r *http.Request, c *adminCall) (int, any, error) {
	id, err := pathIdentity(r, c)
	if err != nil {
		return 0, nil, err
	}
	var req ForceRenewalRequest
	if err := decodeJSON(r, MaxJSONBody, &req); err != nil {
		return 0, nil, err
	}
	g, err := s.svc.Renewals.ForceRenewal(r.Context(), c.use(), id, admin.ForceRenewalRequest(req))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, RenewalGrant{Identity: g.Identity, GrantedAt: g.GrantedAt.UTC(), Reason: g.Reason}, nil
}

// ForceRenewal allows a device's next renewal outside its product's
// renewal window, once.
func (c *Client) ForceRenewal(ctx context.Context, id identity.ID, reason string) (RenewalGrant, error) {
	var out RenewalGrant
	return out, c.doJSON(ctx, "POST", "/v1/admin/devices/"+id.String()+"/force-renewal", ForceRenewalRequest{Reason: reason}, &out)
}
