package app

import (
	"context"
	"fmt"

	"github.com/hallmark-iot/hallmark/internal/connector"
	"github.com/hallmark-iot/hallmark/internal/httpapi"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/keys"
	"github.com/hallmark-iot/hallmark/internal/migration"
	"github.com/hallmark-iot/hallmark/internal/onboarding"
	"github.com/hallmark-iot/hallmark/internal/onboarding/onboardpki"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// MigrationConfig configures post-quantum migration (docs/migration.md,
// "The platform's side").
type MigrationConfig struct {
	// Authorizer says which devices may migrate now and to which suite
	// (the campaign service); nil is OpenTo's rule, or no migration at
	// all without it.
	Authorizer migration.Authorizer
	// Completion is told of each committed migration; nil tells no one.
	Completion migration.Completion
	// OpenTo, without an Authorizer, lets every onboarded device migrate
	// to this suite (tests, and an operator migrating a whole fleet by
	// hand); empty allows no migration.
	OpenTo sigalg.ID
}

// openTo is the Authorizer of MigrationConfig.OpenTo.
type openTo sigalg.ID

func (o openTo) MigrationAllowed(context.Context, identity.ID) (sigalg.ID, error) {
	if o == "" {
		return "", migration.ErrNoMigration
	}
	return sigalg.ID(o), nil
}

// startMigration builds the migration service and adds its routes.
func (p *Platform) startMigration(api *httpapi.Server, devices *onboarding.Service, verify httpapi.DeviceVerifier, connectors []string) error {
	mc := p.cfg.Migration
	auth, completion := mc.Authorizer, mc.Completion
	switch {
	case auth != nil:
	case mc.OpenTo != "":
		if _, err := mc.OpenTo.Suite(); err != nil {
			return fmt.Errorf("migration: %w", err)
		}
		auth = openTo(mc.OpenTo)
	case p.campaigns != nil:
		// The platform's rule: a device migrates when a migration
		// campaign's update has booted on it (docs/migration.md).
		auth = p.campaigns
	default:
		auth = openTo("")
	}
	if completion == nil && p.campaigns != nil {
		completion = p.campaigns
	}
	// An inject chip's new key comes from the platform's key manager (the
	// CA's), which exports it only sealed to the chip; a manager without
	// that capability leaves inject chips unmigratable.
	gen, _ := p.keys.(keys.DeviceKeyGenerator)
	svc, err := migration.New(migration.Config{Store: p.Store, Devices: devices, Issuer: onboardpki.NewIssuers(p.CAs, p.cfg.Now),
		Authorizer: auth, Completion: completion, Outbox: connector.Outbox{Connectors: connectors}, KeyGenerator: gen,
		ServerName: p.cfg.ServerName, CertificatesRevoked: p.NotifyRevocation, Log: p.cfg.Log, Now: p.cfg.Now})
	if err != nil {
		return err
	}
	return api.HandleMigration(svc, verify)
}
