// Package campaign owns update campaigns on the platform's side
// (docs/ota.md, "Campaigns"): choosing the devices an image goes to,
// rolling it out in waves, halting a campaign whose wave fails too often,
// pause, resume and cancel, and answering the devices' polls and reports
// (the messages of internal/ota). It also tells the migration service
// whether a device may move its enrolment key now (internal/migration's
// Authorizer and Completion). The store runs its decisions under the
// campaign's row lock, so replicas agree; an in-memory view of the open
// campaigns answers the polls of devices no campaign targets without
// touching the store.
package campaign

import (
	"context"
	"crypto/x509"
	"errors"
	"log/slog"
	"math/big"
	"time"

	"github.com/hallmark-iot/hallmark/internal/admin"
	"github.com/hallmark-iot/hallmark/internal/audit"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// Audit actions of campaigns.
const (
	ActionCreate   = "campaign.create"
	ActionList     = "campaign.list"
	ActionGet      = "campaign.get"
	ActionDevices  = "campaign.devices"
	ActionPause    = "campaign.pause"
	ActionResume   = "campaign.resume"
	ActionCancel   = "campaign.cancel"
	ActionHalt     = "campaign.halt"
	ActionComplete = "campaign.complete"
	// ActionReport files a device's refused report, and a refused poll.
	ActionReport = "device.update"
)

// Store is what campaigns ask of the registry.
type Store interface {
	GetProduct(ctx context.Context, id string) (store.Product, error)
	CreateCampaign(ctx context.Context, c store.Campaign, devices []store.CampaignDevice) error
	GetCampaign(ctx context.Context, id string) (store.Campaign, error)
	ListCampaigns(ctx context.Context, f store.CampaignFilter) ([]store.Campaign, error)
	CampaignCandidates(ctx context.Context, f store.CandidateFilter) ([]store.CampaignCandidate, error)
	CampaignMembers(ctx context.Context, id string) ([]identity.ID, error)
	GetCampaignDevice(ctx context.Context, campaignID string, id identity.ID) (store.CampaignDevice, error)
	ListCampaignDevices(ctx context.Context, campaignID string, f store.CampaignDeviceFilter) ([]store.CampaignDevice, error)
	DeviceCampaigns(ctx context.Context, id identity.ID) ([]store.CampaignDevice, error)
	CountCampaignDevices(ctx context.Context, campaignID string) ([]store.CampaignCount, error)
	OfferCampaignDevice(ctx context.Context, campaignID string, id identity.ID, at time.Time) (store.CampaignDevice, error)
	DecideCampaign(ctx context.Context, campaignID string, id identity.ID, decide store.CampaignDecider) (store.Campaign, store.CampaignDevice, error)
	// GetLineage finds the identity a migrated device had before
	// (a successor's report of migrated is about its predecessor).
	GetLineage(ctx context.Context, id identity.ID) (store.DeviceLineage, error)
}

// Images is the firmware repository, read only to check that a
// campaign's image exists for its product.
type Images interface {
	GetFirmwareImage(ctx context.Context, digest [32]byte) (store.FirmwareImage, error)
}

// Authenticator finds the device of a verified client certificate and
// refuses one that may not use it (onboarding.Service), as for status
// reports.
type Authenticator interface {
	AuthenticateDevice(ctx context.Context, leaf *x509.Certificate, action, addr string) (identity.ID, error)
}

// Defaults.
const (
	DefaultRefreshEvery = 5 * time.Second
	// DefaultPollActive is how long a device a running campaign targets
	// waits between polls; DefaultPollIdle one that none does.
	DefaultPollActive = 30 * time.Second
	DefaultPollIdle   = 15 * time.Minute
)

// Config configures a Service.
type Config struct {
	Store   Store
	Images  Images
	Devices Authenticator
	// Recorder writes audit events; nil records to nowhere but the log.
	Recorder *audit.Recorder
	Log      *slog.Logger
	Now      func() time.Time
	// RefreshEvery is how often the view of open campaigns is read again
	// (changes made in this process refresh it at once).
	RefreshEvery time.Duration
	// PollActive and PollIdle are the Retry-After of a poll (jittered by
	// up to a fifth either way, so that a fleet started together spreads
	// out).
	PollActive, PollIdle time.Duration
	// Metrics counts reports; nil counts nothing.
	Metrics *Metrics
	// Notifier is told when devices are offered an update (notify.go);
	// nil tells no one.
	Notifier Notifier
	// Revoked, when set, names from memory the certificates revoked or on
	// hold (revocation.Listed): a poll presenting one is authenticated
	// even when no campaign targets its device, so a suspended, revoked
	// or decommissioned device is refused as on every device route. Nil
	// answers every untargeted poll from memory.
	Revoked Revocations
}

// Revocations tells from memory whether a certificate is revoked or on
// hold; a stale answer is corrected by the store read it triggers, or
// by the next refresh.
type Revocations interface {
	ContainsCertificate(serial *big.Int) bool
}

// Service is the campaign use cases.
type Service struct {
	cfg  Config
	view view
}

// New checks cfg and returns the service. Run keeps its view fresh.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Images == nil || cfg.Devices == nil {
		return nil, errors.New("campaign: a store, an image repository and an authenticator are required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.RefreshEvery <= 0 {
		cfg.RefreshEvery = DefaultRefreshEvery
	}
	if cfg.PollActive <= 0 {
		cfg.PollActive = DefaultPollActive
	}
	if cfg.PollIdle <= 0 {
		cfg.PollIdle = DefaultPollIdle
	}
	s := &Service{cfg: cfg}
	s.view.init()
	return s, nil
}

