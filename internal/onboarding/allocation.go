package onboarding

import (
	"context"
	"errors"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
)

// Cloud-endpoint allocation (docs/front-doors.md, "Allocation"): a
// product may spread its devices over several endpoints. The endpoint is
// decided once per device, at its first issuance through any door, and
// recorded; every later issuance, renewal or credentials request hands
// out the recorded one, so a product's policy changed later moves only
// devices not yet allocated.

// ErrAllocationUnavailable refuses an issuance whose device's endpoint
// cannot be decided now (the product's allocation webhook failed, was
// slow or answered badly): nothing is recorded, and the device retries
// after AllocationRetryAfter. The doors answer it as temporary (503 with
// Retry-After on the native and EST doors).
var ErrAllocationUnavailable = errors.New("the device's cloud endpoint cannot be allocated now; retry later")

// AllocationRetryAfter is the wait a device refused with
// ErrAllocationUnavailable is told: long enough for a webhook restart,
// short enough for a production line.
const AllocationRetryAfter = 10 * time.Second

// EndpointAllocator is a State's optional role, found by type assertion:
// without it every device gets its product's CloudEndpoint, as before
// allocation existed.
type EndpointAllocator interface {
	// AllocateEndpoint returns dev's endpoint: the one recorded, or else
	// the one its product's policy chooses now, recorded unless another
	// call recorded one first (whose choice is then returned). A policy
	// that cannot decide now is ErrAllocationUnavailable, nothing
	// recorded.
	AllocateEndpoint(ctx context.Context, dev Device) (string, error)
	// RecordedEndpoint returns the endpoint recorded for device id, ""
	// if none is.
	RecordedEndpoint(ctx context.Context, id identity.ID) (string, error)
}

// allocate returns the endpoint an issuance to dev hands out.
func (s *Service) allocate(ctx context.Context, dev Device, product Product) (string, error) {
	a, ok := s.cfg.State.(EndpointAllocator)
	if !ok {
		return product.CloudEndpoint, nil
	}
	return a.AllocateEndpoint(ctx, dev)
}

// endpointOf returns the endpoint recorded for id, or the product's when
// none is (a device issued its certificate before allocation existed and
// not backfilled) or the lookup fails: a credentials answer is not
// refused over the endpoint, which the device already holds.
func (s *Service) endpointOf(ctx context.Context, id identity.ID, product Product) string {
	if a, ok := s.cfg.State.(EndpointAllocator); ok {
		if e, err := a.RecordedEndpoint(ctx, id); err == nil && e != "" {
			return e
		} else if err != nil {
			s.cfg.Log.Warn("recorded cloud endpoint", "device", id.String(), "err", err)
		}
	}
	return product.CloudEndpoint
}
