// Package allocation owns the choice of a device's cloud endpoint: a
// product's policy (static, hash or webhook) picks one of the product's
// endpoints for a device, once, at its first issuance. Recording the
// choice and handing it out is the caller's (internal/onboarding); this
// package decides, and is the only place that talks to a customer's
// allocation webhook.
package allocation

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// Policy is a product's allocation policy as the store keeps it: Kind
// static (the zero value), hash or webhook, the endpoints with their
// weights, and a webhook's URL and secret.
type Policy = store.Allocation

// ErrUnavailable reports that a policy could not decide now (its webhook
// failed, was slow or answered badly): the device should retry later,
// and nothing was recorded.
var ErrUnavailable = errors.New("endpoint allocation unavailable")

// Request is what a policy may decide on: the device and where it came
// from. The webhook receives all of it.
type Request struct {
	Identity identity.ID
	Product  string
	Class    string // the device's root of trust: puf, keygen or inject
	Suite    sigalg.ID
	Batch    string
	Station  identity.ID
}

// Config configures a Chooser; zero fields take the defaults.
type Config struct {
	// Client sends webhook requests; default a client that follows no
	// redirects and trusts the system's roots. A client given here should
	// not follow redirects either: the answer must come from the URL the
	// administrator configured.
	Client *http.Client
	// Timeout bounds one webhook call, answer included; default
	// DefaultTimeout. The device waits this long at most.
	Timeout time.Duration
	// Now stamps webhook requests; default time.Now.
	Now func() time.Time
}

// DefaultTimeout is the default bound on a webhook call: short, because a
// device's onboarding request waits for it.
const DefaultTimeout = 3 * time.Second

// Chooser applies policies. It is safe for concurrent use.
type Chooser struct {
	client  *http.Client
	timeout time.Duration
	now     func() time.Time
}

// New returns a Chooser configured by cfg.
func New(cfg Config) *Chooser {
	if cfg.Client == nil {
		cfg.Client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}}
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Chooser{client: cfg.Client, timeout: cfg.Timeout, now: cfg.Now}
}

// Choose returns the endpoint product's policy sends the device req
// describes to: always one of product.Candidates(). A webhook that fails
// is ErrUnavailable; a malformed policy is store.ErrBadAllocation.
func (c *Chooser) Choose(ctx context.Context, product store.Product, req Request) (string, error) {
	p := product.Allocation
	if err := p.Check(); err != nil {
		return "", fmt.Errorf("allocation policy of product %q: %w", product.ID, err)
	}
	switch {
	case p.IsStatic():
		return product.CloudEndpoint, nil
	case p.Kind == store.AllocationHash:
		return Rendezvous(req.Identity, p.Endpoints), nil
	default:
		return c.ask(ctx, p, req)
	}
}
