package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
)

// A device's life after manufacture (docs/lifecycle.md): it is imported
// registered, onboards, and from then on only administrative transitions
// change its state. Each transition is one store write that checks the
// state it starts from under the device's row lock, changes the device's
// certificates and enqueues its connector jobs, all or nothing.

// Transition is an administrative change of a device's state.
type Transition string

// Transitions.
const (
	// TransitionSuspend quarantines an onboarded device: reversible.
	TransitionSuspend Transition = "suspend"
	// TransitionResume returns a suspended device to onboarded.
	TransitionResume Transition = "resume"
	// TransitionRevoke refuses a device for good: its key is compromised.
	TransitionRevoke Transition = "revoke"
	// TransitionDecommission ends a device's service; its certificates
	// are revoked for good, its identity may be reprovisioned.
	TransitionDecommission Transition = "decommission"
	// TransitionReprovision returns a decommissioned device to
	// registered: it must onboard afresh.
	TransitionReprovision Transition = "reprovision"
)

// Transitions lists every transition, in the order docs/lifecycle.md
// describes them.
var Transitions = []Transition{TransitionSuspend, TransitionResume, TransitionRevoke, TransitionDecommission, TransitionReprovision}

// RFC 5280 CRLReason codes the store gives certificates (section 5.3.1).
const (
	ReasonUnspecified          = 0
	ReasonKeyCompromise        = 1
	ReasonAffiliationChanged   = 3
	ReasonSuperseded           = 4
	ReasonCessationOfOperation = 5
	ReasonCertificateHold      = 6
)

// transitionRule is what one transition may start from, where it leads
// and what it does to the device's certificates.
type transitionRule struct {
	from []DeviceState
	to   DeviceState
	// certReason is the CRLReason given to the device's certificates that
	// are not revoked (or only on hold); zero leaves them as they are.
	certReason int
	// releaseHold makes the device's certificates on hold good again.
	releaseHold bool
}

var transitionRules = map[Transition]transitionRule{
	TransitionSuspend:      {from: []DeviceState{StateOnboarded}, to: StateSuspended, certReason: ReasonCertificateHold},
	TransitionResume:       {from: []DeviceState{StateSuspended}, to: StateOnboarded, releaseHold: true},
	TransitionRevoke:       {from: []DeviceState{StateRegistered, StateOnboarded, StateSuspended}, to: StateRevoked, certReason: ReasonKeyCompromise},
	TransitionDecommission: {from: []DeviceState{StateRegistered, StateOnboarded, StateSuspended}, to: StateDecommissioned, certReason: ReasonCessationOfOperation},
	TransitionReprovision:  {from: []DeviceState{StateDecommissioned}, to: StateRegistered},
}

// Valid reports whether t is a known transition.
func (t Transition) Valid() bool { _, ok := transitionRules[t]; return ok }

// To is the state t leads to; "" for an unknown transition.
func (t Transition) To() DeviceState { return transitionRules[t].to }

// From lists the states t may start from.
func (t Transition) From() []DeviceState { return slices.Clone(transitionRules[t].from) }

// Allowed reports whether t may start from state.
func (t Transition) Allowed(from DeviceState) bool {
	return slices.Contains(transitionRules[t].from, from)
}

// CertificateReason is the CRLReason t gives the device's certificates
// that are not revoked or are only on hold, and whether it gives one.
func (t Transition) CertificateReason() (int, bool) {
	r := transitionRules[t].certReason
	return r, r != 0
}

// ReleasesHold reports whether t makes certificates on hold good again
// (RFC 5280 removeFromCRL).
func (t Transition) ReleasesHold() bool { return transitionRules[t].releaseHold }

// ErrTransitionNotAllowed reports a transition the device's state does
// not allow; the error is a *TransitionError.
var ErrTransitionNotAllowed = errors.New("transition not allowed")

// TransitionError is a refused transition: the state the device is in.
// It is ErrTransitionNotAllowed and ErrConflict.
type TransitionError struct {
	Transition Transition
	State      DeviceState
}

func (e *TransitionError) Error() string {
	return fmt.Sprintf("cannot %s a device that is %s", e.Transition, e.State)
}

// Is makes errors.Is hold for ErrTransitionNotAllowed and ErrConflict.
func (e *TransitionError) Is(target error) bool {
	return target == ErrTransitionNotAllowed || target == ErrConflict
}

// StateError is a certificate refused because of its device's state
// (suspended, revoked or decommissioned): ErrConflict, saying which.
type StateError struct {
	State DeviceState
}

func (e *StateError) Error() string { return fmt.Sprintf("device is %s", e.State) }

// Is makes errors.Is(err, ErrConflict) hold.
func (e *StateError) Is(target error) bool { return target == ErrConflict }

// MayHoldCertificate reports whether a device in state may be issued a
// certificate (onboarding or renewal).
func MayHoldCertificate(state DeviceState) bool {
	return state == StateRegistered || state == StateOnboarded
}

// TransitionRequest asks for one transition of one device.
type TransitionRequest struct {
	Transition Transition
	// Reason says why; it is kept with the device (StateReason, and
	// RevokeNote for a revocation).
	Reason string
	At     time.Time
	// Jobs returns the connector jobs to enqueue, given the device as it
	// was before, read under its row lock (connector.Outbox decides); nil
	// enqueues none.
	Jobs func(before Device) []Job
}

