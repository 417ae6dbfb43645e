package campaign

import (
	"context"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/hallmark-iot/hallmark/internal/admin"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/migration"
	"github.com/hallmark-iot/hallmark/internal/ota"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// The device's side of a campaign: polls, reports, and the migration
// service's questions.

// claimed is the identity a verified device certificate names (the
// platform issues it with the identity as its common name).
func claimed(leaf *x509.Certificate) (identity.ID, bool) {
	if leaf == nil {
		return identity.ID{}, false
	}
	id, err := identity.Parse(leaf.Subject.CommonName)
	return id, err == nil
}

// Poll answers a device's GET of its assignment: the assignment, or nil
// when it has none, and when to ask again. leaf is the client
// certificate mutual TLS verified against the platform's CA.
//
// A device that no open campaign targets, presenting a certificate that
// is not revoked or on hold (Config.Revoked, in memory), is answered from
// memory: no store read. A certificate listed as revoked or on hold (its
// device suspended, revoked or decommissioned, or the certificate
// superseded) is authenticated against the store, which refuses it as
// on every device route and audits the refusal; a listing that is stale
// (a device resumed since) costs that one read and nothing else. A
// targeted device is authenticated as on every device route before
// anything is read. A revocation made since the last read of the list
// is answered from memory until the next (docs/ota.md, "Polling").
func (s *Service) Poll(ctx context.Context, leaf *x509.Certificate, addr string) (*ota.Assignment, time.Duration, error) {
	if err := s.view.refreshIfStale(ctx, s.cfg.Store, s.cfg.Now(), s.cfg.RefreshEvery); err != nil {
		s.cfg.Log.Warn("campaign view", "error", err)
	}
	id, ok := claimed(leaf)
	if !ok {
		return nil, s.jitter(s.cfg.PollIdle), nil
	}
	open := s.view.lookup(id)
	listed := s.cfg.Revoked != nil && s.cfg.Revoked.ContainsCertificate(leaf.SerialNumber)
	if len(open) == 0 && !listed {
		return nil, s.jitter(s.cfg.PollIdle), nil
	}
	got, err := s.cfg.Devices.AuthenticateDevice(ctx, leaf, ActionReport, addr)
	if err != nil {
		return nil, 0, err
	}
	if got != id || len(open) == 0 {
		return nil, s.jitter(s.cfg.PollIdle), nil
	}
	wait := s.jitter(s.cfg.PollIdle)
	for _, c := range open {
		if c.State == store.CampaignRunning {
			wait = s.jitter(s.cfg.PollActive)
		}
		a, err := s.offer(ctx, c, id)
		if err != nil || a != nil {
			return a, wait, err
		}
	}
	return nil, wait, nil
}

// offer returns c's assignment for id if its part is open: offered now
// (a pending device of an open wave of a running campaign) or earlier
// and not finished (in a running or paused campaign, so that an agent
// that restarts mid-update finds it again).
func (s *Service) offer(ctx context.Context, c store.Campaign, id identity.ID) (*ota.Assignment, error) {
	var d store.CampaignDevice
	var err error
	if c.State == store.CampaignRunning {
		d, err = s.cfg.Store.OfferCampaignDevice(ctx, c.ID, id, s.now())
	} else {
		d, err = s.cfg.Store.GetCampaignDevice(ctx, c.ID, id)
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, err
	case !open(c, ota.DeviceState(d.State)):
		return nil, nil
	}
	return assignment(c), nil
}

func assignment(c store.Campaign) *ota.Assignment {
	digest := hex.EncodeToString(c.Image.Digest[:])
	a := &ota.Assignment{CampaignID: c.ID, Image: ota.ImageRef{Digest: digest, Size: c.Image.Size,
		Version: c.Image.Version, SecurityCounter: c.Image.SecurityCounter, Path: ota.PathFirmware + digest}}
	if c.MigrateTo != "" {
		a.Migration = &ota.MigrationOrder{TargetAlgorithm: c.MigrateTo}
	}
	return a
}

// jitter spreads d by up to a fifth either way, in whole seconds.
func (s *Service) jitter(d time.Duration) time.Duration {
	f := 0.8 + 0.4*rand.Float64()
	return max(time.Second, time.Duration(float64(d)*f).Round(time.Second))
}

// Report records a device's report about its part in a campaign. A
// report moves the device forward only; repeating its state changes
// nothing; a report about a campaign that does not target the device is
// refused as not found, one that would move it back or skip its offer as
// a conflict, and the refusal is audited.
func (s *Service) Report(ctx context.Context, leaf *x509.Certificate, r ota.Report, addr string) error {
	if err := r.Check(); err != nil {
		return &admin.Error{Code: admin.CodeMalformed, Message: err.Error()}
	}
	id, err := s.cfg.Devices.AuthenticateDevice(ctx, leaf, ActionReport, addr)
	if err != nil {
		return err
	}
	if r.State == ota.StateMigrated {
		// The agent reports migrated with its new certificate: the report
		// is about the identity the platform's lineage says it had, whose
		// row the migration service's completion marked already (or
		// this report marks). The old identity cannot say it migrated.
		lin, err := s.cfg.Store.GetLineage(ctx, id)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if lin.Predecessor == nil {
			return s.refuse(ctx, id, r, addr, admin.Errorf(admin.CodeConflict, "migrated is reported by the device's new identity once the migration completed"))
		}
		id = lin.Predecessor.Predecessor
	}
	return s.apply(ctx, id, r, addr)
}

// apply runs a report's decision and notes what it did to the campaign.
func (s *Service) apply(ctx context.Context, id identity.ID, r ota.Report, addr string) error {
	if !IDPattern.MatchString(r.CampaignID) {
		return s.refuse(ctx, id, r, addr, admin.Errorf(admin.CodeNotFound, "no campaign %q targets this device", truncate(r.CampaignID)))
	}
	var seen decided
	c, _, err := s.cfg.Store.DecideCampaign(ctx, r.CampaignID, id, reportDecider(r, s.now(), &seen))
	switch {
	case errors.Is(err, store.ErrNotFound):
		return s.refuse(ctx, id, r, addr, admin.Errorf(admin.CodeNotFound, "no campaign %s targets this device", r.CampaignID))
	case err != nil:
		var e *admin.Error
		if errors.As(err, &e) {
			return s.refuse(ctx, id, r, addr, e)
		}
		return err
	}
	if seen.changed {
		s.cfg.Metrics.report(r)
	}
	s.noteChange(ctx, seen.before, c, fmt.Sprintf("after a report of device %s", id))
	s.offeredByDecision(seen, c)
	return nil
}

func (s *Service) refuse(ctx context.Context, id identity.ID, r ota.Report, addr string, e *admin.Error) error {
	s.cfg.Metrics.refused()
	s.record(ctx, store.AuditEvent{Actor: "device:" + id.String(), Action: ActionReport, Subject: "device:" + id.String(),
		Outcome: "denied", Detail: fmt.Sprintf("%s: %s (%s)", e.Code, e.Message, r.State), RemoteAddr: addr})
	return e
}

// ErrNoMigration refuses a migration the device's campaigns do not
// allow now: the migration service's own sentinel, which it answers as
// a refusal rather than a failure.
var ErrNoMigration = migration.ErrNoMigration

// MigrationAllowed tells the migration service whether device id may
// migrate now and to which suite: yes when a running or paused migration
// campaign targets it and its update has booted (its new image runs).
func (s *Service) MigrationAllowed(ctx context.Context, id identity.ID) (sigalg.ID, error) {
	rows, err := s.cfg.Store.DeviceCampaigns(ctx, id)
	if err != nil {
		return "", fmt.Errorf("campaign: migration of %s: %w", id, err)
	}
	for _, d := range rows {
		if d.State != string(ota.StateBooted) {
			continue
		}
		c, err := s.cfg.Store.GetCampaign(ctx, d.CampaignID)
		if err != nil {
			return "", fmt.Errorf("campaign: migration of %s: %w", id, err)
		}
		if c.MigrateTo != "" && (c.State == store.CampaignRunning || c.State == store.CampaignPaused) {
			return c.MigrateTo, nil
		}
	}
	return "", ErrNoMigration
}

// MigrationCompleted marks the old identity migrated in the migration
// campaign that allowed it, which counts it finished for its wave. It is
// idempotent: the successor's report of migrated may have come first.
func (s *Service) MigrationCompleted(ctx context.Context, old, new identity.ID) error {
	rows, err := s.cfg.Store.DeviceCampaigns(ctx, old)
	if err != nil {
		return fmt.Errorf("campaign: migration of %s: %w", old, err)
	}
	for _, d := range rows {
		if d.State == string(ota.StateMigrated) {
			return nil // the successor's own report came first
		}
		if d.State != string(ota.StateBooted) {
			continue
		}
		c, err := s.cfg.Store.GetCampaign(ctx, d.CampaignID)
		if err != nil {
			return fmt.Errorf("campaign: migration of %s: %w", old, err)
		}
		if c.MigrateTo == "" {
			continue
		}
		r := ota.Report{CampaignID: c.ID, State: ota.StateMigrated, Detail: "successor " + new.String()}
		var seen decided
		after, _, err := s.cfg.Store.DecideCampaign(ctx, c.ID, old, reportDecider(r, s.now(), &seen))
		if err != nil {
			return fmt.Errorf("campaign: migration of %s: %w", old, err)
		}
		if seen.changed {
			s.cfg.Metrics.report(r)
		}
		s.noteChange(ctx, seen.before, after, fmt.Sprintf("after the migration of %s", old))
		s.offeredByDecision(seen, after)
		return nil
	}
	return fmt.Errorf("campaign: migration of %s: %w", old, ErrNoMigration)
}
