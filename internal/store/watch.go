package store

import (
	"context"
	"time"

	"github.com/hallmark-iot/hallmark/internal/identity"
)

// Watch (docs/lifecycle.md, "Monitoring"): what monitoring keeps to
// recognise a possible clone and firmware behind its product's minimum,
// each finding an event of the device event log. Every record here is
// of a registered device: an unknown identity is ErrNotFound and writes
// nothing, so what anyone can claim grows no table.

// ProductUpdate changes a product's policy; nil fields stay as they are.
// The rest of a product (its ID, validity, endpoint) never changes:
// certificates already issued carry them.
type ProductUpdate struct {
	RenewalWindow      *time.Duration
	HeartbeatInterval  *time.Duration
	MinFirmwareVersion *string
	// FirmwareRoots, FirmwareRetired and FirmwareClassKey replace those
	// fields of the product's FirmwarePolicy.
	FirmwareRoots    *[][32]byte
	FirmwareRetired  *uint8
	FirmwareClassKey *[32]byte
	// IssuingCA moves the product to another CA ("" back to the first):
	// certificates issued from then on, renewals included, come from it.
	IssuingCA *string
	// RequireLocked sets whether the product refuses devices not
	// recorded locked.
	RequireLocked *bool
}

// StatusRecorded is what RecordStatus found before it kept a report.
type StatusRecorded struct {
	// ProductID is the device's product.
	ProductID string
	// Previous is the report this one replaced; its Identity is zero if
	// this is the device's first.
	Previous DeviceStatus
	// FirmwareNoted is the product minimum the device's firmware version
	// was last reported outdated below (NoteFirmwareOutdated), "" if it
	// was not since the device reports this version.
	FirmwareNoted string
}

// Watch keeps the state of monitoring's findings.
type Watch interface {
	// NoteFirmwareOutdated appends one firmware.outdated event (at at,
	// Detail detail) if the device's latest report is of version and was
	// not yet noted outdated below minimum; a report of another version
	// clears the note (RecordStatus). It reports whether it appended.
	// Concurrent calls append once.
	NoteFirmwareOutdated(ctx context.Context, id identity.ID, version, minimum string, at time.Time, detail string) (bool, error)
	// NoteCloneSuspected appends one device.clone_suspected event (at
	// at, Detail detail) unless one was appended for the device less
	// than every before at; concurrent calls append at most one. It
	// reports whether it appended; an unknown device is ErrNotFound.
	NoteCloneSuspected(ctx context.Context, id identity.ID, at time.Time, every time.Duration, detail string) (bool, error)
	// NoteOnboardingSource keeps source as where the device last
	// onboarded from, and returns where it onboarded from before ("" the
	// first time). An unknown device is ErrNotFound.
	NoteOnboardingSource(ctx context.Context, id identity.ID, source string, at time.Time) (previous string, err error)
	// NoteFailedProof counts a refused proof of possession for id at at
	// and returns how many the device has had within window before at,
	// this one included. It keeps at most keep of them (more add
	// nothing a threshold of keep needs) and forgets older ones, of
	// every device. An unknown identity is 0 and keeps nothing.
	NoteFailedProof(ctx context.Context, id identity.ID, at time.Time, window time.Duration, keep int) (int, error)
}
