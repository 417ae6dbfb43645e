package admin

import (
	"context"
	"errors"
	"time"

	"github.com/hallmark-iot/hallmark/internal/audit"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// The renewal policy's administrative side (docs/lifecycle.md, "Renewal
// and supersession"): a product's renewal window, and forcing a device's
// next renewal outside it.

// ActionDeviceForceRenewal files a forced renewal in the audit log.
const ActionDeviceForceRenewal = "device.force-renewal"

// parseRenewalWindow reads a product's renewal window: empty is none, a
// Go duration from zero to the certificates' validity otherwise.
func parseRenewalWindow(v string, validity time.Duration) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fieldError("renewal_window", "%q is not a Go duration such as \"720h\"", truncate(v, 40))
	}
	if d < 0 || d > validity {
		return 0, fieldError("renewal_window", "must be from 0 (renewal at any time) to the certificate validity")
	}
	return d, nil
}

// RenewalStore is what forcing a renewal asks of the store.
type RenewalStore interface {
	GrantRenewal(ctx context.Context, g store.RenewalGrant) error
}

// Renewals owns forcing renewals.
type Renewals struct {
	base
	store RenewalStore
}

// NewRenewals returns the renewal use cases on st.
func NewRenewals(st RenewalStore, rec *audit.Recorder, now func() time.Time) *Renewals {
	return &Renewals{base: newBase(rec, now), store: st}
}

// ForceRenewalRequest forces a device's next renewal.
type ForceRenewalRequest struct {
	// Reason says why, for the audit log and the grant: 1 to MaxReason
	// printable characters.
	Reason string
}

// Validate checks the reason.
func (req ForceRenewalRequest) Validate() error {
	return checkText("reason", req.Reason, MaxReason)
}

// ForceRenewal allows onboarded device id's next renewal outside its
// product's renewal window, once: the renewal consumes the grant in the
// transaction that records it. Forcing again before the device renews
// replaces the grant (still one renewal). A device that is not onboarded
// is CodeConflict, naming its state: a suspended device is refused every
// renewal until resumed, and a registered, revoked or decommissioned one
// has no certificate to renew.
func (r *Renewals) ForceRenewal(ctx context.Context, caller Caller, id identity.ID, req ForceRenewalRequest) (_ store.RenewalGrant, err error) {
	c := caller.begin(ActionDeviceForceRenewal)
	defer func() { err = r.finish(ctx, c, err) }()
	c.subject = "device:" + id.String()
	if err := req.Validate(); err != nil {
		return store.RenewalGrant{}, err
	}
	g := store.RenewalGrant{Identity: id, GrantedAt: r.now().UTC(), Reason: req.Reason}
	var refused *store.StateError
	switch err := r.store.GrantRenewal(ctx, g); {
	case errors.Is(err, store.ErrNotFound):
		return store.RenewalGrant{}, Errorf(CodeNotFound, "no device %s", id)
	case errors.As(err, &refused):
		return store.RenewalGrant{}, Errorf(CodeConflict, "the device is %s: only an onboarded device can be allowed a renewal", refused.State)
	case err != nil:
		return store.RenewalGrant{}, err
	}
	c.detail = req.Reason
	return g, nil
}
