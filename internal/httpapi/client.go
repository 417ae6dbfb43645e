package httpapi

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/pki"
)

// maxAdminResponse bounds an admin response body: a page of 1,000
// ML-DSA-87 devices is under 4 MiB.
const maxAdminResponse = 32 << 20

// Client calls the admin API. Errors the server answers with are
// *Problem.
type Client struct {
	// BaseURL is the platform, e.g. https://hallmark.example.com:8443.
	BaseURL string
	// Token is the bearer token, hm_<id>_<secret>.
	Token string
	HTTP  *http.Client
}

// NewClient returns a client of the platform at baseURL over HTTPS with
// TLS 1.3 at least, trusting roots (nil: the system's).
func NewClient(baseURL, token string, roots *x509.CertPool) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil {
		return nil, fmt.Errorf("server %q: want https://host[:port]", baseURL)
	}
	if _, _, ok := parseBearer(token); !ok {
		return nil, errors.New("the admin token is malformed (want hm_<id>_<secret>)")
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.TLSClientConfig = pki.ClientTLSConfig(roots, nil)
	transport.Proxy = http.ProxyFromEnvironment
	return &Client{
		BaseURL: strings.TrimRight(baseURL, "/"), Token: token,
		HTTP: &http.Client{Transport: transport, Timeout: 30 * time.Minute},
	}, nil
}

// do sends one admin request and decodes a JSON answer into out, or
// returns the server's problem.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, body io.Reader, contentType string, out any) error {
	return roundTrip(ctx, c.HTTP, c.BaseURL, apiRequest{method: method, path: path, query: query, body: body,
		contentType: contentType, token: c.Token, limit: maxAdminResponse}, out)
}

// apiRequest is one request to the platform's API.
type apiRequest struct {
	method, path string
	query        url.Values
	body         io.Reader // nil: none
	contentType  string
	token        string // the bearer token; empty: none
	// limit bounds the response body: each side of the API knows how
	// large its answers can be.
	limit int64
}

// StatusError is an error answer that is not a problem (a proxy's, say).
type StatusError struct {
	Method, Path string
	Status       int
	StatusText   string // as the response's status line gives it
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%s %s: server answered %s", e.Method, e.Path, e.StatusText)
}

// roundTrip is the one request/response of every client of the API: it
// sends req to baseURL over hc and decodes a JSON answer into out (nil
// ignores it), or returns the server's *Problem, with its Retry-After,
// or a *StatusError for an error answer that is no problem. Both answers
// must say their media type, and neither may exceed req.limit.
func roundTrip(ctx context.Context, hc *http.Client, baseURL string, req apiRequest, out any) error {
	target := baseURL + req.path
	if len(req.query) > 0 {
		target += "?" + req.query.Encode()
	}
	hreq, err := http.NewRequestWithContext(ctx, req.method, target, req.body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", req.method, req.path, err)
	}
	if req.token != "" {
		hreq.Header.Set("Authorization", "Bearer "+req.token)
	}
	hreq.Header.Set("Accept", "application/json, application/problem+json")
	if req.contentType != "" {
		hreq.Header.Set("Content-Type", req.contentType)
	}
	resp, err := hc.Do(hreq)
	if err != nil {
		return fmt.Errorf("%s %s: %w", req.method, baseURL, unwrapURLError(err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, req.limit+1))
	if err != nil {
		return fmt.Errorf("%s %s: read response: %w", req.method, req.path, err)
	}
	if int64(len(data)) > req.limit {
		return fmt.Errorf("%s %s: response larger than %d bytes", req.method, req.path, req.limit)
	}
	media, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if resp.StatusCode >= 300 {
		var p Problem
		if media == "application/problem+json" && json.Unmarshal(data, &p) == nil && p.Code != "" {
			p.RetryAfter = retryAfter(resp.Header)
			return &p
		}
		return &StatusError{Method: req.method, Path: req.path, Status: resp.StatusCode, StatusText: resp.Status}
	}
	if out == nil {
		return nil
	}
	if media != "application/json" {
		return fmt.Errorf("%s %s: server answered %s, not JSON", req.method, req.path, media)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: decode response: %w", req.method, req.path, err)
	}
	return nil
}

// retryAfter reads a Retry-After of whole seconds; zero without one.
func retryAfter(h http.Header) time.Duration {
	if secs, err := strconv.Atoi(h.Get("Retry-After")); err == nil && secs > 0 {
		return time.Duration(secs) * time.Second
	}
	return 0
}

// unwrapURLError drops *url.Error's repetition of the URL.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func (c *Client) doJSON(ctx context.Context, method, path string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return c.do(ctx, method, path, nil, bytes.NewReader(body), "application/json", out)
}

// CreateStation registers a station's public key (PEM).
func (c *Client) CreateStation(ctx context.Context, req StationRequest) (Station, error) {
	var out Station
	return out, c.doJSON(ctx, "POST", "/v1/admin/stations", req, &out)
}

// ListStations lists stations.
func (c *Client) ListStations(ctx context.Context) ([]Station, error) {
	var out StationList
	return out.Stations, c.do(ctx, "GET", "/v1/admin/stations", nil, nil, "", &out)
}

