package httpapi

import (
	"context"
	"encoding/hex"
	"encoding/pem"
	"net/http"
	"strings"
	"time"

	"github.com/hallmark-iot/hallmark/internal/admin"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// Stations and products: small records an administrator creates and lists.

func (s *Server) registryRoutes() []Route {
	return []Route{
		{Method: "POST", Path: "/v1/admin/stations", Handler: s.admin(admin.ActionStationCreate, ScopeStationsWrite, s.createStation), Doc: RouteDoc{
			OperationID: "createStation", Summary: "Register a provisioning station's public key.", Tag: "stations",
			Description: "The station's identity is the SHA-256 of the key's SubjectPublicKeyInfo; manifests it signs can then be imported.",
			Auth:        AuthBearer, Scope: ScopeStationsWrite, Request: StationRequest{},
			Responses: []Response{{Status: 201, Description: "Registered.", Body: Station{}}},
			Problems:  []string{"conflict"},
		}},
		{Method: "GET", Path: "/v1/admin/stations", Handler: s.admin(admin.ActionStationList, ScopeStationsWrite, s.listStations), Doc: RouteDoc{
			OperationID: "listStations", Summary: "List registered stations.", Tag: "stations",
			Auth: AuthBearer, Scope: ScopeStationsWrite,
			Responses: []Response{{Status: 200, Description: "Every station, by name.", Body: StationList{}}},
		}},
		{Method: "POST", Path: "/v1/admin/products", Handler: s.admin(admin.ActionProductCreate, ScopeProductsWrite, s.createProduct), Doc: RouteDoc{
			OperationID: "createProduct", Summary: "Create a product.", Tag: "products",
			Auth: AuthBearer, Scope: ScopeProductsWrite, Request: ProductRequest{},
			Responses: []Response{{Status: 201, Description: "Created.", Body: Product{}}},
			Problems:  []string{"conflict"},
		}},
		{Method: "GET", Path: "/v1/admin/products", Handler: s.admin(admin.ActionProductList, ScopeProductsWrite, s.listProducts), Doc: RouteDoc{
			OperationID: "listProducts", Summary: "List products.", Tag: "products",
			Auth: AuthBearer, Scope: ScopeProductsWrite,
			Responses: []Response{{Status: 200, Description: "Every product, by ID.", Body: ProductList{}}},
		}},
		{Method: "GET", Path: "/v1/admin/products/{id}", Handler: s.admin(admin.ActionProductGet, ScopeProductsWrite, s.getProduct), Doc: RouteDoc{
			OperationID: "getProduct", Summary: "Get a product.", Tag: "products",
			Auth: AuthBearer, Scope: ScopeProductsWrite, PathParams: productParam,
			Responses: []Response{{Status: 200, Description: "The product.", Body: Product{}}},
			Problems:  []string{"not-found"},
		}},
		{Method: "PATCH", Path: "/v1/admin/products/{id}", Handler: s.admin(admin.ActionProductUpdate, ScopeProductsWrite, s.updateProduct), Doc: RouteDoc{
			OperationID: "updateProduct", Summary: "Change a product's renewal window, heartbeat interval, minimum firmware version, firmware policy or issuing CA.", Tag: "products",
			Description: "Members left out stay as they are. A new minimum firmware version reaches status reports within 30 seconds " +
				"(each replica reads products again at most that often); devices below it are reported by their next report.",
			Auth: AuthBearer, Scope: ScopeProductsWrite, PathParams: productParam, Request: ProductUpdateRequest{},
			Responses: []Response{{Status: 200, Description: "The product as changed.", Body: Product{}}},
			Problems:  []string{"not-found"},
		}},
		{Method: "PUT", Path: "/v1/admin/products/{id}/allocation", Handler: s.admin(admin.ActionProductAllocation, ScopeProductsWrite, s.setAllocation), Doc: RouteDoc{
			OperationID: "setProductAllocation", Summary: "Replace a product's cloud-endpoint allocation policy.", Tag: "products",
			Description: "Devices already allocated an endpoint (at their first certificate) keep it; devices not yet allocated get the new " +
				"policy's choice at their first issuance. The webhook secret is never returned (webhook_secret_set says whether there is one). " +
				"docs/front-doors.md, \"Allocation\".",
			Auth: AuthBearer, Scope: ScopeProductsWrite, PathParams: productParam, Request: AllocationRequest{},
			Responses: []Response{{Status: 200, Description: "The product as changed.", Body: Product{}}},
			Problems:  []string{"not-found"},
		}},
	}
}

func (req *StationRequest) validate() error { return admin.StationRequest(*req).Validate() }

func (s *Server) createStation(r *http.Request, c *adminCall) (int, any, error) {
	var req StationRequest
	if err := decodeJSON(r, MaxJSONBody, &req); err != nil {
		return 0, nil, err
	}
	st, err := s.svc.Registry.CreateStation(r.Context(), c.use(), admin.StationRequest(req))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, stationView(st), nil
}

func (s *Server) listStations(r *http.Request, c *adminCall) (int, any, error) {
	list, err := s.svc.Registry.ListStations(r.Context(), c.use())
	if err != nil {
		return 0, nil, err
	}
	out := StationList{Stations: []Station{}}
	for _, st := range list {
		out.Stations = append(out.Stations, stationView(st))
	}
	return http.StatusOK, out, nil
}

func stationView(st store.Station) Station {
	pemText := string(pem.EncodeToMemory(&pem.Block{Type: sigalg.PEMPublicKey, Bytes: st.PublicKey}))
	return Station{ID: st.ID, Name: st.Name, Algorithm: string(st.Algorithm), PublicKey: pemText, CreatedAt: st.CreatedAt.UTC()}
}

func (req *ProductRequest) validate() error { return admin.ProductRequest(*req).Validate() }

func (s *Server) createProduct(r *http.Request, c *adminCall) (int, any, error) {
	var req ProductRequest
	if err := decodeJSON(r, MaxJSONBody, &req); err != nil {
		return 0, nil, err
	}
	p, err := s.svc.Registry.CreateProduct(r.Context(), c.use(), admin.ProductRequest(req))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, productView(p), nil
}

func (s *Server) listProducts(r *http.Request, c *adminCall) (int, any, error) {
	list, err := s.svc.Registry.ListProducts(r.Context(), c.use())
	if err != nil {
		return 0, nil, err
	}
	out := ProductList{Products: []Product{}}
	for _, p := range list {
		out.Products = append(out.Products, productView(p))
	}
	return http.StatusOK, out, nil
}

func (s *Server) getProduct(r *http.Request, c *adminCall) (int, any, error) {
	p, err := s.svc.Registry.GetProduct(r.Context(), c.use(), r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, productView(p), nil
}

// validate leaves the values to the use case, which knows the product's
// validity a renewal window must fit in.
func (req *ProductUpdateRequest) validate() error { return nil }

func (s *Server) updateProduct(r *http.Request, c *adminCall) (int, any, error) {
	var req ProductUpdateRequest
	if err := decodeJSON(r, MaxJSONBody, &req); err != nil {
		return 0, nil, err
	}
	p, err := s.svc.Registry.UpdateProduct(r.Context(), c.use(), r.PathValue("id"), admin.ProductUpdateRequest(req))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, productView(p), nil
}

func productView(p store.Product) Product {
	return Product{ID: p.ID, Name: p.Name, CertValidity: formatDuration(p.CertValidity), CloudEndpoint: p.CloudEndpoint, CreatedAt: p.CreatedAt.UTC(),
		RenewalWindow: formatDuration(p.RenewalWindow), HeartbeatInterval: formatDuration(p.HeartbeatInterval),
		MinFirmwareVersion: p.MinFirmwareVersion, FirmwareRoots: admin.FormatRoots(p.Firmware.Roots),
		FirmwareRetiredSlots: admin.RetiredSlots(p.Firmware.Retired), FirmwareClassKey: classKeyHex(p.Firmware.ClassKey), IssuingCA: p.IssuingCA,
		RequireLocked: p.RequireLocked, Allocation: allocationView(p)}
}

func classKeyHex(k [32]byte) string {
	if k == ([32]byte{}) {
		return ""
	}
	return hex.EncodeToString(k[:])
}

// formatDuration writes "8760h" rather than time.Duration's "8760h0m0s".
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// ActionCAList is the audit action of listing the platform's CAs.
const ActionCAList = "ca.list"

// HandleCAs serves GET /v1/admin/cas: list returns the platform's CAs,
// which do not change while it runs.
func (s *Server) HandleCAs(list func() []CA) error {
	return s.Handle(Route{Method: "GET", Path: "/v1/admin/cas", Handler: s.admin(ActionCAList, ScopeProductsWrite,
		func(*http.Request, *adminCall) (int, any, error) {
			return http.StatusOK, CAList{CAs: append([]CA{}, list()...)}, nil
		}), Doc: RouteDoc{
		OperationID: "listCAs", Summary: "List the platform's CAs.", Tag: "products",
		Description: "Each CA a product can name as its issuing_ca: the first CA (made on first start, --ca-suite) and one per " +
			"further suite (--ca-suites). Its CRL and OCSP URLs are those its device certificates carry.",
		Auth: AuthBearer, Scope: ScopeProductsWrite,
		Responses: []Response{{Status: 200, Description: "Every CA, the first one first.", Body: CAList{}}},
	}})
}

// ListCAs lists the platform's CAs.
func (c *Client) ListCAs(ctx context.Context) ([]CA, error) {
	var out CAList
	return out.CAs, c.do(ctx, "GET", "/v1/admin/cas", nil, nil, "", &out)
}

func (req *AllocationRequest) validate() error {
	return nil // the use case checks it whole; a bad one is a field problem there
}

func (s *Server) setAllocation(r *http.Request, c *adminCall) (int, any, error) {
	var req AllocationRequest
	if err := decodeJSON(r, MaxJSONBody, &req); err != nil {
		return 0, nil, err
	}
	p, err := s.svc.Registry.SetAllocation(r.Context(), c.use(), r.PathValue("id"), admin.AllocationRequest(req))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, productView(p), nil
}

// allocationView shows a product's policy; the webhook secret only as
// set.
func allocationView(p store.Product) ProductAllocation {
	kind := p.Allocation.Kind
	if p.Allocation.IsStatic() {
		kind = store.AllocationStatic
	}
	return ProductAllocation{Kind: kind, Endpoints: p.Candidates(), WebhookURL: p.Allocation.WebhookURL,
		WebhookSecretSet: len(p.Allocation.WebhookSecret) > 0}
}
