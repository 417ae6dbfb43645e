package admin

import (
	"bytes"
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/hallmark-iot/hallmark/internal/audit"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/monitoring"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// Stations and products: small records an administrator creates and lists.

// RegistryStore is what the station and product use cases ask of the
// store.
type RegistryStore interface {
	CreateStation(ctx context.Context, s store.Station) error
	ListStations(ctx context.Context) ([]store.Station, error)
	CreateProduct(ctx context.Context, p store.Product) error
	GetProduct(ctx context.Context, id string) (store.Product, error)
	ListProducts(ctx context.Context) ([]store.Product, error)
	UpdateProduct(ctx context.Context, id string, u store.ProductUpdate) (store.Product, error)
	SetAllocation(ctx context.Context, id string, a store.Allocation, endpoint string) (store.Product, error)
}

// Registry owns the provisioning stations whose manifests the platform
// accepts and the products devices belong to.
type Registry struct {
	base
	store RegistryStore
	// issuingCA checks that the platform has the CA a product names
	// (Config.IssuingCAs); nil accepts any well-formed name.
	issuingCA func(name string) error
}

// NewRegistry returns the station and product use cases on st.
func NewRegistry(st RegistryStore, rec *audit.Recorder, now func() time.Time) *Registry {
	return &Registry{base: newBase(rec, now), store: st}
}

// checkingCAs makes r check issuing CA names with check.
func (r *Registry) checkingCAs(check func(name string) error) *Registry {
	r.issuingCA = check
	return r
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

// truncate cuts s to at most n bytes, on a character boundary, marking
// the cut: a value from outside is quoted back only in part.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// StationRequest registers a station.
type StationRequest struct {
	Name string
	// PublicKey is one PEM "PUBLIC KEY" block of a supported suite.
	PublicKey string
}

// parseStationKey reads exactly one PEM "PUBLIC KEY" block, canonical DER
// of a supported suite, and nothing else.
func parseStationKey(text string) ([]byte, sigalg.ID, error) {
	block, rest := pem.Decode([]byte(text))
	switch {
	case block == nil:
		return nil, "", fieldError("public_key", "no PEM block")
	case block.Type == sigalg.PEMPrivateKey || strings.Contains(block.Type, "PRIVATE"):
		// Refuse without repeating any of it; the caller should rotate it.
		return nil, "", fieldError("public_key", "holds a private key; send only the public key and treat that private key as exposed")
	case block.Type != sigalg.PEMPublicKey || len(block.Headers) != 0:
		return nil, "", fieldError("public_key", "PEM block %q with headers %d, want one %q block", block.Type, len(block.Headers), sigalg.PEMPublicKey)
	case len(bytes.TrimSpace(rest)) != 0:
		return nil, "", fieldError("public_key", "data after the PEM block")
	}
	_, suite, err := sigalg.ParsePublicKeyWithSuite(block.Bytes)
	if err != nil {
		return nil, "", fieldError("public_key", "%v", err)
	}
	return block.Bytes, suite.ID(), nil
}

// Validate checks the request: a printable name and one public key of a
// supported suite, nothing else.
func (req StationRequest) Validate() error {
	if err := checkName("name", req.Name); err != nil {
		return err
	}
	_, _, err := parseStationKey(req.PublicKey)
	return err
}

// CreateStation registers a station's public key; its identity is the
// SHA-256 of the key's SubjectPublicKeyInfo.
func (r *Registry) CreateStation(ctx context.Context, caller Caller, req StationRequest) (_ store.Station, err error) {
	c := caller.begin(ActionStationCreate)
	defer func() { err = r.finish(ctx, c, err) }()
	if err := checkName("name", req.Name); err != nil {
		return store.Station{}, err
	}
	der, alg, err := parseStationKey(req.PublicKey)
	if err != nil {
		return store.Station{}, err
	}
	st := store.Station{ID: identity.FromSPKI(der), Name: req.Name, Algorithm: alg, PublicKey: der, CreatedAt: r.now().UTC()}
	c.subject = "station:" + st.ID.String()
	if err := r.store.CreateStation(ctx, st); err != nil {
		if errors.Is(err, store.ErrExists) {
			return store.Station{}, Errorf(CodeConflict, "station %s is registered already", st.ID)
		}
		return store.Station{}, err
	}
	return st, nil
}

// ListStations returns every station by name, then ID.
func (r *Registry) ListStations(ctx context.Context, caller Caller) (_ []store.Station, err error) {
	c := caller.begin(ActionStationList)
	defer func() { err = r.finish(ctx, c, err) }()
	return r.store.ListStations(ctx)
}

// ProductRequest creates a product.
type ProductRequest struct {
	ID   string
	Name string
	// CertValidity is a Go duration from MinCertValidity to
	// MaxCertValidity.
	CertValidity  string
	CloudEndpoint string
	// RenewalWindow is how long before its certificate expires a device
	// may renew, a Go duration from zero to CertValidity; empty or zero
	// allows a renewal at any time (renewal.go).
	RenewalWindow string
	// HeartbeatInterval is how long an onboarded device may be silent
	// before a device.silent event, a Go duration from MinHeartbeat to
	// MaxHeartbeat; empty or zero is the platform's --heartbeat-interval.
	HeartbeatInterval string
	// MinFirmwareVersion is the lowest firmware version the product's
	// devices should report (a firmware.outdated event below it); it
	// must be comparable (monitoring.ParseVersion). Empty: none.
	MinFirmwareVersion string
	// FirmwareRoots, FirmwareRetiredSlots and FirmwareClassKey are the
	// product's firmware policy (firmware.go); empty: none.
	FirmwareRoots        []string
	FirmwareRetiredSlots []int
	FirmwareClassKey     string
	// IssuingCA names the CA that issues the product's device
	// certificates (GET /v1/admin/cas): its name, which is its suite.
	// Empty: the platform's first CA.
	IssuingCA string
	// RequireLocked refuses devices whose station-signed manifest record
	// does not say every lock was closed (docs/manufacturing.md, "Locking
	// the device"): a manifest listing one is not imported, and one
	// imported before the requirement is refused onboarding.
	RequireLocked bool
	// Allocation, Endpoints, WebhookURL and WebhookSecret are the
	// product's allocation policy (AllocationRequest); CloudEndpoint may
	// then be left out.
	Allocation    string
	Endpoints     []store.WeightedEndpoint
	WebhookURL    string
	WebhookSecret string
}

func (req ProductRequest) allocation() AllocationRequest {
	return AllocationRequest{Allocation: req.Allocation, Endpoints: req.Endpoints, WebhookURL: req.WebhookURL, WebhookSecret: req.WebhookSecret}
}

// Certificate validity bounds: an hour is the shortest a device can
// usefully renew within; ten years outlives any device's support.
const (
	MinCertValidity = time.Hour
	MaxCertValidity = 10 * 8760 * time.Hour
)

var endpointSchemes = []string{"mqtts", "https", "wss"}

// Validate checks the request: a slug, a printable name, a validity
// within bounds, a canonical endpoint URL, a renewal window within the
// validity.
func (req ProductRequest) Validate() error {
	validity, err := req.validate()
	if err != nil {
		return err
	}
	if _, err = parseRenewalWindow(req.RenewalWindow, validity); err != nil {
		return err
	}
	if _, err := parseHeartbeat(req.HeartbeatInterval); err != nil {
		return err
	}
	if err := checkMinFirmware(req.MinFirmwareVersion); err != nil {
		return err
	}
	if err := checkIssuingCAName(req.IssuingCA); err != nil {
		return err
	}
	_, err = req.firmwarePolicy()
	return err
}

// issuingCAPattern is the form of a CA name (pki's: a suite name).
var issuingCAPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)

func checkIssuingCAName(v string) error {
	if v != "" && !issuingCAPattern.MatchString(v) {
		return fieldError("issuing_ca", "%q is not a CA name such as ml-dsa-65 (GET /v1/admin/cas lists them)", truncate(v, 40))
	}
	return nil
}

// checkIssuingCA refuses a CA name that is malformed or that the
// platform does not have: a product must never name a CA that cannot
// issue its devices' certificates.
func (r *Registry) checkIssuingCA(v string) error {
	if err := checkIssuingCAName(v); err != nil || v == "" || r.issuingCA == nil {
		return err
	}
	if err := r.issuingCA(v); err != nil {
		return fieldError("issuing_ca", "the platform has no CA %q (GET /v1/admin/cas lists them)", truncate(v, 40))
	}
	return nil
}

func (req ProductRequest) validate() (time.Duration, error) {
	if !audit.ProductIDPattern.MatchString(req.ID) {
		return 0, fieldError("id", "must be 1 to 63 characters of a-z, 0-9 and '-', starting with a letter or digit")
	}
	if err := checkName("name", req.Name); err != nil {
		return 0, err
	}
	validity, err := parseCertValidity(req.CertValidity)
	if err != nil {
		return 0, err
	}
	_, _, err = req.allocation().policy(req.CloudEndpoint)
	return validity, err
}

func parseCertValidity(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fieldError("cert_validity", "%q is not a Go duration such as \"8760h\"", v)
	}
	if d < MinCertValidity || d > MaxCertValidity {
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

// CreateProduct creates a product.
func (r *Registry) CreateProduct(ctx context.Context, caller Caller, req ProductRequest) (_ store.Product, err error) {
	c := caller.begin(ActionProductCreate)
	defer func() { err = r.finish(ctx, c, err) }()
	validity, err := req.validate()
	if err != nil {
		return store.Product{}, err
	}
	window, err := parseRenewalWindow(req.RenewalWindow, validity)
	if err != nil {
		return store.Product{}, err
	}
	heartbeat, err := parseHeartbeat(req.HeartbeatInterval)
	if err != nil {
		return store.Product{}, err
	}
	if err := checkMinFirmware(req.MinFirmwareVersion); err != nil {
		return store.Product{}, err
	}
	fw, err := req.firmwarePolicy()
	if err != nil {
		return store.Product{}, err
	}
	if err := r.checkIssuingCA(req.IssuingCA); err != nil {
		return store.Product{}, err
	}
	policy, endpoint, err := req.allocation().policy(req.CloudEndpoint)
	if err != nil {
		return store.Product{}, err
	}
	p := store.Product{ID: req.ID, Name: req.Name, CertValidity: validity, CloudEndpoint: endpoint, CreatedAt: r.now().UTC(),
		RenewalWindow: window, HeartbeatInterval: heartbeat, MinFirmwareVersion: req.MinFirmwareVersion, Firmware: fw, IssuingCA: req.IssuingCA,
		RequireLocked: req.RequireLocked, Allocation: policy}
	c.subject = "product:" + p.ID
	if err := r.store.CreateProduct(ctx, p); err != nil {
		if errors.Is(err, store.ErrExists) {
			return store.Product{}, Errorf(CodeConflict, "product %q exists already", p.ID)
		}
		return store.Product{}, err
	}
	return p, nil
}

// ListProducts returns every product by ID.
func (r *Registry) ListProducts(ctx context.Context, caller Caller) (_ []store.Product, err error) {
	c := caller.begin(ActionProductList)
	defer func() { err = r.finish(ctx, c, err) }()
	return r.store.ListProducts(ctx)
}

// GetProduct returns the product id.
func (r *Registry) GetProduct(ctx context.Context, caller Caller, id string) (_ store.Product, err error) {
	c := caller.begin(ActionProductGet)
	defer func() { err = r.finish(ctx, c, err) }()
	c.subject = "product:" + id
	if !audit.ProductIDPattern.MatchString(id) {
		return store.Product{}, Errorf(CodeNotFound, "no product %q", id)
	}
	p, err := r.store.GetProduct(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.Product{}, Errorf(CodeNotFound, "no product %q", id)
	}
	return p, err
}

// ActionProductUpdate is the audit action of a product's policy change.
const ActionProductUpdate = "product.update"

// Heartbeat interval bounds: a device reports at most about once a minute
// (the status route's rate), and a year of silence is no heartbeat.
const (
	MinHeartbeat = time.Minute
	MaxHeartbeat = 8760 * time.Hour
)

func parseHeartbeat(v string) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fieldError("heartbeat_interval", "%q is not a Go duration such as \"1h\"", truncate(v, 40))
	}
	if d != 0 && (d < MinHeartbeat || d > MaxHeartbeat) {
		return 0, fieldError("heartbeat_interval", "must be 0 (the platform's default) or from 1m to 8760h")
	}
	return d, nil
}