// CreateProduct creates a product.
func (c *Client) CreateProduct(ctx context.Context, req ProductRequest) (Product, error) {
	var out Product
	return out, c.doJSON(ctx, "POST", "/v1/admin/products", req, &out)
}

// ListProducts lists products.
func (c *Client) ListProducts(ctx context.Context) ([]Product, error) {
	var out ProductList
	return out.Products, c.do(ctx, "GET", "/v1/admin/products", nil, nil, "", &out)
}

// GetProduct returns one product.
func (c *Client) GetProduct(ctx context.Context, id string) (Product, error) {
	var out Product
	return out, c.do(ctx, "GET", "/v1/admin/products/"+url.PathEscape(id), nil, nil, "", &out)
}

// UpdateProduct changes a product's policy (members left nil stay).
func (c *Client) UpdateProduct(ctx context.Context, id string, req ProductUpdateRequest) (Product, error) {
	var out Product
	return out, c.doJSON(ctx, "PATCH", "/v1/admin/products/"+url.PathEscape(id), req, &out)
}

// SetAllocation replaces a product's cloud-endpoint allocation policy.
func (c *Client) SetAllocation(ctx context.Context, id string, req AllocationRequest) (Product, error) {
	var out Product
	return out, c.doJSON(ctx, "PUT", "/v1/admin/products/"+url.PathEscape(id)+"/allocation", req, &out)
}

// ImportManifest uploads a manifest, streaming it from r.
func (c *Client) ImportManifest(ctx context.Context, product string, r io.Reader) (ImportResult, error) {
	var out ImportResult
	q := url.Values{"product": {product}}
	return out, c.do(ctx, "POST", "/v1/admin/manifests", q, r, "application/jsonl", &out)
}

// DeviceQuery selects devices; zero fields match everything.
type DeviceQuery struct {
	State, Product, Batch, Algorithm string
	After                            string
	Limit                            int
}

func (q DeviceQuery) values() url.Values {
	v := url.Values{}
	for name, val := range map[string]string{"state": q.State, "product": q.Product, "batch": q.Batch,
		"algorithm": q.Algorithm, "after": q.After} {
		if val != "" {
			v.Set(name, val)
		}
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	return v
}

// ListDevices returns one page of devices.
func (c *Client) ListDevices(ctx context.Context, q DeviceQuery) (DeviceList, error) {
	var out DeviceList
	return out, c.do(ctx, "GET", "/v1/admin/devices", q.values(), nil, "", &out)
}

// GetDevice returns a device with its certificates.
func (c *Client) GetDevice(ctx context.Context, id identity.ID) (Device, error) {
	var out Device
	return out, c.do(ctx, "GET", "/v1/admin/devices/"+id.String(), nil, nil, "", &out)
}

// RevokeDevice revokes a device.
func (c *Client) RevokeDevice(ctx context.Context, id identity.ID, reason string) (Device, error) {
	var out Device
	return out, c.doJSON(ctx, "POST", "/v1/admin/devices/"+id.String()+"/revoke", RevokeRequest{Reason: reason}, &out)
}

// TransitionDevice asks for a lifecycle transition of a device (suspend,
// resume, revoke, decommission, reprovision) with reason.
func (c *Client) TransitionDevice(ctx context.Context, id identity.ID, transition, reason string) (Device, error) {
	var out Device
	return out, c.doJSON(ctx, "POST", "/v1/admin/devices/"+id.String()+"/"+url.PathEscape(transition), TransitionRequest{Reason: reason}, &out)
}

// AuditQuery selects audit events; zero fields match everything.
type AuditQuery struct {
	Actor, Action, Subject string
	After                  int64
	Limit                  int
}

// ListAudit returns one page of audit events.
func (c *Client) ListAudit(ctx context.Context, q AuditQuery) (AuditList, error) {
	v := url.Values{}
	for name, val := range map[string]string{"actor": q.Actor, "action": q.Action, "subject": q.Subject} {
		if val != "" {
			v.Set(name, val)
		}
	}
	if q.After > 0 {
		v.Set("after", strconv.FormatInt(q.After, 10))
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	var out AuditList
	return out, c.do(ctx, "GET", "/v1/admin/audit", v, nil, "", &out)
}

// CreateToken creates a token; the response holds its secret, once.
func (c *Client) CreateToken(ctx context.Context, req TokenRequest) (NewTokenResponse, error) {
	var out NewTokenResponse
	return out, c.doJSON(ctx, "POST", "/v1/admin/tokens", req, &out)
}

// ListTokens lists tokens.
func (c *Client) ListTokens(ctx context.Context) ([]Token, error) {
	var out TokenList
	return out.Tokens, c.do(ctx, "GET", "/v1/admin/tokens", nil, nil, "", &out)
}

// RevokeToken revokes a token.
func (c *Client) RevokeToken(ctx context.Context, id string) (Token, error) {
	var out Token
	return out, c.do(ctx, "DELETE", "/v1/admin/tokens/"+url.PathEscape(id), nil, nil, "", &out)
}
