package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/hallmark-iot/hallmark/internal/identity"
)

// Allocation kinds (internal/allocation decides by them).
const (
	AllocationStatic  = "static"
	AllocationHash    = "hash"
	AllocationWebhook = "webhook"
)

// Limits of an allocation policy, so a product row stays small and a
// webhook's answer is checked against a short list.
const (
	MaxAllocationEndpoints = 16
	MaxAllocationWeight    = 1000
	MinWebhookSecret       = 16 // 128 bits, as the webhook connector asks
	MaxWebhookSecret       = 256
	maxEndpointLen         = 2048
)

// ErrBadAllocation reports a policy that is not well formed, whether
// given to a write or read back from a row.
var ErrBadAllocation = errors.New("malformed allocation policy")

// WeightedEndpoint is one endpoint of a policy and its share.
type WeightedEndpoint struct {
	URL    string `json:"url"`
	Weight int    `json:"weight"`
}

// Allocation is how a product spreads its devices over cloud endpoints.
// The zero value (or Kind static) sends every device to the product's
// CloudEndpoint; hash and webhook choose among Endpoints, whose first is
// also the product's CloudEndpoint.
type Allocation struct {
	Kind      string             `json:"kind"`
	Endpoints []WeightedEndpoint `json:"endpoints,omitempty"`
	// WebhookURL and WebhookSecret are a webhook policy's receiver and
	// HMAC key; the secret is never returned by the API nor logged.
	WebhookURL    string `json:"webhook_url,omitempty"`
	WebhookSecret []byte `json:"-"`
}

// IsStatic reports whether a sends every device to the product's
// CloudEndpoint.
func (a Allocation) IsStatic() bool { return a.Kind == "" || a.Kind == AllocationStatic }

// Check reports whether a is well formed: a known kind, for hash and
// webhook 1 to MaxAllocationEndpoints distinct endpoints with weights
// from 1 to MaxAllocationWeight, for webhook a URL and a secret of
// MinWebhookSecret to MaxWebhookSecret bytes. URL syntax is the admin
// API's to check; this guards what a row may hold.
func (a Allocation) Check() error {
	if a.IsStatic() {
		if len(a.Endpoints) != 0 || a.WebhookURL != "" || len(a.WebhookSecret) != 0 {
			return fmt.Errorf("%w: a static policy lists no endpoints nor webhook", ErrBadAllocation)
		}
		return nil
	}
	if a.Kind != AllocationHash && a.Kind != AllocationWebhook {
		return fmt.Errorf("%w: kind %q", ErrBadAllocation, a.Kind)
	}
	if len(a.Endpoints) == 0 || len(a.Endpoints) > MaxAllocationEndpoints {
		return fmt.Errorf("%w: %d endpoints, want 1 to %d", ErrBadAllocation, len(a.Endpoints), MaxAllocationEndpoints)
	}
	seen := map[string]bool{}
	for _, e := range a.Endpoints {
		if e.URL == "" || len(e.URL) > maxEndpointLen || seen[e.URL] || e.Weight < 1 || e.Weight > MaxAllocationWeight {
			return fmt.Errorf("%w: endpoint %d of weight %d empty, too long, listed twice or weighted outside 1 to %d",
				ErrBadAllocation, len(seen), e.Weight, MaxAllocationWeight)
		}
		seen[e.URL] = true
	}
	switch {
	case a.Kind == AllocationHash && (a.WebhookURL != "" || len(a.WebhookSecret) != 0):
		return fmt.Errorf("%w: a hash policy has no webhook", ErrBadAllocation)
	case a.Kind == AllocationWebhook && (a.WebhookURL == "" || len(a.WebhookURL) > maxEndpointLen):
		return fmt.Errorf("%w: a webhook policy needs its URL", ErrBadAllocation)
	case a.Kind == AllocationWebhook && (len(a.WebhookSecret) < MinWebhookSecret || len(a.WebhookSecret) > MaxWebhookSecret):
		return fmt.Errorf("%w: webhook secret of %d bytes, want %d to %d", ErrBadAllocation, len(a.WebhookSecret), MinWebhookSecret, MaxWebhookSecret)
	}
	return nil
}

// Candidates lists the endpoints p's devices may be sent to.
func (p Product) Candidates() []WeightedEndpoint {
	if p.Allocation.IsStatic() {
		return []WeightedEndpoint{{URL: p.CloudEndpoint, Weight: 1}}
	}
	return p.Allocation.Endpoints
}

// AllocationColumns is how backends keep a: NULLs for a static policy,
// else the JSON of its public part and the webhook secret (nil unless a
// webhook). It checks a first.
func AllocationColumns(a Allocation) (policy *string, secret []byte, err error) {
	if err := a.Check(); err != nil {
		return nil, nil, err
	}
	if a.IsStatic() {
		return nil, nil, nil
	}
	b, err := json.Marshal(a)
	if err != nil {
		return nil, nil, err
	}
	s := string(b)
	return &s, a.WebhookSecret, nil
}

// AllocationFromColumns reads back what AllocationColumns wrote, and
// checks it: a row edited by hand into a bad policy is an error, not a
// device sent somewhere unintended.
func AllocationFromColumns(policy *string, secret []byte) (Allocation, error) {
	if policy == nil {
		if len(secret) != 0 {
			return Allocation{}, fmt.Errorf("%w: a secret without a policy", ErrBadAllocation)
		}
		return Allocation{}, nil
	}
	var a Allocation
	if err := json.Unmarshal([]byte(*policy), &a); err != nil {
		return Allocation{}, fmt.Errorf("%w: %v", ErrBadAllocation, err)
	}
	if len(secret) != 0 {
		a.WebhookSecret = secret
	}
	if a.IsStatic() {
		return Allocation{}, fmt.Errorf("%w: a stored static policy", ErrBadAllocation)
	}
	return a, a.Check()
}

// Allocations keeps products' allocation policies and devices' endpoints.
type Allocations interface {
	// SetAllocation replaces product id's policy and returns the product;
	// for a static policy endpoint is the product's CloudEndpoint, for the
	// others the first of a.Endpoints is. Devices already allocated keep
	// their endpoint. A malformed policy is ErrBadAllocation, an unknown
	// product ErrNotFound; either changes nothing.
	SetAllocation(ctx context.Context, id string, a Allocation, endpoint string) (Product, error)
	// AllocateEndpoint records endpoint as device id's unless one is
	// recorded already, and returns the recorded one: of concurrent calls
	// the first writer wins. An unknown device is ErrNotFound.
	AllocateEndpoint(ctx context.Context, id identity.ID, endpoint string) (string, error)
}