// Run refreshes the view of open campaigns every RefreshEvery until ctx
// ends. Without it, the poll that finds the view older than RefreshEvery
// refreshes it (one store read per interval, whatever the number of
// polls), so a platform need not run it.
func (s *Service) Run(ctx context.Context) error {
	if err := s.Refresh(ctx); err != nil && ctx.Err() == nil {
		s.cfg.Log.Warn("campaign view", "error", err)
	}
	t := time.NewTicker(s.cfg.RefreshEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := s.Refresh(ctx); err != nil && ctx.Err() == nil {
				s.cfg.Log.Warn("campaign view", "error", err)
			}
		}
	}
}

// Refresh reads the open campaigns again.
func (s *Service) Refresh(ctx context.Context) error {
	return s.view.refresh(ctx, s.cfg.Store, s.cfg.Now())
}

func (s *Service) now() time.Time { return s.cfg.Now().UTC().Truncate(time.Microsecond) }

// record writes one audit event.
func (s *Service) record(ctx context.Context, e store.AuditEvent) {
	if s.cfg.Recorder != nil {
		s.cfg.Recorder.Record(ctx, e)
		return
	}
	s.cfg.Log.Info("audit", "actor", e.Actor, "action", e.Action, "subject", e.Subject, "outcome", e.Outcome, "detail", e.Detail)
}

// finish records an admin call's one event and returns its error as an
// *admin.Error (admin.Classify): the event is in the log before the
// caller learns the outcome.
func (s *Service) finish(ctx context.Context, caller admin.Caller, action, subject, detail string, err error) error {
	outcome := "ok"
	var e *admin.Error
	if err != nil {
		if errors.Is(err, ErrInvalid) {
			err = &admin.Error{Code: admin.CodeMalformed, Message: err.Error()}
		}
		e = admin.Classify(err)
		outcome, detail = "error", e.Code+": "+e.Message
		if e.Code == admin.CodeForbidden {
			outcome = "denied"
		}
	}
	s.record(ctx, store.AuditEvent{Actor: caller.Actor(), Action: action, Subject: subject, Outcome: outcome,
		Detail: detail, RemoteAddr: caller.Addr})
	if e == nil {
		return nil
	}
	return e
}

// noteChange audits what a decision did to a campaign by itself (a halt,
// a completion) and refreshes the view when its state changed.
func (s *Service) noteChange(ctx context.Context, before store.CampaignState, after store.Campaign, cause string) {
	if before == after.State {
		return
	}
	action := ""
	switch after.State {
	case store.CampaignHalted:
		action = ActionHalt
	case store.CampaignCompleted:
		action = ActionComplete
	}
	if action != "" {
		s.record(ctx, store.AuditEvent{Actor: "system", Action: action, Subject: "campaign:" + after.ID,
			Outcome: "ok", Detail: after.Reason + "; " + cause})
		s.cfg.Log.Info("campaign "+string(after.State), "campaign", after.ID, "reason", after.Reason)
	}
	s.view.update(after)
}