func checkMinFirmware(v string) error {
	if v == "" {
		return nil
	}
	if err := monitoring.CheckVersion(v); err != nil {
		return fieldError("min_firmware_version", "%q is not a comparable version such as 1.4.0 or 2.0.0-rc.1 (dotted numbers, then an optional -pre-release)", truncate(v, 40))
	}
	return nil
}

// ProductUpdateRequest changes a product's policy; nil fields stay as
// they are. Raising MinFirmwareVersion after a release is the usual use.
type ProductUpdateRequest struct {
	RenewalWindow      *string
	HeartbeatInterval  *string
	MinFirmwareVersion *string
	// FirmwareRoots, FirmwareRetiredSlots and FirmwareClassKey replace
	// those of the product's firmware policy ("" clears the class key).
	FirmwareRoots        *[]string
	FirmwareRetiredSlots *[]int
	FirmwareClassKey     *string
	// IssuingCA moves the product to another CA ("" to the first): its
	// devices' certificates stay valid, and each renewal from then on is
	// issued by the new CA (docs/pki.md, "Several CAs").
	IssuingCA *string
	// RequireLocked turns the lock requirement on or off; turned on, it
	// refuses onboarding to devices already imported without a closed
	// lock state, as well as future imports listing one.
	RequireLocked *bool
}