// TransitionResult is what a transition did.
type TransitionResult struct {
	// Device is the device after the transition.
	Device Device
	// From is the state the device was in.
	From DeviceState
	// Changed is false when the device was in the transition's target
	// state already: nothing changed and no job was enqueued.
	Changed bool
}

// Lifecycle changes devices' states and reads what revocation publishing
// needs.
type Lifecycle interface {
	// TransitionDevice applies req to device id in one transaction: under
	// the device's row lock it checks the state the device is in, moves it
	// to req.Transition.To(), changes its certificates and enqueues
	// req.Jobs(before). A device in the target state already is left as it
	// is (Changed false): retrying a transition is harmless. A state the
	// transition may not start from is a *TransitionError and nothing
	// changes; an unknown device is ErrNotFound; an unknown transition an
	// error.
	//
	// Certificates: suspend puts the device's certificates that are not
	// revoked on hold (RevokedAt at, RevocationReason certificateHold);
	// resume releases them (RevokedAt zero, reason 0); revoke and
	// decommission revoke every certificate not revoked or on hold with
	// keyCompromise or cessationOfOperation at at, leaving those revoked
	// for another reason as they are; reprovision leaves them revoked.
	// Revoke sets RevokedAt and RevokeNote; reprovision clears OnboardedAt,
	// so the device onboards afresh. Every change sets StateChangedAt and
	// StateReason.
	TransitionDevice(ctx context.Context, id identity.ID, req TransitionRequest) (TransitionResult, error)
	// RevokeCertificate revokes one certificate at its holder's request
	// (a device ending the use of one key, docs/front-doors.md, CMP rr),
	// leaving the device's state and its other certificates as they
	// are: RevokedAt at, RevocationReason reason, and audit appended, in
	// one transaction. A certificate revoked already or on hold is left
	// as it is (changed false, nothing appended); an unknown serial is
	// ErrNotFound.
	RevokeCertificate(ctx context.Context, serial [16]byte, reason int, at time.Time, audit AuditEvent) (changed bool, err error)
	// ListRevokedCertificates returns certificates revoked or on hold in
	// the order of their expiry, then serial (bytes), those after the
	// cursor (keyset pagination), at most limit: zero or less is
	// DefaultPageSize, more than MaxRevokedPageSize is MaxRevokedPageSize.
	// The first page's cursor is the cut-off: RevokedCursor{NotAfter: t}
	// lists the certificates that expire at or after t (no serial is
	// zero), and an index on (not_after, serial) of revoked certificates
	// lets the read skip those expired before it, however many.
	ListRevokedCertificates(ctx context.Context, after RevokedCursor, limit int) ([]RevokedCertificate, error)
}

// RevokedCursor is a position in ListRevokedCertificates' order: by
// certificate expiry, then serial.
type RevokedCursor struct {
	NotAfter time.Time
	Serial   [16]byte
}

// Cursor is the position just after rc, for the next page.
func (rc RevokedCertificate) Cursor() RevokedCursor {
	return RevokedCursor{NotAfter: rc.NotAfter, Serial: rc.Serial}
}

// Before reports whether c comes before d in ListRevokedCertificates' order.
func (c RevokedCursor) Before(d RevokedCursor) bool {
	if !c.NotAfter.Equal(d.NotAfter) {
		return c.NotAfter.Before(d.NotAfter)
	}
	return bytes.Compare(c.Serial[:], d.Serial[:]) < 0
}

// MaxRevokedPageSize caps ListRevokedCertificates: a CRL of 100,000
// entries is ten pages.
const MaxRevokedPageSize = 10000

// RevokedPageLimit turns ListRevokedCertificates' limit into the number
// of rows a backend returns.
func RevokedPageLimit(n int) int {
	switch {
	case n <= 0:
		return DefaultPageSize
	case n > MaxRevokedPageSize:
		return MaxRevokedPageSize
	}
	return n
}

// RevokedCertificate is one entry of a CRL: a certificate revoked or on hold.
type RevokedCertificate struct {
	Serial    [16]byte
	RevokedAt time.Time
	Reason    int // RFC 5280 CRLReason
	// NotAfter is the certificate's expiry: a CRL may leave out an entry
	// once it has appeared on one CRL issued after it (RFC 5280 5.1.2.6).
	NotAfter time.Time
}

// PlanTransition checks req against the device as it is (read under its
// row lock) and returns the target state and whether anything changes;
// backends share it so they cannot disagree on the rules.
func PlanTransition(d Device, req TransitionRequest) (to DeviceState, changed bool, err error) {
	if !req.Transition.Valid() {
		return "", false, fmt.Errorf("unknown transition %q", req.Transition)
	}
	to = req.Transition.To()
	switch {
	case d.State == to:
		return to, false, nil
	case !req.Transition.Allowed(d.State):
		return to, false, &TransitionError{Transition: req.Transition, State: d.State}
	}
	return to, true, nil
}

// Apply returns d as req leaves it (when PlanTransition says it changes).
func (req TransitionRequest) Apply(d Device) Device {
	at := req.At.UTC().Truncate(time.Microsecond)
	d.State = req.Transition.To()
	d.StateChangedAt, d.StateReason = at, req.Reason
	switch req.Transition {
	case TransitionRevoke:
		d.RevokedAt, d.RevokeNote = at, req.Reason
	case TransitionReprovision:
		d.OnboardedAt = time.Time{}
	}
	return d
}

// JobsFor is req.Jobs(before), or none.
func (req TransitionRequest) JobsFor(before Device) []Job {
	if req.Jobs == nil {
		return nil
	}
	return req.Jobs(before)
}
