package onboardstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/hallmark-iot/hallmark/internal/allocation"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/onboarding"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// AllocationStore is what allocating a device's endpoint uses of the
// store.
type AllocationStore interface {
	GetDevice(ctx context.Context, id identity.ID) (store.Device, error)
	GetProduct(ctx context.Context, id string) (store.Product, error)
	AllocateEndpoint(ctx context.Context, id identity.ID, endpoint string) (string, error)
}

// Allocating is a State that also records each device's cloud endpoint
// by its product's policy (onboarding.EndpointAllocator).
type Allocating struct {
	*State
	st      AllocationStore
	chooser *allocation.Chooser
}

var _ onboarding.EndpointAllocator = (*Allocating)(nil)

// Allocating returns s with endpoint allocation over st, decided by c.
func (s *State) Allocating(st AllocationStore, c *allocation.Chooser) *Allocating {
	return &Allocating{State: s, st: st, chooser: c}
}

// AllocateEndpoint implements onboarding.EndpointAllocator. The product
// is read afresh, not from onboarding's cache: the policy applied is the
// one in force when the device is first issued a certificate.
func (a *Allocating) AllocateEndpoint(ctx context.Context, dev onboarding.Device) (string, error) {
	d, err := a.st.GetDevice(ctx, dev.Identity)
	if err != nil {
		return "", translate(err)
	}
	if d.CloudEndpoint != "" {
		return d.CloudEndpoint, nil
	}
	p, err := a.st.GetProduct(ctx, d.ProductID)
	if err != nil {
		return "", translate(err)
	}
	endpoint, err := a.chooser.Choose(ctx, p, allocation.Request{Identity: d.Identity, Product: p.ID, Class: d.RootOfTrust,
		Suite: d.Algorithm, Batch: d.BatchID, Station: d.StationID})
	if errors.Is(err, allocation.ErrUnavailable) {
		return "", fmt.Errorf("%w: %w", onboarding.ErrAllocationUnavailable, err)
	}
	if err != nil {
		return "", err
	}
	recorded, err := a.st.AllocateEndpoint(ctx, d.Identity, endpoint)
	return recorded, translate(err)
}

// RecordedEndpoint implements onboarding.EndpointAllocator.
func (a *Allocating) RecordedEndpoint(ctx context.Context, id identity.ID) (string, error) {
	d, err := a.st.GetDevice(ctx, id)
	return d.CloudEndpoint, translate(err)
}
