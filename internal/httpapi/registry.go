package httpapi

import (
	"bytes"
	"encoding/pem"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// Stations and products: small records an administrator creates and lists.

func (s *Server) registryRoutes() []Route {
	return []Route{
		{Method: "POST", Path: "/v1/admin/stations", Handler: s.admin("station.create", ScopeStationsWrite, s.createStation), Doc: RouteDoc{
			OperationID: "createStation", Summary: "Register a provisioning station's public key.", Tag: "stations",
			Description: "The station's identity is the SHA-256 of the key's SubjectPublicKeyInfo; manifests it signs can then be imported.",
			Auth:        AuthBearer, Scope: ScopeStationsWrite, Request: StationRequest{},
			Responses: []Response{{Status: 201, Description: "Registered.", Body: Station{}}},
			Problems:  []string{"conflict"},
		}},
		{Method: "GET", Path: "/v1/admin/stations", Handler: s.admin("station.list", ScopeStationsWrite, s.listStations), Doc: RouteDoc{
			OperationID: "listStations", Summary: "List registered stations.", Tag: "stations",
			Auth: AuthBearer, Scope: ScopeStationsWrite,
			Responses: []Response{{Status: 200, Description: "Every station, by name.", Body: StationList{}}},
		}},
		{Method: "POST", Path: "/v1/admin/products", Handler: s.admin("product.create", ScopeProductsWrite, s.createProduct), Doc: RouteDoc{
			OperationID: "createProduct", Summary: "Create a product.", Tag: "products",
			Auth: AuthBearer, Scope: ScopeProductsWrite, Request: ProductRequest{},
			Responses: []Response{{Status: 201, Description: "Created.", Body: Product{}}},
			Problems:  []string{"conflict"},
		}},
		{Method: "GET", Path: "/v1/admin/products", Handler: s.admin("product.list", ScopeProductsWrite, s.listProducts), Doc: RouteDoc{
			OperationID: "listProducts", Summary: "List products.", Tag: "products",
			Auth: AuthBearer, Scope: ScopeProductsWrite,
			Responses: []Response{{Status: 200, Description: "Every product, by ID.", Body: ProductList{}}},
		}},
		{Method: "GET", Path: "/v1/admin/products/{id}", Handler: s.admin("product.get", ScopeProductsWrite, s.getProduct), Doc: RouteDoc{
			OperationID: "getProduct", Summary: "Get a product.", Tag: "products",
			Auth: AuthBearer, Scope: ScopeProductsWrite, PathParams: productParam,
			Responses: []Response{{Status: 200, Description: "The product.", Body: Product{}}},
			Problems:  []string{"not-found"},
		}},
	}
}

const maxName = 128

// checkName accepts 1 to maxName printable characters of valid UTF-8.
func checkName(field, v string) error { return checkText(field, v, maxName) }

// checkText accepts 1 to max printable characters of valid UTF-8: what
// ends up in listings and the audit log cannot forge lines or hide text.
func checkText(field, v string, max int) error {
	if v == "" || utf8.RuneCountInString(v) > max || !utf8.ValidString(v) {
		return fieldError(field, "must be 1 to %d characters", max)
	}
	for _, r := range v {
		if !unicode.IsPrint(r) {
			return fieldError(field, "must be printable characters only")
		}
	}
	return nil
}

func (req *StationRequest) validate() error {
	if err := checkName("name", req.Name); err != nil {
		return err
	}
	_, err := parseStationKey(req.PublicKey)
	return err
}

// parseStationKey reads exactly one PEM "PUBLIC KEY" block, canonical DER
// of a supported suite, and nothing else.
func parseStationKey(text string) ([]byte, error) {
	block, rest := pem.Decode([]byte(text))
	switch {
	case block == nil:
		return nil, fieldError("public_key", "no PEM block")
	case block.Type == sigalg.PEMPrivateKey || strings.Contains(block.Type, "PRIVATE"):
		// Refuse without repeating any of it; the caller should rotate it.
		return nil, fieldError("public_key", "holds a private key; send only the public key and treat that private key as exposed")
	case block.Type != sigalg.PEMPublicKey || len(block.Headers) != 0:
		return nil, fieldError("public_key", "PEM block %q with headers %d, want one %q block", block.Type, len(block.Headers), sigalg.PEMPublicKey)
	case len(bytes.TrimSpace(rest)) != 0:
		return nil, fieldError("public_key", "data after the PEM block")
	}
	if _, err := sigalg.ParsePublicKey(block.Bytes); err != nil {
		return nil, fieldError("public_key", "%v", err)
	}
	return block.Bytes, nil
}

func (s *Server) createStation(r *http.Request, c *adminCall) (int, any, error) {
	var req StationRequest
	if err := decodeJSON(r, MaxJSONBody, &req); err != nil {
		return 0, nil, err
	}
	der, _ := parseStationKey(req.PublicKey) // validated by decodeJSON
	pub, _ := sigalg.ParsePublicKey(der)
	suite, _ := sigalg.SuiteOf(pub)
	st := store.Station{ID: identity.FromSPKI(der), Name: req.Name, Algorithm: suite.ID(), PublicKey: der, CreatedAt: s.now().UTC()}
	c.subject = "station:" + st.ID.String()
	if err := s.store.CreateStation(r.Context(), st); err != nil {
		if errors.Is(err, store.ErrExists) {
			return 0, nil, problemf("conflict", "station %s is registered already", st.ID)
		}
		return 0, nil, err
	}
	return http.StatusCreated, stationView(st), nil
}

func (s *Server) listStations(r *http.Request, _ *adminCall) (int, any, error) {
	list, err := s.store.ListStations(r.Context())
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

var productIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// Certificate validity bounds: an hour is the shortest a device can
// usefully renew within; ten years outlives any device's support.
const (
	minCertValidity = time.Hour
	maxCertValidity = 10 * 8760 * time.Hour
)

var endpointSchemes = []string{"mqtts", "https", "wss"}

func (req *ProductRequest) validate() error {
	if !productIDPattern.MatchString(req.ID) {
		return fieldError("id", "must be 1 to 63 characters of a-z, 0-9 and '-', starting with a letter or digit")
	}
	if err := checkName("name", req.Name); err != nil {
		return err
	}
	if _, err := parseCertValidity(req.CertValidity); err != nil {
		return err
	}
	return checkEndpoint(req.CloudEndpoint)
}

func parseCertValidity(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fieldError("cert_validity", "%q is not a Go duration such as \"8760h\"", v)
	}
	if d < minCertValidity || d > maxCertValidity {
		return 0, fieldError("cert_validity", "must be from 1h to 87600h (10 years)")
	}
	return d, nil
}

func checkEndpoint(v string) error {
	u, err := url.Parse(v)
	if err != nil || len(v) > 2048 {
		return fieldError("cloud_endpoint", "is not a URL")
	}
	switch {
	case !slices.Contains(endpointSchemes, u.Scheme):
		return fieldError("cloud_endpoint", "scheme must be mqtts, https or wss")
	case u.Host == "" || u.Hostname() == "" || u.Opaque != "":
		return fieldError("cloud_endpoint", "needs a host, as in mqtts://broker.example.com:8883")
	case u.User != nil:
		return fieldError("cloud_endpoint", "must not carry user information")
	case u.Fragment != "" || strings.Contains(v, "#"):
		return fieldError("cloud_endpoint", "must not have a fragment")
	case u.String() != v:
		return fieldError("cloud_endpoint", "is not in canonical form (%q)", u.String())
	}
	return nil
}

func (s *Server) createProduct(r *http.Request, c *adminCall) (int, any, error) {
	var req ProductRequest
	if err := decodeJSON(r, MaxJSONBody, &req); err != nil {
		return 0, nil, err
	}
	validity, _ := parseCertValidity(req.CertValidity)
	p := store.Product{ID: req.ID, Name: req.Name, CertValidity: validity, CloudEndpoint: req.CloudEndpoint, CreatedAt: s.now().UTC()}
	c.subject = "product:" + p.ID
	if err := s.store.CreateProduct(r.Context(), p); err != nil {
		if errors.Is(err, store.ErrExists) {
			return 0, nil, problemf("conflict", "product %q exists already", p.ID)
		}
		return 0, nil, err
	}
	return http.StatusCreated, productView(p), nil
}

func (s *Server) listProducts(r *http.Request, _ *adminCall) (int, any, error) {
	list, err := s.store.ListProducts(r.Context())
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
	id := r.PathValue("id")
	c.subject = "product:" + id
	if !productIDPattern.MatchString(id) {
		return 0, nil, problemf("not-found", "no product %q", id)
	}
	p, err := s.store.GetProduct(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil, problemf("not-found", "no product %q", id)
	}
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, productView(p), nil
}

func productView(p store.Product) Product {
	return Product{ID: p.ID, Name: p.Name, CertValidity: formatDuration(p.CertValidity), CloudEndpoint: p.CloudEndpoint, CreatedAt: p.CreatedAt.UTC()}
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
