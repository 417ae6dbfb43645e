// Package admin owns the platform's administrative use cases: registering
// stations and products, importing signed manifests, reading devices and
// moving them through their lifecycle (suspend, resume, revoke,
// decommission, reprovision), minting, authenticating and revoking admin tokens, and reading
// the audit log. Each use case is owned here end to end (its domain
// rules, its store calls, its audit event and the connector jobs it
// enqueues), so that a front door, the HTTP API today and a console or an
// EST server later, only decodes, authorises, calls and encodes. Each
// service asks the store only for the few methods it uses.
package admin

import (
	"context"
	"log/slog"
	"time"

	"github.com/hallmark-iot/hallmark/internal/audit"
	"github.com/hallmark-iot/hallmark/internal/connector"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// Audit actions of the admin use cases: what the audit log files each call
// under, whatever front door made it.
const (
	ActionStationCreate      = "station.create"
	ActionStationList        = "station.list"
	ActionProductCreate      = "product.create"
	ActionProductList        = "product.list"
	ActionProductGet         = "product.get"
	ActionManifestImport     = "manifest.import"
	ActionDeviceList         = "device.list"
	ActionDeviceGet          = "device.get"
	ActionDeviceSuspend      = "device.suspend"
	ActionDeviceResume       = "device.resume"
	ActionDeviceRevoke       = "device.revoke"
	ActionDeviceDecommission = "device.decommission"
	ActionDeviceReprovision  = "device.reprovision"
	ActionAuditList          = "audit.list"
	ActionTokenCreate        = "token.create"
	ActionTokenList          = "token.list"
	ActionTokenRevoke        = "token.revoke"
)

// Caller is an authenticated administrator making one call.
type Caller struct {
	// Token is the token the caller presented (Tokens.Authenticate).
	Token store.Token
	// Addr is the client's address, for the audit log.
	Addr string
	// Route names what the front door was asked for (the HTTP route's
	// path): the subject of the call's audit event until the use case
	// knows a more precise one, such as the token it created.
	Route string
}

// Actor is how the audit log names the caller.
func (c Caller) Actor() string { return "token:" + c.Token.ID }

// Store is everything the admin use cases need together, for New; each
// service declares the part it uses.
type Store interface {
	TokenStore
	RegistryStore
	ManifestStore
	DeviceStore
	AuditStore
	RenewalStore
	audit.Appender
}

// Config configures the admin services.
type Config struct {
	// Recorder writes the use cases' audit events; nil records to the
	// store given to New, logging a lost event to Log.
	Recorder *audit.Recorder
	Log      *slog.Logger
	// Outbox decides the connector jobs a lifecycle transition enqueues.
	Outbox connector.Outbox
	// Now is the clock; nil is time.Now.
	Now func() time.Time
	// CertificatesChanged is told, after the fact, that a transition put
	// certificates on hold, released or revoked them, so that what
	// publishes revocation (the CRL, the OCSP responder's cache) need not
	// wait for its next poll; nil tells nobody.
	CertificatesChanged func()
	// IssuingCAs checks that the platform has a CA of the name a product
	// gives as its issuing CA; nil accepts any well-formed name.
	IssuingCAs func(name string) error
}

// Service is every admin use case, for a front door that serves them all.
type Service struct {
	Tokens    *Tokens
	Registry  *Registry
	Manifests *Manifests
	Devices   *Devices
	Audit     *AuditLog
	// Renewals forces renewals outside a product's window (renewal.go).
	Renewals *Renewals
}

// New builds the admin services on one store.
func New(st Store, cfg Config) *Service {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Recorder == nil {
		cfg.Recorder = audit.NewRecorder(st, cfg.Log, cfg.Now)
	}
	return &Service{
		Tokens:    NewTokens(st, cfg.Recorder, cfg.Now),
		Registry:  NewRegistry(st, cfg.Recorder, cfg.Now).checkingCAs(cfg.IssuingCAs),
		Manifests: NewManifests(st, cfg.Recorder, cfg.Now),
		Devices:   NewDevices(st, cfg.Outbox, cfg.Recorder, cfg.Now).notifying(cfg.CertificatesChanged),
		Audit:     NewAuditLog(st, cfg.Recorder),
		Renewals:  NewRenewals(st, cfg.Recorder, cfg.Now),
	}
}

// base is what every service shares: where events go and the clock.
type base struct {
	rec *audit.Recorder
	now func() time.Time
}

func newBase(rec *audit.Recorder, now func() time.Time) base {
	if now == nil {
		now = time.Now
	}
	return base{rec: rec, now: now}
}

// call is one use case in progress: what its audit event will say.
type call struct {
	Caller
	action string
	// subject names what the call is about; it starts as the route and
	// is refined as the use case learns more.
	subject string
	// detail adds to the event (never a secret).
	detail string
}

func (c Caller) begin(action string) *call {
	return &call{Caller: c, action: action, subject: c.Route}
}

// finish classifies err (Classify), records the call's one audit event
// and returns the classified error: every call is one event, whatever
// its outcome, and is in the log before the caller learns the outcome.
func (b base) finish(ctx context.Context, c *call, err error) error {
	outcome, detail := "ok", c.detail
	var e *Error
	if err != nil {
		e = Classify(err)
		outcome = e.outcome()
		detail = e.Code
		if c.detail != "" {
			detail += ": " + c.detail
		}
	}
	b.rec.Record(ctx, store.AuditEvent{Actor: c.Actor(), Action: c.action, Subject: c.subject,
		Outcome: outcome, Detail: detail, RemoteAddr: c.Addr})
	if e == nil {
		return nil
	}
	return e
}
