package admin

import (
	"errors"
	"fmt"

	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/store"
)

// Problem codes the admin use cases fail with (docs/api.md): stable
// strings a front door answers with and callers branch on.
const (
	CodeMalformed            = "malformed-request"
	CodeForbidden            = "forbidden"
	CodeTokenOutlivesCreator = "token-outlives-creator"
	CodeNotFound             = "not-found"
	CodeConflict             = "conflict"
	// CodeTransitionNotAllowed refuses a lifecycle transition the
	// device's state does not allow; the message names the state.
	CodeTransitionNotAllowed = "transition-not-allowed"
	CodeDuplicateDevices     = "duplicate-devices"
	// CodeDevicesNotLocked refuses devices whose manifest record does not
	// say the station locked them, for a product that requires it: a
	// manifest import (the error is a *NotLockedDevicesError naming them)
	// or an onboarding.
	CodeDevicesNotLocked = "devices-not-locked"
	CodeBodyTooLarge     = "body-too-large"
	CodeManifestInvalid  = "manifest-invalid"
	CodeUnknownStation   = "unknown-station"
	CodeUnknownProduct   = "unknown-product"
	CodeInternal         = "internal"
)

// Error is a use case's refusal or failure. Code is the problem code;
// Message is shown to the caller and never carries an internal cause;
// Err is the cause, for the log only.
type Error struct {
	Code    string
	Message string
	Err     error
}

func (e *Error) Error() string {
	msg := e.Code
	if e.Message != "" {
		msg += ": " + e.Message
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// outcome is the audit outcome of the error: a refusal of authority is
// denied, anything else an error.
func (e *Error) outcome() string {
	if e.Code == CodeForbidden || e.Code == CodeTokenOutlivesCreator {
		return "denied"
	}
	return "error"
}

// Errorf returns the *Error of code with a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// fieldError is the error for one input field's bad value.
func fieldError(field, format string, args ...any) *Error {
	return &Error{Code: CodeMalformed, Message: field + ": " + fmt.Sprintf(format, args...)}
}

// DuplicateDevicesError is the cause of a duplicate-devices Error: the
// identities of the manifest that other batches registered, in manifest
// order.
type DuplicateDevicesError struct {
	Identities []identity.ID
}

func (e *DuplicateDevicesError) Error() string {
	return fmt.Sprintf("%d devices registered by other batches", len(e.Identities))
}

// NotLockedDevicesError is the cause of a devices-not-locked Error from
// an import: the identities of the manifest not recorded locked, in
// manifest order.
type NotLockedDevicesError struct {
	Identities []identity.ID
}

func (e *NotLockedDevicesError) Error() string {
	return fmt.Sprintf("%d devices not recorded locked", len(e.Identities))
}

// Classify returns err as an *Error: an *Error in its chain as it is, a
// store sentinel as its code with a generic message (a backend's own
// message may name tables or files), anything else as internal, its
// cause kept for the log.
func Classify(err error) *Error {
	var e *Error
	var te *store.TransitionError
	switch {
	case errors.As(err, &e):
		return e
	case errors.As(err, &te):
		return &Error{Code: CodeTransitionNotAllowed, Err: err,
			Message: fmt.Sprintf("cannot %s a device that is %s; %s is allowed from %s", te.Transition, te.State, te.Transition, statesList(te.Transition.From()))}
	case errors.Is(err, store.ErrNotFound):
		return &Error{Code: CodeNotFound, Message: "no such record", Err: err}
	case errors.Is(err, store.ErrExists):
		return &Error{Code: CodeConflict, Message: "the record exists already", Err: err}
	case errors.Is(err, store.ErrConflict):
		return &Error{Code: CodeConflict, Message: "the record's state refuses the change", Err: err}
	}
	return &Error{Code: CodeInternal, Err: err}
}

// statesList is "a", "a or b", "a, b or c".
func statesList(states []store.DeviceState) string {
	out := ""
	for i, st := range states {
		switch {
		case i == 0:
		case i == len(states)-1:
			out += " or "
		default:
			out += ", "
		}
		out += string(st)
	}
	return out
}
