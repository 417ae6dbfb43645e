package admin

import (
	"context"
	"errors"
	"net"
	"net/url"
	"unicode/utf8"

	"github.com/hallmark-iot/hallmark/internal/audit"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// A product's cloud-endpoint allocation (internal/allocation): static,
// hash or webhook, and the endpoints a device may be sent to.

// ActionProductAllocation is the audit action of a product's allocation
// policy change.
const ActionProductAllocation = "product.allocation"

// AllocationRequest sets a product's allocation policy.
type AllocationRequest struct {
	// Allocation is static (the default), hash or webhook.
	Allocation string
	// Endpoints lists the endpoints of a hash or webhook policy, weights
	// from 1 to store.MaxAllocationWeight (0 is 1); a static policy may
	// give its one endpoint here instead of as the product's
	// cloud_endpoint.
	Endpoints []store.WeightedEndpoint
	// WebhookURL and WebhookSecret are a webhook policy's receiver (https,
	// or http to loopback) and its HMAC key, 16 to 256 bytes.
	WebhookURL    string
	WebhookSecret string
}

// policy checks req and returns the policy and the product's
// CloudEndpoint under it: given (static), or the first endpoint listed.
// cloudEndpoint is the product request's, "" from set-allocation.
func (req AllocationRequest) policy(cloudEndpoint string) (store.Allocation, string, error) {
	switch req.Allocation {
	case "", store.AllocationStatic:
		if req.WebhookURL != "" || req.WebhookSecret != "" {
			return store.Allocation{}, "", fieldError("webhook_url", "a static allocation has no webhook")
		}
		switch {
		case len(req.Endpoints) > 1 || len(req.Endpoints) == 1 && cloudEndpoint != "":
			return store.Allocation{}, "", fieldError("endpoints", "a static allocation has one endpoint: give it as cloud_endpoint or as the one endpoint")
		case len(req.Endpoints) == 1:
			cloudEndpoint = req.Endpoints[0].URL
		}
		return store.Allocation{}, cloudEndpoint, checkEndpoint(cloudEndpoint)
	case store.AllocationHash, store.AllocationWebhook:
	default:
		return store.Allocation{}, "", fieldError("allocation", "must be static, hash or webhook")
	}
	a := store.Allocation{Kind: req.Allocation}
	if len(req.Endpoints) == 0 || len(req.Endpoints) > store.MaxAllocationEndpoints {
		return store.Allocation{}, "", fieldError("endpoints", "a %s allocation lists 1 to %d endpoints", req.Allocation, store.MaxAllocationEndpoints)
	}
	seen := map[string]bool{}
	for _, e := range req.Endpoints {
		if checkEndpoint(e.URL) != nil {
			return store.Allocation{}, "", fieldError("endpoints", "%q is not a canonical mqtts, https or wss URL with a host and no user information or fragment", truncate(e.URL, 80))
		}
		if e.Weight == 0 {
			e.Weight = 1
		}
		if e.Weight < 0 || e.Weight > store.MaxAllocationWeight || seen[e.URL] {
			return store.Allocation{}, "", fieldError("endpoints", "%q: weights are 1 to %d and each endpoint is listed once", truncate(e.URL, 80), store.MaxAllocationWeight)
		}
		seen[e.URL] = true
		a.Endpoints = append(a.Endpoints, e)
	}
	if cloudEndpoint != "" && cloudEndpoint != a.Endpoints[0].URL {
		return store.Allocation{}, "", fieldError("cloud_endpoint", "under a %s allocation it is the first endpoint listed, or left out", req.Allocation)
	}
	if req.Allocation == store.AllocationHash {
		if req.WebhookURL != "" || req.WebhookSecret != "" {
			return store.Allocation{}, "", fieldError("webhook_url", "a hash allocation has no webhook")
		}
		return a, a.Endpoints[0].URL, nil
	}
	if err := checkWebhookURL(req.WebhookURL); err != nil {
		return store.Allocation{}, "", err
	}
	if len(req.WebhookSecret) < store.MinWebhookSecret || len(req.WebhookSecret) > store.MaxWebhookSecret || !utf8.ValidString(req.WebhookSecret) {
		// The secret is never quoted back, not even its length's neighbours.
		return store.Allocation{}, "", fieldError("webhook_secret", "must be %d to %d bytes (128 bits or more)", store.MinWebhookSecret, store.MaxWebhookSecret)
	}
	a.WebhookURL, a.WebhookSecret = req.WebhookURL, []byte(req.WebhookSecret)
	return a, a.Endpoints[0].URL, nil
}

// checkWebhookURL admits what the webhook connector does: https, or
// plain http to loopback, where nothing crosses a network; no user
// information, no fragment.
func checkWebhookURL(v string) error {
	u, err := url.Parse(v)
	if err != nil || len(v) > 2048 || u.Host == "" || u.User != nil || u.Fragment != "" || u.String() != v {
		return fieldError("webhook_url", "is not a canonical absolute URL without user information or fragment")
	}
	host := u.Hostname()
	ip := net.ParseIP(host)
	if u.Scheme == "https" || u.Scheme == "http" && (host == "localhost" || ip != nil && ip.IsLoopback()) {
		return nil
	}
	return fieldError("webhook_url", "scheme must be https (http only to a loopback address)")
}

// SetAllocation replaces product id's allocation policy. Devices already
// allocated keep their endpoint; the others are allocated by the new
// policy at their first issuance.
func (r *Registry) SetAllocation(ctx context.Context, caller Caller, id string, req AllocationRequest) (_ store.Product, err error) {
	c := caller.begin(ActionProductAllocation)
	defer func() { err = r.finish(ctx, c, err) }()
	c.subject = "product:" + id
	if !audit.ProductIDPattern.MatchString(id) {
		return store.Product{}, Errorf(CodeNotFound, "no product %q", id)
	}
	a, endpoint, err := req.policy("")
	if err != nil {
		return store.Product{}, err
	}
	c.detail = allocationDetail(a, endpoint)
	p, err := r.store.SetAllocation(ctx, id, a, endpoint)
	if errors.Is(err, store.ErrNotFound) {
		return store.Product{}, Errorf(CodeNotFound, "no product %q", id)
	}
	return p, err
}

// allocationDetail says in the audit log what a policy is, without its
// secret.
func allocationDetail(a store.Allocation, endpoint string) string {
	if a.IsStatic() {
		return "allocation=static endpoint=" + endpoint
	}
	d := "allocation=" + a.Kind
	for _, e := range a.Endpoints {
		d += " endpoint=" + e.URL
	}
	if a.WebhookURL != "" {
		d += " webhook_url=" + a.WebhookURL
	}
	return d
}
