package admin

import (
	"context"
	"errors"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// A device's lifecycle transitions (docs/lifecycle.md): each one is one
// call here, one store transaction (store.Lifecycle.TransitionDevice,
// which checks the state it starts from under the device's row lock and
// changes its certificates) with the connector jobs connector.Outbox
// decides, and one audit event.

// MaxReason bounds a transition's reason, in characters.
const MaxReason = 256

// MaxRevokeReason bounds a revocation's reason: MaxReason.
const MaxRevokeReason = MaxReason

// TransitionRequest is what every transition asks for.
type TransitionRequest struct {
	// Reason says why, for the audit log and the device's record: 1 to
	// MaxReason printable characters.
	Reason string
}

// RevokeRequest revokes a device.
type RevokeRequest = TransitionRequest

// Validate checks the reason.
func (req TransitionRequest) Validate() error {
	return checkText("reason", req.Reason, MaxReason)
}

// transitionActions files each transition in the audit log.
var transitionActions = map[store.Transition]string{
	store.TransitionSuspend:      ActionDeviceSuspend,
	store.TransitionResume:       ActionDeviceResume,
	store.TransitionRevoke:       ActionDeviceRevoke,
	store.TransitionDecommission: ActionDeviceDecommission,
	store.TransitionReprovision:  ActionDeviceReprovision,
}

// TransitionAction is the audit action of transition t.
func TransitionAction(t store.Transition) string { return transitionActions[t] }

// Suspend quarantines an onboarded device: its certificates are put on
// hold and its cloud access withdrawn until it is resumed.
func (d *Devices) Suspend(ctx context.Context, caller Caller, id identity.ID, req TransitionRequest) (DeviceStatus, error) {
	return d.Transition(ctx, caller, id, store.TransitionSuspend, req)
}

// Resume returns a suspended device to onboarded: its certificates are
// released from hold and its cloud access restored.
func (d *Devices) Resume(ctx context.Context, caller Caller, id identity.ID, req TransitionRequest) (DeviceStatus, error) {
	return d.Transition(ctx, caller, id, store.TransitionResume, req)
}

// Revoke revokes a device and its certificates (key compromise), for
// good. Revoking a revoked device changes nothing.
func (d *Devices) Revoke(ctx context.Context, caller Caller, id identity.ID, req RevokeRequest) (DeviceStatus, error) {
	return d.Transition(ctx, caller, id, store.TransitionRevoke, req)
}

// Decommission takes a device out of service: its certificates are
// revoked (cessation of operation), its identity may be reprovisioned.
func (d *Devices) Decommission(ctx context.Context, caller Caller, id identity.ID, req TransitionRequest) (DeviceStatus, error) {
	return d.Transition(ctx, caller, id, store.TransitionDecommission, req)
}

// Reprovision returns a decommissioned device to registered: it must
// onboard afresh, and its old certificates stay revoked.
func (d *Devices) Reprovision(ctx context.Context, caller Caller, id identity.ID, req TransitionRequest) (DeviceStatus, error) {
	return d.Transition(ctx, caller, id, store.TransitionReprovision, req)
}

// Transition applies t to device id, enqueueing in the same transaction
// the jobs the outbox policy asks for given the device as it was. A
// device in t's target state already is left as it is (a retry is
// harmless); a state t may not start from is CodeTransitionNotAllowed,
// naming the state. The result carries no jobs list.
func (d *Devices) Transition(ctx context.Context, caller Caller, id identity.ID, t store.Transition, req TransitionRequest) (_ DeviceStatus, err error) {
	action, ok := transitionActions[t]
	if !ok {
		return DeviceStatus{}, Errorf(CodeInternal, "unknown transition %q", t)
	}
	c := caller.begin(action)
	defer func() { err = d.finish(ctx, c, err) }()
	c.subject = "device:" + id.String()
	if err := req.Validate(); err != nil {
		return DeviceStatus{}, err
	}
	var refused *store.TransitionError
	res, err := d.store.TransitionDevice(ctx, id, store.TransitionRequest{Transition: t, Reason: req.Reason,
		At: d.now().UTC(), Jobs: d.outbox.JobsOf(t)})
	switch {
	case errors.Is(err, store.ErrNotFound):
		return DeviceStatus{}, Errorf(CodeNotFound, "no device %s", id)
	case errors.As(err, &refused):
		c.detail = refused.Error()
		return DeviceStatus{}, err
	case err != nil:
		return DeviceStatus{}, err
	case res.Changed:
		c.detail = req.Reason
		if d.certificatesChanged != nil && t != store.TransitionReprovision {
			d.certificatesChanged()
		}
	default:
		c.detail = "already " + string(res.Device.State) + "; nothing changed"
	}
	out, err := d.withCloud(ctx, res.Device)
	out.Jobs = nil
	return out, err
}