func (req ProductUpdateRequest) empty() bool {
	return req.RenewalWindow == nil && req.HeartbeatInterval == nil && req.MinFirmwareVersion == nil &&
		req.FirmwareRoots == nil && req.FirmwareRetiredSlots == nil && req.FirmwareClassKey == nil && req.IssuingCA == nil &&
		req.RequireLocked == nil
}

// UpdateProduct changes product id's renewal window, heartbeat interval or
// minimum firmware version; the audit event's detail says which, and to
// what.
func (r *Registry) UpdateProduct(ctx context.Context, caller Caller, id string, req ProductUpdateRequest) (_ store.Product, err error) {
	c := caller.begin(ActionProductUpdate)
	defer func() { err = r.finish(ctx, c, err) }()
	c.subject = "product:" + id
	if !audit.ProductIDPattern.MatchString(id) {
		return store.Product{}, Errorf(CodeNotFound, "no product %q", id)
	}
	if req.empty() {
		return store.Product{}, fieldError("renewal_window", "nothing to change: give renewal_window, heartbeat_interval, min_firmware_version, issuing_ca, require_locked or a firmware policy member")
	}
	current, err := r.store.GetProduct(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.Product{}, Errorf(CodeNotFound, "no product %q", id)
	}
	if err != nil {
		return store.Product{}, err
	}
	var u store.ProductUpdate
	var changed []string
	if req.RenewalWindow != nil {
		w, err := parseRenewalWindow(*req.RenewalWindow, current.CertValidity)
		if err != nil {
			return store.Product{}, err
		}
		u.RenewalWindow = &w
		changed = append(changed, "renewal_window="+w.String())
	}
	if req.HeartbeatInterval != nil {
		h, err := parseHeartbeat(*req.HeartbeatInterval)
		if err != nil {
			return store.Product{}, err
		}
		u.HeartbeatInterval = &h
		changed = append(changed, "heartbeat_interval="+h.String())
	}
	if req.MinFirmwareVersion != nil {
		if err := checkMinFirmware(*req.MinFirmwareVersion); err != nil {
			return store.Product{}, err
		}
		u.MinFirmwareVersion = req.MinFirmwareVersion
		changed = append(changed, "min_firmware_version="+*req.MinFirmwareVersion)
	}
	fw, err := req.updateFirmware(current.Firmware, &u)
	if err != nil {
		return store.Product{}, err
	}
	changed = append(changed, fw...)
	if req.IssuingCA != nil {
		if err := r.checkIssuingCA(*req.IssuingCA); err != nil {
			return store.Product{}, err
		}
		u.IssuingCA = req.IssuingCA
		changed = append(changed, "issuing_ca="+*req.IssuingCA)
	}
	if req.RequireLocked != nil {
		u.RequireLocked = req.RequireLocked
		changed = append(changed, fmt.Sprintf("require_locked=%v", *req.RequireLocked))
	}
	c.detail = strings.Join(changed, " ")
	p, err := r.store.UpdateProduct(ctx, id, u)
	if errors.Is(err, store.ErrNotFound) {
		return store.Product{}, Errorf(CodeNotFound, "no product %q", id)
	}
	return p, err
}
