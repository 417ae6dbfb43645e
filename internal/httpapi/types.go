package httpapi

import (
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// The admin API's request and response bodies. The server and the Client
// share them; the OpenAPI document's schemas are generated from them, with
// the `doc` tag as each member's description. Optional times are pointers,
// absent when zero.

// StationRequest registers a station.
type StationRequest struct {
	Name      string `json:"name" doc:"Display name, 1 to 128 printable characters."`
	PublicKey string `json:"public_key" doc:"The station's signature public key: one PEM \"PUBLIC KEY\" block (SubjectPublicKeyInfo) of a supported suite."`
}

// Station is a registered provisioning station.
type Station struct {
	ID        identity.ID `json:"id" doc:"SHA-256 of the key's DER SubjectPublicKeyInfo."`
	Name      string      `json:"name"`
	Algorithm string      `json:"algorithm" doc:"Signature suite of the key."`
	PublicKey string      `json:"public_key" doc:"PEM public key."`
	CreatedAt time.Time   `json:"created_at"`
}

// StationList lists stations.
type StationList struct {
	Stations []Station `json:"stations"`
}

// ProductRequest creates a product.
type ProductRequest struct {
	ID                   string                   `json:"id" doc:"Slug: 1 to 63 characters of a-z, 0-9, '-', starting with a letter or digit." pattern:"^[a-z0-9][a-z0-9-]{0,62}$"`
	Name                 string                   `json:"name" doc:"Display name, 1 to 128 printable characters."`
	CertValidity         string                   `json:"cert_validity" doc:"Validity of the device certificates issued for the product, a Go duration such as \"8760h\"; 1h to 87600h (10 years)."`
	CloudEndpoint        string                   `json:"cloud_endpoint" doc:"Where onboarded devices connect: an absolute URL with scheme mqtts, https or wss, a host, no user information or fragment."`
	RenewalWindow        string                   `json:"renewal_window,omitempty" doc:"How long before its certificate expires a device may renew, a Go duration from 0 to cert_validity such as \"720h\"; a renewal before is refused with renewal-not-due unless an administrator forces it. Empty or 0: renewal at any time (the default)."`
	HeartbeatInterval    string                   `json:"heartbeat_interval,omitempty" doc:"How long an onboarded device that reported may be silent before a device.silent event, a Go duration from 1m to 8760h such as \"1h\". Empty or 0: the platform's --heartbeat-interval."`
	MinFirmwareVersion   string                   `json:"min_firmware_version,omitempty" doc:"The lowest firmware version the product's devices should run: a status report below it (or not comparable with it) adds one firmware.outdated event per version reported. Dotted numbers with an optional pre-release, e.g. 1.4.0 or 2.0.0-rc.1; anything else is refused. Empty: none."`
	FirmwareRoots        []string                 `json:"firmware_roots,omitempty" doc:"The SHA-256 (hex) of each vendor firmware root key's DER SubjectPublicKeyInfo, in the order of the devices' OTP root-key slots (at most 4): every live one must have signed an uploaded image. Empty: no image is accepted."`
	FirmwareRetiredSlots []int                    `json:"firmware_retired_slots,omitempty" doc:"The root-key slots retired so far (0 to 3): their roots are neither required nor enough. At least one root stays live."`
	FirmwareClassKey     string                   `json:"firmware_class_key,omitempty" doc:"The SHA-256 (hex) of the device-class public key (hallmark's sealing encoding) encrypted images must be sealed to. Empty: none, and encrypted images are refused."`
	IssuingCA            string                   `json:"issuing_ca,omitempty" doc:"The CA that issues the product's device certificates: a name from GET /v1/admin/cas (a CA is named after its suite, e.g. ml-dsa-65); one the platform lacks is refused. Empty: the platform's first CA."`
	RequireLocked        bool                     `json:"require_locked,omitempty" doc:"Require locked devices (docs/manufacturing.md, \"Locking the device\"): a manifest whose records do not all say the station closed every lock (debug port, key-store window, bootloader) is refused with devices-not-locked, nothing imported, and a device imported before the requirement was set is refused onboarding with device-not-locked. A record without the locks field (a manifest from before stations recorded locks) counts as not locked. Default: false."`
	Allocation           string                   `json:"allocation,omitempty" enum:"static,hash,webhook" doc:"How devices are spread over cloud endpoints (docs/front-doors.md, \"Allocation\"): static (the default) sends all to cloud_endpoint; hash spreads them over endpoints by weighted rendezvous hashing of the identity; webhook asks webhook_url, which must answer one of endpoints. Decided once per device, at its first certificate."`
	Endpoints            []store.WeightedEndpoint `json:"endpoints,omitempty" doc:"hash and webhook: 1 to 16 endpoints, each a URL as cloud_endpoint and a weight from 1 to 1000 (0 or left out: 1); cloud_endpoint is then the first, or left out. static: at most one, instead of cloud_endpoint."`
	WebhookURL           string                   `json:"webhook_url,omitempty" doc:"webhook: the URL that chooses (https, or http to loopback); it receives a signed POST per device and answers {\"endpoint\": one of endpoints}."`
	WebhookSecret        string                   `json:"webhook_secret,omitempty" doc:"webhook: the HMAC-SHA256 key signing the requests, 16 to 256 bytes; never returned."`
}

// ProductUpdateRequest changes a product's policy; members left out stay
// as they are.
type ProductUpdateRequest struct {
	RenewalWindow        *string   `json:"renewal_window,omitempty" doc:"As in ProductRequest; \"0\" allows renewal at any time."`
	HeartbeatInterval    *string   `json:"heartbeat_interval,omitempty" doc:"As in ProductRequest; \"0\" returns to the platform's default."`
	MinFirmwareVersion   *string   `json:"min_firmware_version,omitempty" doc:"As in ProductRequest; \"\" removes the minimum. Raising it after a release reports devices still below it."`
	FirmwareRoots        *[]string `json:"firmware_roots,omitempty" doc:"As in ProductRequest; replaces the list."`
	FirmwareRetiredSlots *[]int    `json:"firmware_retired_slots,omitempty" doc:"As in ProductRequest; replaces the set."`
	FirmwareClassKey     *string   `json:"firmware_class_key,omitempty" doc:"As in ProductRequest; \"\" removes the class key."`
	IssuingCA            *string   `json:"issuing_ca,omitempty" doc:"As in ProductRequest; \"\" returns to the first CA. Certificates issued before stay valid; each device's next renewal is issued by the new CA."`
	RequireLocked        *bool     `json:"require_locked,omitempty" doc:"As in ProductRequest. Turning it on refuses onboarding to devices imported before that were not recorded locked (within 30 s: the onboarding service caches products that long); devices already onboarded keep their certificates and renew."`
}

// Product decides a device's certificate profile and cloud endpoint.
type Product struct {
	ID            string    `json:"id"`
	Name          string    `json:"name"`
	CertValidity  string    `json:"cert_validity" doc:"Go duration."`
	CloudEndpoint string    `json:"cloud_endpoint"`
	CreatedAt     time.Time `json:"created_at"`
	RenewalWindow string    `json:"renewal_window" doc:"Go duration; 0s: renewal at any time."`
	// HeartbeatInterval is the product's own; 0s means the platform's.
	HeartbeatInterval  string `json:"heartbeat_interval" doc:"Go duration; 0s: the platform's --heartbeat-interval."`
	MinFirmwareVersion string `json:"min_firmware_version" doc:"Empty: no minimum."`
	// The firmware policy (ProductRequest); empty members: none.
	FirmwareRoots        []string          `json:"firmware_roots"`
	FirmwareRetiredSlots []int             `json:"firmware_retired_slots"`
	FirmwareClassKey     string            `json:"firmware_class_key,omitempty"`
	IssuingCA            string            `json:"issuing_ca" doc:"The CA issuing the product's certificates; empty: the platform's first CA."`
	RequireLocked        bool              `json:"require_locked" doc:"Devices must be recorded locked to be imported or onboarded."`
	Allocation           ProductAllocation `json:"allocation" doc:"How the product's devices are spread over cloud endpoints."`
}

// ProductAllocation shows a product's allocation policy.
type ProductAllocation struct {
	Kind             string                   `json:"kind" enum:"static,hash,webhook"`
	Endpoints        []store.WeightedEndpoint `json:"endpoints" doc:"The endpoints a device may be allocated; static: the product's cloud_endpoint, weight 1."`
	WebhookURL       string                   `json:"webhook_url,omitempty"`
	WebhookSecretSet bool                     `json:"webhook_secret_set" doc:"Whether a webhook secret is set; the secret itself is never returned."`
}

// AllocationRequest replaces a product's allocation policy: members as in
// ProductRequest (allocation, endpoints, webhook_url, webhook_secret); a
// static policy gives its one endpoint in endpoints.
type AllocationRequest struct {
	Allocation    string                   `json:"allocation" enum:"static,hash,webhook" doc:"As in ProductRequest."`
	Endpoints     []store.WeightedEndpoint `json:"endpoints" doc:"As in ProductRequest; static: exactly one, the product's new cloud_endpoint."`
	WebhookURL    string                   `json:"webhook_url,omitempty" doc:"As in ProductRequest."`
	WebhookSecret string                   `json:"webhook_secret,omitempty" doc:"As in ProductRequest; never returned."`
}

// ProductList lists products.
type ProductList struct {
	Products []Product `json:"products"`
}

// ImportResult reports a manifest import.
type ImportResult struct {
	Batch           string      `json:"batch" doc:"The manifest's batch name."`
	Station         identity.ID `json:"station" doc:"The station that signed the manifest."`
	Product         string      `json:"product"`
	Devices         int         `json:"devices" doc:"Device records in the manifest."`
	Imported        int         `json:"imported" doc:"Devices registered by this request; 0 when already imported."`
	AlreadyImported bool        `json:"already_imported" doc:"The same batch with the same manifest was imported before; nothing changed."`
	Digest          string      `json:"digest" doc:"SHA-256 of the manifest before its trailer, hex."`
}

// Device is a registered device.
type Device struct {
	Identity     identity.ID `json:"identity" doc:"SHA-256 of the enrolment key's DER SubjectPublicKeyInfo."`
	State        string      `json:"state" enum:"registered,onboarded,suspended,revoked,decommissioned" doc:"docs/lifecycle.md: registered (imported or reprovisioned, not onboarded since), onboarded, suspended (quarantined until resumed), revoked (for good), decommissioned (until reprovisioned)."`
	Algorithm    string      `json:"algorithm" doc:"Suite of the enrolment key."`
	PublicKey    []byte      `json:"public_key" doc:"DER SubjectPublicKeyInfo of the enrolment key."`
	RootOfTrust  string      `json:"root_of_trust" enum:"puf,keygen,inject,tpm"`
	Injection    string      `json:"injection" enum:"none,encrypted,clear"`
	Locks        string      `json:"locks" doc:"The lock state the station-signed manifest recorded: debug,key-store-window,bootloader (every lock closed), a part of that list, open, or unknown (a manifest written before stations recorded locks)."`
	Product      string      `json:"product"`
	Batch        string      `json:"batch"`
	Station      identity.ID `json:"station"`
	CreatedAt    time.Time   `json:"created_at" doc:"When the manifest was imported."`
	OnboardedAt  *time.Time  `json:"onboarded_at,omitempty"`
	RevokedAt    *time.Time  `json:"revoked_at,omitempty"`
	RevokeReason string      `json:"revoke_reason,omitempty"`
	// StateChangedAt and StateReason are the last lifecycle transition's.
	StateChangedAt *time.Time    `json:"state_changed_at,omitempty" doc:"When the last lifecycle transition (suspend, resume, revoke, decommission, reprovision) changed the state."`
	StateReason    string        `json:"state_reason,omitempty" doc:"The reason given for that transition."`
	Certificates   []Certificate `json:"certificates,omitempty" doc:"Issued certificates, newest first; only in GET /v1/admin/devices/{identity}."`
	Cloud          Cloud         `json:"cloud" doc:"Registration with the configured cloud connectors."`
}

// Cloud is a device's registration with the cloud connectors, derived from
// its background jobs: for each connector its latest job counts.
type Cloud struct {
	State     string `json:"state" enum:"none,pending,active,deregistered,failed" doc:"none: no job (no connector configured, or not onboarded); pending: a job waits, runs or retries; active: every connector registered the device, whose cloud service accepts it; deregistered: every connector removed it; failed: some connector's latest job gave up."`
	LastError string `json:"last_error,omitempty" doc:"The error of the job deciding the state: a retrying job's previous attempt, or a failed job's last."`
	Jobs      []Job  `json:"jobs,omitempty" doc:"The device's jobs, newest first; only in GET /v1/admin/devices/{identity}."`
}

// Job is one background registration or deregistration job.
type Job struct {
	ID        int64     `json:"id"`
	Kind      string    `json:"kind" enum:"register,deregister"`
	Connector string    `json:"connector"`
	State     string    `json:"state" enum:"pending,running,done,failed"`
	Attempts  int       `json:"attempts" doc:"Attempts that ended (retried, completed or failed)."`
	NextRunAt time.Time `json:"next_run_at" doc:"When a pending job runs next."`
	LastError string    `json:"last_error,omitempty"`
	Worker    string    `json:"worker,omitempty" doc:"The worker that last claimed the job: host/pid/random/n, telling replicas apart."`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Certificate describes an issued device certificate.
type Certificate struct {
	Serial    string     `json:"serial" doc:"128-bit serial, hex." pattern:"^[0-9a-f]{32}$"`
	NotBefore time.Time  `json:"not_before"`
	NotAfter  time.Time  `json:"not_after"`
	IssuedAt  time.Time  `json:"issued_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty" doc:"When the certificate was revoked or put on hold; absent while it is good."`
	// RevocationReason is its RFC 5280 CRLReason, named.
	RevocationReason string `json:"revocation_reason,omitempty" enum:"unspecified,key-compromise,affiliation-changed,superseded,cessation-of-operation,certificate-hold" doc:"Why it was revoked (RFC 5280 CRLReason); certificate-hold while its device is suspended. A device revoking one of its own certificates (CMP rr) may give unspecified, key-compromise, affiliation-changed, superseded or cessation-of-operation."`
	// SupersededAt is when a later certificate of the device replaced
	// this one; absent for the device's current certificate.
	SupersededAt *time.Time `json:"superseded_at,omitempty" doc:"When a later certificate of the device (a renewal or a new onboarding) replaced this one; absent for the current certificate."`
}

// DeviceList is one page of devices.
type DeviceList struct {
	Devices []Device `json:"devices"`
	Next    string   `json:"next,omitempty" doc:"Pass as ?after= for the next page; absent on the last page (which may be empty)."`
}

// TransitionRequest asks for a lifecycle transition of a device: suspend,
// resume, revoke, decommission or reprovision.
type TransitionRequest struct {
	Reason string `json:"reason" doc:"Why, for the audit log and the device's record: 1 to 256 printable characters."`
}

// RevokeRequest revokes a device.
type RevokeRequest = TransitionRequest

// AuditEvent is one audit log entry.
type AuditEvent struct {
	Seq        int64     `json:"seq"`
	Time       time.Time `json:"time"`
	Actor      string    `json:"actor" doc:"token:<id>, device:<identity>, anonymous or system."`
	Action     string    `json:"action" doc:"For example station.create, manifest.import, device.onboard."`
	Subject    string    `json:"subject" doc:"device:<identity>, station:<id>, product:<id>, batch:<name>, token:<id>, a route path, or address:<ip> for a summary of refused requests; <kind>:(invalid) where a value from outside was not a well-formed identifier."`
	Outcome    string    `json:"outcome" enum:"ok,denied,error"`
	Detail     string    `json:"detail,omitempty" doc:"Printable text only (anything else escaped), at most 512 characters; a summary of refused requests reads <reason>: <count> refused from <first> to <last>."`
	RemoteAddr string    `json:"remote_addr,omitempty"`
}

// AuditList is one page of audit events, oldest first.
type AuditList struct {
	Events []AuditEvent `json:"events"`
	Next   int64        `json:"next,omitempty" doc:"Pass as ?after= for the next page; absent on the last page."`
}

// TokenRequest creates an admin token.
type TokenRequest struct {
	Name   string   `json:"name" doc:"What the token is for, 1 to 128 printable characters."`
	Scopes []string `json:"scopes" doc:"At least one scope, each one the caller holds itself." enum:"stations:write,products:write,manifests:import,devices:read,devices:suspend,devices:revoke,audit:read,tokens:write,admin,campaigns:write,campaigns:read,firmware:write,firmware:read"`
	TTL    string   `json:"ttl,omitempty" doc:"Lifetime, a Go duration from 1m to 8760h; default 2160h (90 days). The new token may not expire after the token creating it (token-outlives-creator)."`
}

// Token describes an admin token; it never carries the secret.
type Token struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Scopes    []string   `json:"scopes"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// NewTokenResponse is the answer to a token creation: the only time the
// secret is shown.
type NewTokenResponse struct {
	Token  Token  `json:"token"`
	Secret string `json:"secret" doc:"The bearer token, hm_<id>_<secret>. Shown once; only its hash is stored."`
}

// TokenList lists tokens.
type TokenList struct {
	Tokens []Token `json:"tokens"`
}

// Status answers health and readiness checks.
type Status struct {
	Status string `json:"status" enum:"ok,ready"`
}

func optionalTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// CA is one of the platform's CAs (docs/pki.md, "Several CAs").
type CA struct {
	Name        string    `json:"name" doc:"What a product's issuing_ca names: the CA's suite."`
	Suite       string    `json:"suite" doc:"Signature suite of its root, issuing CA and certificates."`
	First       bool      `json:"first" doc:"The CA of products that name none, and of the platform's TLS certificate."`
	Subject     string    `json:"subject" doc:"Common name of the issuing CA."`
	RootSubject string    `json:"root_subject" doc:"Common name of the root."`
	SKI         string    `json:"ski" doc:"Subject key identifier of the issuing CA, hex; device certificates carry it as their authority key identifier."`
	NotAfter    time.Time `json:"not_after" doc:"End of the issuing CA's validity."`
	CRLURL      string    `json:"crl_url,omitempty" doc:"Its CRL, as its device certificates carry it; absent when revocation is not published."`
	OCSPURL     string    `json:"ocsp_url,omitempty" doc:"Its OCSP responder, as its device certificates carry it."`
}

// CAList lists the platform's CAs, the first one first.
type CAList struct {
	CAs []CA `json:"cas"`
}
