package httpapi

import (
	"context"
	"net/http"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Path parameter descriptions shared by routes.
var (
	identityParam = map[string]string{"identity": "Device identity: 64 lowercase hex characters."}
	productParam  = map[string]string{"id": "Product ID."}
	tokenParam    = map[string]string{"id": "Token ID (the public part)."}
)

// builtinRoutes is the admin and platform route table. The onboarding
// routes join it through Handle (onboard.go).
func (s *Server) builtinRoutes() []Route {
	return slices.Concat(s.platformRoutes(), s.registryRoutes(), s.manifestRoutes(), s.deviceRoutes(), s.renewalRoutes(), s.auditTokenRoutes())
}

func (s *Server) platformRoutes() []Route {
	return []Route{
		{Method: "GET", Path: "/healthz", Handler: http.HandlerFunc(s.healthz), Doc: RouteDoc{
			OperationID: "healthz", Summary: "Liveness: the process answers.", Tag: "platform",
			Responses: []Response{{Status: 200, Description: "Alive.", Body: Status{}}},
		}},
		{Method: "GET", Path: "/readyz", Handler: http.HandlerFunc(s.readyz), Doc: RouteDoc{
			OperationID: "readyz", Summary: "Readiness: the store answers.", Tag: "platform",
			Responses: []Response{{Status: 200, Description: "Ready.", Body: Status{}}},
			Problems:  []string{"unavailable"},
		}},
		{Method: "GET", Path: "/metrics", Handler: promhttp.HandlerFor(s.metrics, promhttp.HandlerOpts{}), Doc: RouteDoc{
			OperationID: "metrics", Summary: "Prometheus metrics.", Tag: "platform",
			Description: "HTTP requests (hallmark_http_requests_total) and their duration (hallmark_http_request_duration_seconds) by route pattern and status code, and whatever else is registered with the server's registry.",
			Responses:   []Response{{Status: 200, Description: "Prometheus exposition format.", MediaType: "text/plain"}},
		}},
		{Method: "GET", Path: "/openapi.json", Handler: http.HandlerFunc(s.serveOpenAPI), Doc: RouteDoc{
			OperationID: "openapi", Summary: "This OpenAPI 3.1 document.", Tag: "platform",
			Responses: []Response{{Status: 200, Description: "The document.", MediaType: "application/json"}},
		}},
	}
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	s.writeJSON(w, http.StatusOK, Status{Status: "ok"})
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.ready(ctx); err != nil {
		s.log.Warn("not ready", "request_id", requestID(r.Context()), "error", err)
		s.writeProblem(w, r, NewProblem("unavailable", "the store does not answer"))
		return
	}
	s.writeJSON(w, http.StatusOK, Status{Status: "ready"})
}
